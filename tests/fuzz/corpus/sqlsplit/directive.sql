-- langgraph v6: look checkpoints up by thread. Built without blocking writes.
-- checkpoint-agent: no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_thread_id_idx ON checkpoints(thread_id);
