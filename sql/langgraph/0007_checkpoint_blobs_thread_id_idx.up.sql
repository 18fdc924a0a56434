-- langgraph v7: look blobs up by thread. Built without blocking writes.
-- checkpoint-agent: no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoint_blobs_thread_id_idx ON checkpoint_blobs(thread_id);
