-- langgraph-store v0: LangGraph's PostgresStore and its version table.
CREATE TABLE IF NOT EXISTS store_migrations (
    v INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS store (
    prefix TEXT NOT NULL,
    key TEXT NOT NULL,
    value JSONB NOT NULL,
    created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (prefix, key)
);
