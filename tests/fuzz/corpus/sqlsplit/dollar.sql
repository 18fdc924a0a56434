-- langgraph v4 down: blob becomes NOT NULL again. That is only safe while no
-- row holds a NULL blob; otherwise the step refuses, and nothing changes.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM checkpoint_blobs WHERE blob IS NULL) THEN
        RAISE EXCEPTION 'checkpoint_blobs holds % rows whose blob is NULL',
            (SELECT count(*) FROM checkpoint_blobs WHERE blob IS NULL)
            USING HINT = 'Version 3 cannot store them. Stay at version 4 or later, or delete those rows first.';
    END IF;
END
$$;
ALTER TABLE checkpoint_blobs ALTER COLUMN blob SET NOT NULL;
