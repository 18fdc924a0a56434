-- agentos v1: the asyncpg checkpointer's single table and its indexes.
CREATE TABLE IF NOT EXISTS checkpoints (
    id BIGSERIAL PRIMARY KEY,
    thread_id TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL UNIQUE,
    parent_id TEXT,
    step INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    tags JSONB NOT NULL DEFAULT '[]',
    summary TEXT NOT NULL DEFAULT '',
    messages_blob JSONB NOT NULL DEFAULT '[]',
    state_blob JSONB NOT NULL DEFAULT '{}',
    tools_blob JSONB NOT NULL DEFAULT '{}',
    next_node TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS checkpoints_thread_step_idx ON checkpoints (thread_id, step DESC);
CREATE INDEX IF NOT EXISTS checkpoints_checkpoint_id_idx ON checkpoints (checkpoint_id);
CREATE INDEX IF NOT EXISTS checkpoints_parent_id_idx ON checkpoints (parent_id);
CREATE INDEX IF NOT EXISTS checkpoints_created_at_idx ON checkpoints (created_at DESC);
