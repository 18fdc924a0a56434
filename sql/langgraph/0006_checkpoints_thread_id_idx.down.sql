-- langgraph v6 down.
DROP INDEX CONCURRENTLY IF EXISTS checkpoints_thread_id_idx;
