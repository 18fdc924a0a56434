-- langgraph v8: look writes up by thread. Built without blocking writes.
-- checkpoint-agent: no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoint_writes_thread_id_idx ON checkpoint_writes(thread_id);
