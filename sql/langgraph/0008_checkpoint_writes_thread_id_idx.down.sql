-- langgraph v8 down.
-- checkpoint-agent: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS checkpoint_writes_thread_id_idx;
