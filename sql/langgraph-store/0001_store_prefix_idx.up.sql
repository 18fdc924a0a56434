-- langgraph-store v1: prefix searches. Built without blocking writes.
-- checkpoint-agent: no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS store_prefix_idx ON store USING btree (prefix text_pattern_ops);
