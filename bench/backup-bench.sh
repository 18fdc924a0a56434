#!/bin/bash
# backup-bench.sh: pgBackRest against pg_basebackup, side by side in one run
# on the same throwaway cluster (PostgreSQL on loopback, WAL archived
# through pgBackRest as provisioning sets it up: lz4, process-max 2,
# archive_timeout 60 s):
#
#   1. a full backup of at least BENCH_GB GiB of checkpoint data (the
#      langgraph schema, rows shaped like LangGraph's): wall time and size,
#      pgBackRest (lz4) against pg_basebackup with the same lz4 (-Ft
#      --compress=lz4) and plain (-Fp, uncompressed);
#   2. the restore of each to the backup's consistent point: pgBackRest
#      restore --type=immediate plus recovery until the server accepts
#      connections, against unpacking pg_basebackup's lz4 tar plus the same
#      start;
#   3. the data-loss window after an unclean stop when the data disk is lost:
#      a writer commits a row every 100 ms; the postmaster is killed (-9) at a
#      random moment; the newest backup plus the archived WAL are restored
#      elsewhere, and the window is the time between the last row committed
#      on the killed server (found by crash recovery of its own directory)
#      and the last row the restore brings back. BENCH_TRIALS trials.
#
#   bench/backup-bench.sh [--gb N] [--trials N]
#
# Needs root (the cluster runs as postgres), pgbackrest, lz4 (the tool, for
# unpacking pg_basebackup's tar) and the agent built (it creates the schema).
# Environment: BENCH_GB (1), BENCH_TRIALS (3). The machine is shared: run it
# twice and compare; the figures are printed, nothing is asserted.
# Exit codes: 0 measured, 1 a tool or the database failed, 64 usage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gb=${BENCH_GB:-1}
trials=${BENCH_TRIALS:-3}

usage() {
	sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
}

while [ "$#" -gt 0 ]; do
	case "$1" in
	--gb) gb=$2; shift 2 ;;
	--trials) trials=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "backup-bench: unknown argument '$1'; see --help" >&2; exit 64 ;;
	esac
done

die() {
	echo "backup-bench: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: the throwaway cluster runs as the postgres user"
command -v pgbackrest >/dev/null || die "pgbackrest is missing (tests/install-deps.sh installs it)"
command -v lz4 >/dev/null || die "lz4 is missing (apt-get install lz4)"
[ -x "$root/agent/checkpoint-agent" ] || die "agent/checkpoint-agent is not built; run make first"

# shellcheck source=../tests/lib/test-lib.sh
. "$root/tests/lib/test-lib.sh"
# shellcheck source=../tests/lib/pgbackrest.sh
. "$root/tests/lib/pgbackrest.sh"
scratch_pids=()
cleanup() {
	local d
	for d in "${scratch_pids[@]}"; do
		[ -f "$d/postmaster.pid" ] && runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
	done
	tl_cleanup
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

# start_copy DIR PORT: start a restored copy on its own port and socket;
# waits until it accepts connections (recovery done).
start_copy() {
	local dir=$1 port=$2
	scratch_pids+=("$dir")
	cat >>"$dir/postgresql.auto.conf" <<-EOF
		port = $port
		unix_socket_directories = '$(dirname "$dir")'
		listen_addresses = ''
		archive_mode = off
	EOF
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 3600 start >/dev/null
	until [ "$(runuser -u postgres -- "$TL_PGBIN/psql" -X -At -h "$(dirname "$dir")" -p "$port" -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
		sleep 0.2
	done
}

stop_copy() {
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1 || true
}

echo "backup-bench: setting up a throwaway cluster with WAL archiving through pgBackRest"
tl_pg_start >/dev/null || die "the throwaway cluster did not start"
# Like a provisioned server: fsync on, lz4 TOAST, archive_timeout 60 s.
printf "fsync = on\ndefault_toast_compression = 'lz4'\nmax_wal_size = '4GB'\n" >>"$TL_PGDATA/postgresql.conf"
tb_setup bench >/dev/null || die "pgBackRest stanza setup failed"
export PGBACKREST_PROCESS_MAX=2
work=$(tl_tmpdir)
conf=$work/agent.conf
tl_agent_conf "$conf"
"$root/agent/checkpoint-agent" -c "$conf" migrate 2>/dev/null || die "migrate failed"

echo "backup-bench: loading ${gb} GiB of checkpoint rows (threads, checkpoints, blobs, writes)"
t0=$(now)
target=$((gb * 1073741824))
batch=0
while :; do
	size=$(tl_sql "SELECT pg_database_size(current_database())")
	[ "$size" -lt "$target" ] || break
	batch=$((batch + 1))
	# A thread: 20 checkpoints of JSON metadata and channel values, 20 blobs
	# (message lists: text that compresses about 2-3x, like msgpack'd chat
	# messages), 40 pending writes.
	tl_psql_super >/dev/null <<-SQL || die "loading rows failed"
		INSERT INTO checkpoints (thread_id, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
		SELECT 'thread-$batch-' || t, 'cp-' || c, 'cp-' || (c - 1),
		       jsonb_build_object('v', 1, 'ts', now(), 'id', 'cp-' || c, 'channel_versions',
		           jsonb_build_object('messages', c, 'counter', c)),
		       jsonb_build_object('source', 'loop', 'step', c, 'writes', jsonb_build_object('agent', md5(t || '-' || c)))
		FROM generate_series(1, 200) t, generate_series(1, 20) c;
		INSERT INTO checkpoint_blobs (thread_id, channel, version, type, blob)
		SELECT 'thread-$batch-' || t, 'messages', c::text, 'msgpack',
		       convert_to((SELECT string_agg('{"role":"assistant","content":"Step ' || c || ' of thread ' || t || ': ' ||
		           md5(t || '/' || c || '/' || m) || ' ' || md5(m || '/' || c) || '"}', ',')
		           FROM generate_series(1, 40) m), 'UTF8')
		FROM generate_series(1, 200) t, generate_series(1, 20) c;
		INSERT INTO checkpoint_writes (thread_id, checkpoint_id, task_id, idx, channel, type, blob)
		SELECT 'thread-$batch-' || t, 'cp-' || c, 'task-' || (c % 3), w, 'messages', 'msgpack',
		       convert_to(repeat(md5(t || '-' || c || '-' || w), 8), 'UTF8')
		FROM generate_series(1, 200) t, generate_series(1, 20) c, generate_series(0, 1) w;
	SQL
done
tl_sql "CHECKPOINT" >/dev/null
db_bytes=$(tl_sql "SELECT pg_database_size(current_database())")
cluster_bytes=$(du -sb "$TL_PGDATA" | awk '{ print $1 }')
rows=$(tl_sql "SELECT (SELECT count(*) FROM checkpoints) + (SELECT count(*) FROM checkpoint_blobs) + (SELECT count(*) FROM checkpoint_writes)")
echo "backup-bench: loaded in $(since "$t0")s: database $(mib "$db_bytes") MiB, data directory $(mib "$cluster_bytes") MiB, $rows rows"

# ---------------------------------------------------------------- 1. backup

t0=$(now)
tb_backup full >/dev/null || die "pgbackrest backup failed"
br_backup_s=$(since "$t0")
br_info=$(tb_pgbackrest --output=json info)
br_repo_bytes=$(grep -o '"repository":{"delta":[0-9]*,"size":[0-9]*' <<<"$br_info" | tail -n 1 | sed 's/.*"size"://')

bb_lz4=$work/basebackup-lz4
install -d -m 0700 -o postgres -g postgres "$bb_lz4"
t0=$(now)
runuser -u postgres -- "$TL_PGBIN/pg_basebackup" -h "$TL_PGSOCK" -p "$TL_PGPORT" -U postgres -D "$bb_lz4" \
	-Ft --compress=lz4 -X fetch -c fast >"$work/bb.log" 2>&1 || die "pg_basebackup (lz4) failed: $(cat "$work/bb.log")"
bb_lz4_s=$(since "$t0")
bb_lz4_bytes=$(du -sb "$bb_lz4" | awk '{ print $1 }')

bb_plain=$work/basebackup-plain
install -d -m 0700 -o postgres -g postgres "$bb_plain"
t0=$(now)
runuser -u postgres -- "$TL_PGBIN/pg_basebackup" -h "$TL_PGSOCK" -p "$TL_PGPORT" -U postgres -D "$bb_plain" \
	-Fp -X fetch -c fast >"$work/bb.log" 2>&1 || die "pg_basebackup (plain) failed: $(cat "$work/bb.log")"
bb_plain_s=$(since "$t0")
bb_plain_bytes=$(du -sb "$bb_plain" | awk '{ print $1 }')
rm -rf "$bb_plain"

# ---------------------------------------------------------------- 2. restore

restore_parent=$(tl_tmpdir)
chown postgres: "$restore_parent"
port=$(tl_free_port)
t0=$(now)
# To the backup's consistent point, as pg_basebackup's copy is: the WAL written since is not replayed.
tb_pgbackrest --pg1-path="$restore_parent/br" --archive-mode=off --type=immediate --target-action=promote restore >/dev/null ||
	die "pgbackrest restore failed"
br_restore_only_s=$(since "$t0")
start_copy "$restore_parent/br" "$port"
br_restore_s=$(since "$t0")
stop_copy "$restore_parent/br"
rm -rf "$restore_parent/br"

t0=$(now)
install -d -m 0700 -o postgres -g postgres "$restore_parent/bb"
lz4 -dc "$bb_lz4/base.tar.lz4" | runuser -u postgres -- tar -C "$restore_parent/bb" -xf - || die "unpacking failed"
bb_restore_only_s=$(since "$t0")
start_copy "$restore_parent/bb" "$port"
bb_restore_s=$(since "$t0")
stop_copy "$restore_parent/bb"
rm -rf "$restore_parent/bb" "$bb_lz4"

# ---------------------------------------------------------------- 3. data-loss window

tl_sql "CREATE TABLE IF NOT EXISTS bench_writes (seq bigint PRIMARY KEY, at timestamptz NOT NULL)" >/dev/null
windows=()
for trial in $(seq 1 "$trials"); do
	tl_sql "TRUNCATE bench_writes" >/dev/null
	tb_backup incr >/dev/null || die "incremental backup failed"
	# The writer: one row a 100 ms, each its own transaction.
	tl_psql_super -c "DO \$\$ BEGIN FOR i IN 1..100000 LOOP INSERT INTO bench_writes VALUES (i, clock_timestamp()); COMMIT; PERFORM pg_sleep(0.1); END LOOP; END \$\$" >/dev/null 2>&1 &
	writer=$!
	sleep $((20 + RANDOM % 60))
	runuser -u postgres -- kill -9 "$(head -n 1 "$TL_PGDATA/postmaster.pid")"
	wait "$writer" 2>/dev/null || true
	sleep 1
	# The server's own directory after crash recovery: every committed row.
	tl_pg_restart || die "the killed server did not recover"
	committed=$(tl_sql "SELECT max(seq) || ' ' || extract(epoch FROM max(at)) || ' ' || extract(epoch FROM min(at)) FROM bench_writes")
	# The data disk is lost: restore the newest backup and the archived WAL.
	rm -rf "$restore_parent/loss"
	tb_pgbackrest --pg1-path="$restore_parent/loss" --archive-mode=off restore >/dev/null || die "restore failed"
	start_copy "$restore_parent/loss" "$port"
	restored=$(runuser -u postgres -- "$TL_PGBIN/psql" -X -At -h "$restore_parent" -p "$port" -d "$TL_APP_DB" \
		-c "SELECT coalesce(max(seq), 0) || ' ' || coalesce(extract(epoch FROM max(at)), 0) FROM bench_writes")
	stop_copy "$restore_parent/loss"
	# With no row restored, everything since the first row (a tenth of a second
	# after the writer began) was lost.
	window=$(awk -v c="$(cut -d' ' -f2 <<<"$committed")" -v first="$(cut -d' ' -f3 <<<"$committed")" \
		-v r="${restored#* }" -v rs="${restored%% *}" 'BEGIN { if (rs == 0) r = first - 0.1; printf "%.1f", c - r }')
	echo "backup-bench: trial $trial: committed up to row ${committed%% *}, the restore has up to row ${restored%% *}: lost ${window}s of writes"
	windows+=("$window")
done

# ---------------------------------------------------------------- figures

cat <<-EOF

	backup-bench: $(mib "$db_bytes") MiB database ($rows checkpoint rows), data directory $(mib "$cluster_bytes") MiB, PostgreSQL $("$TL_PGBIN/postgres" -V | awk '{ print $3 }'), pgBackRest $(pgbackrest version | awk '{ print $2 }'), $(nproc) cores

	| what | pgBackRest (lz4, 2 processes) | pg_basebackup -Ft --compress=lz4 | pg_basebackup -Fp (plain) |
	|---|---|---|---|
	| full backup, wall time | ${br_backup_s} s | ${bb_lz4_s} s | ${bb_plain_s} s |
	| full backup, size | $(mib "$br_repo_bytes") MiB | $(mib "$bb_lz4_bytes") MiB | $(mib "$bb_plain_bytes") MiB |
	| restore (files only) | ${br_restore_only_s} s | ${bb_restore_only_s} s (lz4 -d, tar x) | |
	| restore until it accepts connections (to the backup's end) | ${br_restore_s} s | ${bb_restore_s} s | |

	data lost after an unclean stop with the data disk gone (archive_timeout 60 s), per trial: ${windows[*]} s
EOF
