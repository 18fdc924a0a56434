-- langgraph-store v1 down.
DROP INDEX CONCURRENTLY IF EXISTS store_prefix_idx;
