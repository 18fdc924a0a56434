-- langgraph-store v2: time-to-live of items.
ALTER TABLE store
    ADD COLUMN IF NOT EXISTS expires_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS ttl_minutes INT;
