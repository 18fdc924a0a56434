-- user-data.sql: what a PostgreSQL cluster holds beyond what initdb made,
-- one line per kind, nothing at all for a fresh cluster. Run as a superuser
-- in the databases postgres and template1; the cluster-wide kinds are
-- reported from postgres only. Shared by provision/lib/datadir.sh
-- (cpa_user_data_report) and the Ansible role postgresql (datadir.yml): a
-- cluster that holds anything here is copied, never dropped and recreated.
SELECT what FROM (
    SELECT 1 AS o, 'database ' || datname AS what FROM pg_database
    WHERE datname NOT IN ('postgres', 'template0', 'template1') AND current_database() = 'postgres'
    UNION ALL
    SELECT 2, 'role ' || rolname FROM pg_roles
    WHERE rolname <> 'postgres' AND rolname NOT LIKE 'pg\_%' AND current_database() = 'postgres'
    UNION ALL
    -- ALTER SYSTEM: lost with a dropped data directory
    SELECT 3, 'setting in postgresql.auto.conf: ' || name FROM pg_file_settings
    WHERE sourcefile = current_setting('data_directory') || '/postgresql.auto.conf' AND current_database() = 'postgres'
    UNION ALL
    -- ALTER DATABASE/ROLE ... SET
    SELECT 4, 'per-database or per-role settings: ' || count(*) FROM pg_db_role_setting
    WHERE current_database() = 'postgres' HAVING count(*) > 0
    UNION ALL
    SELECT 5, 'relations in database ' || current_database() || ': ' || count(*)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
    HAVING count(*) > 0
    UNION ALL
    SELECT 6, 'functions in database ' || current_database() || ': ' || count(*)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    HAVING count(*) > 0
    UNION ALL
    SELECT 7, 'types in database ' || current_database() || ': ' || count(*)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND t.typtype IN ('e', 'd', 'r')
    HAVING count(*) > 0
    UNION ALL
    SELECT 8, 'extensions in database ' || current_database() || ': ' || string_agg(extname, ', ' ORDER BY extname)
    FROM pg_extension WHERE extname <> 'plpgsql'
    HAVING count(*) > 0
    UNION ALL
    SELECT 9, 'schemas in database ' || current_database() || ': ' || string_agg(nspname, ', ' ORDER BY nspname)
    FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')
      AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'
    HAVING count(*) > 0
) AS found
ORDER BY o, what;
