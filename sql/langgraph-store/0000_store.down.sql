-- langgraph-store v0 down. The agent quarantines store instead when it holds rows.
DROP TABLE IF EXISTS store;
DROP TABLE IF EXISTS store_migrations;
