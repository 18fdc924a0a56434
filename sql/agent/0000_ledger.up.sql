-- agent v0: the agent's own schema objects. The ledger records every version
-- the agent applied or rolled back, in every set.
CREATE TABLE IF NOT EXISTS agent_migrations (
    v INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS ledger (
    id BIGSERIAL PRIMARY KEY,
    set_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('up', 'down')),
    checksum TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    agent_version TEXT NOT NULL,
    host TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_set_version_idx ON ledger (set_name, version, id);
