#!/bin/bash
# prune-bench.sh: retention side by side in one run, on one throwaway
# database of 10,000 LangGraph threads of 100 checkpoints each (1,000,000
# checkpoints, 1,500,000 blobs, 2,000,000 writes; tests/lib/gen-checkpoints.sql),
# while one writer adds checkpoints the way the JS saver does (pgbench: in a
# transaction, two blob upserts and the checkpoint upsert; then, in another,
# two pending writes; at a fixed rate, to the young threads):
#
#   1. no pruning: the writer alone, for its baseline latency;
#   2. the peer, an hourly cron's approach: select the old threads (newest
#      "ts" older than the TTL), then DELETE ... WHERE thread_id IN (100 ids)
#      per statement and table; it takes the 4,000 threads older than 60d;
#   3. `checkpoint-agent prune --older-than 30d` (defaults: delete, batches of
#      50 threads): the other 4,000 old threads, as many rows.
#
# For 2 and 3: rows removed per second (whole run, selection included) and
# the writer's p50/p99 latency during the run, against the baseline. The
# database is vacuumed and checkpointed before each phase. Targets (issue 8):
# prune removes rows at least as fast as the peer, and the writer's p99
# during prune stays within 2x of its p99 without pruning.
#
#   bench/prune-bench.sh [--threads N] [--steps N] [--rate TPS] [--baseline-seconds S]
#
# Needs root (a cluster as the postgres user), the agent built (make) and
# pgbench (postgresql). The cluster runs with fsync on, shared_buffers 1GB.
# Environment: BENCH_THREADS (10000), BENCH_STEPS (100), BENCH_RATE (50
# writer steps per second), BENCH_BASELINE_SECONDS (30).
# Latency is a step's own time (pgbench's, less its schedule lag); "steps"
# is how many the writer did in the window, against the rate asked.
# Exit codes: 0 measured (whether or not the targets are met), 1 a tool or
# the database failed, 64 usage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
threads=${BENCH_THREADS:-10000}
steps=${BENCH_STEPS:-100}
rate=${BENCH_RATE:-50}
baseline_seconds=${BENCH_BASELINE_SECONDS:-30}

usage() {
	sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
}

parse_args() {
	while [ "$#" -gt 0 ]; do
		case "$1" in
		--threads) threads=$2; shift 2 ;;
		--steps) steps=$2; shift 2 ;;
		--rate) rate=$2; shift 2 ;;
		--baseline-seconds) baseline_seconds=$2; shift 2 ;;
		-h | --help) usage; exit 0 ;;
		*) echo "prune-bench: unknown argument '$1'; see --help" >&2; exit 64 ;;
		esac
	done
	for v in "$threads" "$steps" "$rate" "$baseline_seconds"; do
		[[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "prune-bench: not a positive whole number: $v" >&2; exit 64; }
	done
}

die() {
	echo "prune-bench: $*" >&2
	exit 1
}

say() {
	printf '%s %s\n' "$(date +%T)" "$*" >&2
}

now() {
	date +%s.%N
}

require_tools() {
	[ -x "$root/agent/checkpoint-agent" ] || die "agent/checkpoint-agent is not built; run make first"
	[ "$(id -u)" -eq 0 ] || die "run as root: the throwaway cluster runs as the postgres user"
}

# The throwaway cluster and its clean-up come from the test library.
start_database() {
	# shellcheck source=../tests/lib/test-lib.sh
	. "$root/tests/lib/test-lib.sh"
	trap 'stop_writer; tl_cleanup' EXIT
	tl_pg_start >/dev/null || die "the throwaway PostgreSQL cluster did not start"
	[ -x "$TL_PGBIN/pgbench" ] || die "pgbench is missing in $TL_PGBIN"
	tl_psql_super -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET shared_buffers = '1GB'" \
		-c "ALTER SYSTEM SET max_wal_size = '8GB'" -c "ALTER SYSTEM SET checkpoint_timeout = '30min'" >/dev/null
	tl_pg_stop
	tl_pg_restart || die "the cluster did not restart with the bench settings"
	work=$(tl_tmpdir)
	conf=$work/agent.conf
	tl_agent_conf "$conf"
	"$root/agent/checkpoint-agent" -c "$conf" migrate 2>/dev/null || die "migrate failed"
	export PGPASSFILE=$TL_PGPASSFILE
}

app_sql() {
	tl_psql_app "$@"
}

generate() {
	local old=$((threads * 2 / 5)) young=$((threads - 2 * (threads * 2 / 5)))
	say "writing $threads threads of $steps checkpoints: $old older than 60d, $old older than 30d, $young young"
	tl_gen_threads peer- "$old" "$steps" $((70 * 86400)) || die "generating the threads failed"
	tl_gen_threads prune- "$old" "$steps" $((40 * 86400)) || die "generating the threads failed"
	tl_gen_threads young- "$young" "$steps" 600 || die "generating the threads failed"
	YOUNG=$young
	tl_psql_super -c "VACUUM ANALYZE" >/dev/null
	say "database: $(tl_sql "SELECT pg_size_pretty(pg_database_size(current_database()))"), $(tl_sql "SELECT
		count(*) FROM checkpoints") checkpoints, $(tl_sql "SELECT count(*) FROM checkpoint_blobs") blobs, $(tl_sql "SELECT
		count(*) FROM checkpoint_writes") writes"
}

# usage_figures: `usage` before any pruning: its output, the time of its walk
# over every thread (--top 0: no full scan) and with the largest threads.
usage_figures() {
	local t0 t1 t2
	t0=$(now)
	"$root/agent/checkpoint-agent" -c "$conf" usage --top 0 >/dev/null || die "usage --top 0 failed"
	t1=$(now)
	"$root/agent/checkpoint-agent" -c "$conf" usage --top 5 >"$work/usage.out" || die "usage failed"
	t2=$(now)
	USAGE_WALK=$(echo "$t1 - $t0" | bc)
	USAGE_FULL=$(echo "$t2 - $t1" | bc)
}

# The writer: the JS saver's put (upsert the changed channels' blobs, then the
# checkpoint, in one transaction) and putWrites (two writes, another
# transaction), on a random young thread, with a UUIDv6 id of now.
write_writer_script() {
	cat >"$work/writer.sql" <<-EOF
		\\set t random(1, $YOUNG)
		\\set v random(1000, 1000000000)
		SELECT 'young-' || lpad(:t::text, 6, '0') AS thread,
		 substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-6' || substr(h, 13, 3) || '-8' || lpad(to_hex(:v % 4096), 3, '0')
		 || '-' || lpad(to_hex(:v), 12, '0') AS id, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ts
		 FROM (SELECT lpad(to_hex((extract(epoch FROM clock_timestamp()) * 10000000)::bigint + 122192928000000000), 15, '0') AS h) x \\gset
		BEGIN;
		INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
		 VALUES (':thread', '', 'messages', ':v', 'json', decode(repeat(md5(':id'), 4), 'hex'))
		 ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING;
		INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
		 VALUES (':thread', '', 'counter', ':v', 'json', convert_to(':v', 'UTF8'))
		 ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING;
		INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
		 VALUES (':thread', '', ':id', NULL, jsonb_build_object('v', 4, 'id', ':id', 'ts', ':ts',
		  'channel_versions', jsonb_build_object('messages', :v, 'counter', :v), 'versions_seen', '{}'::jsonb),
		  '{"source": "loop", "step": 1, "parents": {}}')
		 ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET checkpoint = EXCLUDED.checkpoint,
		  metadata = EXCLUDED.metadata;
		COMMIT;
		BEGIN;
		INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob)
		 VALUES (':thread', '', ':id', 'task', 0, 'messages', 'json', decode(md5(':id'), 'hex'))
		 ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING;
		INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob)
		 VALUES (':thread', '', ':id', 'task', 1, 'counter', 'json', decode(md5(':v'), 'hex'))
		 ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING;
		COMMIT;
	EOF
}

writer_pid=
start_writer() {
	write_writer_script
	say "writer: $rate steps/s on the young threads"
	(cd "$work" && PGPASSFILE=$TL_PGPASSFILE "$TL_PGBIN/pgbench" -n -h 127.0.0.1 -p "$TL_PGPORT" -U "$TL_APP_ROLE" \
		-c 1 -j 1 -R "$rate" -T 86400 -f writer.sql -l --log-prefix=writer "$TL_APP_DB" >"$work/pgbench.out" 2>&1) &
	writer_pid=$!
	sleep 3
	kill -0 "$writer_pid" 2>/dev/null || die "pgbench stopped: $(cat "$work/pgbench.out")"
}

# pgbench loses its last buffered log lines when stopped: the writer runs on
# for a while after the last phase, so only that tail is lost. (SIGTERM: a
# background job of a script ignores SIGINT.)
stop_writer() {
	[ -n "$writer_pid" ] || return 0
	pkill -TERM -P "$writer_pid" pgbench 2>/dev/null || true
	wait "$writer_pid" 2>/dev/null || true
	writer_pid=
}

# latency FROM TO: "p50 p99 count" in ms of the writer's steps that started between FROM and TO (epoch).
latency() {
	cat "$work"/writer.* 2>/dev/null | awk -v from="$1" -v to="$2" '
		NF >= 7 { t = $5 + $6 / 1e6 - ($3 - $7) / 1e6; if (t >= from && t <= to) print ($3 - $7) / 1000 }' | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) { print "0 0 0"; exit }
			p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]; p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
			printf "%.2f %.2f %d\n", p50, p99, NR }'
}

settle() {
	tl_psql_super -c "VACUUM" >/dev/null
	tl_psql_super -c "CHECKPOINT" >/dev/null
	sleep 2
}

rows_of() {
	tl_sql "SELECT (SELECT count(*) FROM checkpoints WHERE thread_id LIKE '$1%') + (SELECT count(*) FROM
		checkpoint_blobs WHERE thread_id LIKE '$1%') + (SELECT count(*) FROM checkpoint_writes WHERE thread_id LIKE '$1%')"
}

# The peer: one query selects the old threads, then three DELETEs per 100 of them, each its own statement.
run_peer() {
	local ids=$work/peer.ids sql=$work/peer.sql t_select
	t_select=$(now)
	app_sql -c "SELECT thread_id FROM checkpoints GROUP BY thread_id
		HAVING max((checkpoint->>'ts')::timestamptz) < now() - interval '60 days'" >"$ids"
	echo "$(now) - $t_select" | bc >"$work/peer.select_seconds"
	split -l 100 "$ids" "$work/peer.chunk."
	: >"$sql"
	for f in "$work"/peer.chunk.*; do
		local list
		list=$(sed "s/.*/'&'/" "$f" | paste -sd,)
		{
			printf 'DELETE FROM checkpoint_writes WHERE thread_id IN (%s);\n' "$list"
			printf 'DELETE FROM checkpoint_blobs WHERE thread_id IN (%s);\n' "$list"
			printf 'DELETE FROM checkpoints WHERE thread_id IN (%s);\n' "$list"
		} >>"$sql"
	done
	app_sql -f "$sql" >/dev/null
}

# phase NAME PREFIX COMMAND...: "NAME start end rows-gone" of COMMAND, which prunes threads PREFIX*.
phase() {
	local name=$1 prefix=$2 t0 t1 before after
	shift 2
	settle
	before=$(rows_of "$prefix")
	t0=$(now)
	"$@" >"$work/$name.out"
	t1=$(now)
	after=$(rows_of "$prefix")
	printf '%s %s %s %s\n' "$name" "$t0" "$t1" "$((before - after))"
}

main() {
	parse_args "$@"
	require_tools
	start_database
	generate
	usage_figures
	start_writer
	settle
	local b0 b1 peer_line prune_line
	b0=$(now)
	say "baseline: the writer alone for $baseline_seconds s"
	sleep "$baseline_seconds"
	b1=$(now)
	say "peer: select the threads older than 60d, delete 100 per statement"
	peer_line=$(phase peer peer- run_peer)
	say "prune: checkpoint-agent prune --older-than 30d"
	prune_line=$(phase prune prune- "$root/agent/checkpoint-agent" -c "$conf" prune --older-than 30d)
	sleep 10
	stop_writer
	report "$b0" "$b1" "$peer_line" "$prune_line"
}

report() {
	local b0=$1 b1=$2 base peer prune pt0 pt1 prows qt0 qt1 qrows
	base=$(latency "$b0" "$b1")
	read -r _ pt0 pt1 prows <<<"$3"
	read -r _ qt0 qt1 qrows <<<"$4"
	peer=$(latency "$pt0" "$pt1")
	prune=$(latency "$qt0" "$qt1")
	awk -v base="$base" -v peer="$peer" -v prune="$prune" -v pt="$(echo "$pt1 - $pt0" | bc)" -v pr="$prows" \
		-v qt="$(echo "$qt1 - $qt0" | bc)" -v qr="$qrows" -v rate="$rate" -v threads="$threads" -v steps="$steps" '
	BEGIN {
		split(base, b, " "); split(peer, p, " "); split(prune, q, " ")
		prate = pr / pt; qrate = qr / qt
		printf "\nprune-bench: %d threads x %d checkpoints; writer at %d steps/s (put + putWrites)\n\n", threads, steps, rate
		printf "%-34s %12s %10s %12s %10s %10s %8s\n", "", "rows gone", "seconds", "rows/s", "p50 ms", "p99 ms", "steps"
		printf "%-34s %12s %10s %12s %10.2f %10.2f %8d\n", "no pruning (writer alone)", "-", "-", "-", b[1], b[2], b[3]
		printf "%-34s %12d %10.1f %12.0f %10.2f %10.2f %8d\n", "peer: cron, DELETE 100 ids/stmt", pr, pt, prate, p[1], p[2], p[3]
		printf "%-34s %12d %10.1f %12.0f %10.2f %10.2f %8d\n", "checkpoint-agent prune", qr, qt, qrate, q[1], q[2], q[3]
		printf "\nprune / peer, rows/s: %.2fx (target >= 1: %s)\n", qrate / prate, (qrate >= prate ? "met" : "MISSED")
		printf "writer p99 during prune / without pruning: %.2fx (target <= 2: %s)\n", q[2] / b[2], (q[2] <= 2 * b[2] ? "met" : "MISSED")
		printf "writer p99 during the peer / without pruning: %.2fx\n", p[2] / b[2]
	}'
	printf 'peer: selecting the old threads took %.1f s of its %.1f s\n' "$(cat "$work/peer.select_seconds")" \
		"$(echo "$pt1 - $pt0" | bc)"
	printf 'prune: %s\n' "$(grep -E 'transactions' "$work/prune.out" | sed 's/^ *//')"
	printf '\nusage before pruning (its walk of every thread, --top 0: %.2f s; with the 5 largest threads: %.1f s):\n' \
		"$USAGE_WALK" "$USAGE_FULL"
	cat "$work/usage.out"
}

main "$@"
