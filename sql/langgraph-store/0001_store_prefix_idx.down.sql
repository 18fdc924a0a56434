-- langgraph-store v1 down.
-- checkpoint-agent: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS store_prefix_idx;
