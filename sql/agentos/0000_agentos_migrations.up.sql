-- agentos v0: the version table the agent keeps for this set (the asyncpg
-- client has none of its own).
CREATE TABLE IF NOT EXISTS agentos_migrations (
    v INTEGER PRIMARY KEY
);
