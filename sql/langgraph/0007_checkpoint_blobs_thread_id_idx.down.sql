-- langgraph v7 down.
DROP INDEX CONCURRENTLY IF EXISTS checkpoint_blobs_thread_id_idx;
