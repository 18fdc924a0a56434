-- gen-checkpoints.sql: synthetic LangGraph threads, written the way the JS
-- saver writes them (checkpoint JSON without channel_values, one blob per new
-- channel version, writes keyed by the checkpoint they ran from), for the
-- retention suites and bench/prune-bench.sh. Run with psql:
--
--   psql -v schema=public -v prefix=old- -v threads=100 -v steps=10 \
--        -v age_seconds=3456000 -v payload=4 -f tests/lib/gen-checkpoints.sql
--
-- Thread PREFIX + 6 digits gets STEPS checkpoints one minute apart, the
-- newest AGE_SECONDS old; ids are UUIDv6 of those times, "ts" the same time.
-- "messages" changes at every step, "counter" at every second one, so a
-- checkpoint's blobs come from several earlier steps. Each checkpoint has
-- two pending writes. PAYLOAD: each blob is PAYLOAD x 16 bytes of hex.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET search_path = :"schema";

CREATE OR REPLACE FUNCTION pg_temp.uuid6(at timestamptz, seq int, node bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-6' || substr(h, 13, 3) || '-'
		|| to_hex(8 + (seq >> 12) % 4) || lpad(to_hex(seq % 4096), 3, '0') || '-' || lpad(to_hex(node), 12, '0')
	FROM (SELECT lpad(to_hex((extract(epoch FROM at) * 10000000)::bigint + 122192928000000000), 15, '0') AS h) x
$$;

BEGIN;
CREATE TEMP TABLE gen ON COMMIT DROP AS
SELECT t, i, :'prefix' || lpad(t::text, 6, '0') AS thread_id,
	now() - make_interval(secs => :age_seconds + (:steps - i) * 60) AS at
FROM generate_series(1, :threads) t, generate_series(1, :steps) i;

CREATE TEMP TABLE gen2 ON COMMIT DROP AS
SELECT g.*, pg_temp.uuid6(at, i, t) AS id,
	CASE WHEN i > 1 THEN pg_temp.uuid6(at - interval '60 seconds', i - 1, t) END AS parent
FROM gen g;

INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
SELECT thread_id, '', id, parent,
	jsonb_build_object('v', 4, 'id', id,
		'ts', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
		'channel_versions', jsonb_build_object('messages', i, 'counter', (i + 1) / 2),
		'versions_seen', jsonb_build_object('agent', jsonb_build_object('messages', i - 1))),
	jsonb_build_object('source', 'loop', 'step', i, 'parents', '{}'::jsonb)
FROM gen2;

INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT thread_id, '', 'messages', i::text, 'json', decode(repeat(md5(thread_id || i), :payload), 'hex')
FROM gen2
UNION ALL
SELECT thread_id, '', 'counter', ((i + 1) / 2)::text, 'json', convert_to(i::text, 'UTF8')
FROM gen2 WHERE i % 2 = 1;

INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob)
SELECT thread_id, '', id, 'task-' || i, k, 'messages', 'json', decode(md5(id || k), 'hex')
FROM gen2, generate_series(0, 1) k;
COMMIT;
