SELECT format('SELECT %L, %L, count(*), coalesce(sum((''x'' || left(md5(cpa_checksum_row::text), 16))::bit(64)::bigint::numeric), 0) FROM %I.%I AS cpa_checksum_row',
              current_database(), n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
ORDER BY n.nspname, c.relname
\gexec
