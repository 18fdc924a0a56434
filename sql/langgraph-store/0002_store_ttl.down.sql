-- langgraph-store v2 down: drops the TTL columns and their values.
ALTER TABLE store
    DROP COLUMN IF EXISTS ttl_minutes,
    DROP COLUMN IF EXISTS expires_at;
