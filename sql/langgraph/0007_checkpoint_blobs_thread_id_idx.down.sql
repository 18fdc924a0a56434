-- langgraph v7 down.
-- checkpoint-agent: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS checkpoint_blobs_thread_id_idx;
