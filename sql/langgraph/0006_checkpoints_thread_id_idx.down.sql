-- langgraph v6 down.
-- checkpoint-agent: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS checkpoints_thread_id_idx;
