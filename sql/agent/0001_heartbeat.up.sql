-- agent v1: one committed row per agent host, updated by the health check to
-- prove that commits reach disk.
CREATE TABLE IF NOT EXISTS heartbeat (
    host TEXT PRIMARY KEY,
    beat_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    beats BIGINT NOT NULL DEFAULT 1
);
