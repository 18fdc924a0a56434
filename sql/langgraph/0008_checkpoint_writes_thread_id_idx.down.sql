-- langgraph v8 down.
DROP INDEX CONCURRENTLY IF EXISTS checkpoint_writes_thread_id_idx;
