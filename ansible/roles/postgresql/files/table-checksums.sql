-- table-checksums.sql: one row per user table of the current database, with
-- its row count and an order-independent checksum of its rows (the sum of
-- the first 64 bits of each row's md5). The postgresql role runs it in every
-- database before and after a relocation and compares the results; the
-- shell scripts verify the same way. Memory use does not grow with table
-- size (no string_agg of the whole table).
SELECT format('%I.%I', n.nspname, c.relname) AS table_name,
       (xpath('/row/n/text()', x))[1]::text AS row_count,
       (xpath('/row/h/text()', x))[1]::text AS checksum
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN LATERAL query_to_xml(
    format('SELECT count(*) AS n, coalesce(sum((''x'' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0) AS h FROM %I.%I AS t',
           n.nspname, c.relname),
    false, true, '') AS x
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
ORDER BY 1
