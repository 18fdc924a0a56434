-- langgraph-store v3 down.
DROP INDEX IF EXISTS idx_store_expires_at;
