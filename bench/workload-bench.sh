#!/bin/bash
# workload-bench.sh: does the toolkit's tuning pay for LangGraph's checkpoint
# workload? Two throwaway clusters side by side in one run, on this machine:
#   defaults  PostgreSQL 15 as initdb (and so Debian's pg_createcluster)
#             makes it: shared_buffers 128MB, max_wal_size 1GB, pglz TOAST,
#             no WAL compression, 5 min checkpoints, ...
#   tuned     the same, plus conf.d/50-checkpoint-tuning.conf exactly as
#             provisioning writes it (provision/tune-values.sh for this
#             machine, or its cgroup's memory limit, and the template), and
#             the per-table autovacuum settings of the table-tuning step.
# Both: fsync on, the schema applied by the agent, the agent's role layout
# left out (the application's role owns and writes), connections over
# loopback TCP without TLS (the two clusters differ in their tuning only).
#
# The workload is LangGraph's own: bench/workload-bench.cjs drives the real JS
# checkpointer (PostgresSaver from the npm tree tests/js/install.sh makes),
# with N concurrent writers on a pool of N connections (N = the pool size of
# provision/defaults.env), each repeating the superstep getTuple + putWrites +
# put, with channel payloads of 1 KB, 100 KB and 20 MB (JSON message lists of
# English-like text). For each cluster and size it reports: steps per second,
# p50 and p99 of each operation, bytes on disk per checkpoint (the three
# tables with TOAST and indexes, over the checkpoints written), WAL bytes per
# checkpoint, the checkpoints forced by WAL volume (checkpoints_req), and
# where the CPU went: the client's (one Node.js thread) and the server
# backends' CPU seconds per second of the run. A client near 1.0 is the
# bottleneck, and no server setting can make that run faster.
# Before the rounds, a short unmeasured run warms each cluster and the
# client; rounds alternate the order of the clusters, so that the machine's
# noise (other work on its 2 cores) falls on both.
#
#   bench/workload-bench.sh [ROUNDS]          (default 2)
#
# Environment: CPA_BENCH_WRITERS (default CPA_POOL_SIZE of defaults.env),
# CPA_BENCH_SIZES (bytes, default "1024 102400 20971520"), CPA_BENCH_SECONDS
# (per size and cluster, default 20), CPA_BENCH_MAX_STEPS_LARGE (steps per
# writer for payloads of 1 MB and more, default 1: a writer's first step is a
# getTuple of nothing and a put of 20 MB; from the second on, getTuple reads
# the 20 MB values and the step adds a putWrites, and the JS client then spent
# about 15 s of its single thread's CPU per step, 5 minutes per cluster with
# 20 writers), TL_AGENT (the agent, for the schema; build it with make).
# A measurement for the README, not a test: it prints figures and never
# fails on them. Exit codes: 0 ran, 1 could not run (cluster, npm, agent).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/test-lib.sh
. "$ROOT/tests/lib/test-lib.sh"
# shellcheck source=provision/lib/common.sh
. "$ROOT/provision/lib/common.sh"

ROUNDS=${1:-2}
WRITERS=${CPA_BENCH_WRITERS:-$(sed -n 's/^CPA_POOL_SIZE=//p' "$ROOT/provision/defaults.env")}
SIZES=${CPA_BENCH_SIZES:-1024 102400 20971520}
BENCH_SECONDS=${CPA_BENCH_SECONDS:-20}
MAX_STEPS_LARGE=${CPA_BENCH_MAX_STEPS_LARGE:-1}
CLIENT=$ROOT/bench/workload-bench.cjs
RESULTS=

fail() {
	echo "workload-bench: $*" >&2
	exit 1
}

# start_cluster NAME: a throwaway cluster, fsync on, the application's role
# and database; NAME_DIR, NAME_PORT, NAME_PGPASS are set.
start_cluster() {
	local name=$1 dir port pw
	dir=$(tl_tmpdir) || return 1
	chown postgres: "$dir"
	runuser -u postgres -- "$TL_PGBIN/initdb" -D "$dir/data" -U postgres --auth-local=peer \
		--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	port=$(tl_free_port) || return 1
	cat >>"$dir/data/postgresql.conf" <<-EOF
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$dir'
		log_min_messages = warning
		log_checkpoints = on
		include_dir = 'conf.d'
	EOF
	mkdir -p "$dir/data/conf.d"
	chown postgres: "$dir/data/conf.d"
	printf -v "${name}_DIR" '%s' "$dir"
	printf -v "${name}_PORT" '%s' "$port"
	printf -v "${name}_PGPASS" '%s' "$dir/pgpass"
	pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	printf '127.0.0.1:%s:*:%s:%s\n' "$port" "$TL_APP_ROLE" "$pw" >"$dir/pgpass"
	chmod 0600 "$dir/pgpass"
	printf '%s\n' "$pw" >"$dir/password"
	chmod 0600 "$dir/password"
}

# run_cluster NAME: start it (after its conf.d is in place), make the role,
# the database and the schema.
run_cluster() {
	local name=$1 dir port
	dir=${name}_DIR
	dir=${!dir}
	port=${name}_PORT
	port=${!port}
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ tail -n 20 "$dir/server.log" >&2; return 1; }
	TL_CLUSTERS+=("$dir/data")
	# The password through the pipe (a throwaway cluster's, never a command line).
	psql_as_super "$name" postgres >/dev/null <<-EOF || return 1
		SET password_encryption = 'scram-sha-256';
		CREATE ROLE $TL_APP_ROLE LOGIN PASSWORD '$(cat "$dir/password")';
		CREATE DATABASE $TL_APP_DB OWNER $TL_APP_ROLE;
	EOF
	cat >"$dir/agent.conf" <<-EOF
		database: { uri = "postgresql://$TL_APP_ROLE@127.0.0.1:$port/$TL_APP_DB?sslmode=disable";
		  password_file = "$dir/password"; };
	EOF
	"$TL_AGENT" -c "$dir/agent.conf" migrate >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log" >&2; return 1; }
}

# psql_as_super NAME DB [psql args]: the superuser on cluster NAME.
psql_as_super() {
	local name=$1 db=$2 dir port
	shift 2
	dir=${name}_DIR
	port=${name}_PORT
	runuser -u postgres -- "$TL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "${!dir}" -p "${!port}" -d "$db" "$@"
}

# tuning_file: conf.d/50-checkpoint-tuning.conf as the tune step writes it.
tuning_file() {
	local -a values
	mapfile -t values < <("$ROOT/provision/tune-values.sh" --pool-size "$WRITERS" --instances 1)
	cpa_render "$ROOT/provision/templates/postgresql-tuning.conf.j2" "${values[@]}"
}

# backend_cpu_ticks NAME: the CPU time (clock ticks) of cluster NAME's
# backends that have exited: the postmaster reaps them, and the kernel adds
# their time to its children's (cutime + cstime, fields 16 and 17).
backend_cpu_ticks() {
	local dir=${1}_DIR pid
	pid=$(head -n 1 "${!dir}/data/postmaster.pid")
	awk '{ print $16 + $17 }' "/proc/$pid/stat"
}

# run_client NAME SIZE SECONDS MAX_STEPS LABEL: the JS client against NAME; prints its JSON.
run_client() {
	local dir=${1}_DIR port=${1}_PORT
	PGPASSFILE="${!dir}/pgpass" NODE_PATH=$NODE_PATH "$JS_NODE" --no-deprecation "$CLIENT" \
		--uri "postgresql://$TL_APP_ROLE@127.0.0.1:${!port}/$TL_APP_DB?sslmode=disable" \
		--writers "$WRITERS" --payload "$2" --seconds "$3" --max-steps "$4" --label "$5"
}

# measure NAME SIZE ROUND: one run of the workload; appends a result line.
measure() {
	local name=$1 size=$2 round=$3 json lsn_before lsn_after req_before req_after seconds max_steps stats
	local cpu_before cpu_after
	psql_as_super "$name" "$TL_APP_DB" -c "TRUNCATE checkpoints, checkpoint_blobs, checkpoint_writes; CHECKPOINT" >/dev/null
	psql_as_super "$name" "$TL_APP_DB" -c "VACUUM checkpoints, checkpoint_blobs, checkpoint_writes" >/dev/null
	lsn_before=$(psql_as_super "$name" postgres -c "SELECT pg_current_wal_lsn()")
	req_before=$(psql_as_super "$name" postgres -c "SELECT checkpoints_req FROM pg_stat_bgwriter")
	seconds=$BENCH_SECONDS
	max_steps=0
	if [ "$size" -ge 1048576 ]; then
		max_steps=$MAX_STEPS_LARGE
		seconds=600
	fi
	# The previous run's dirty pages are written out now, not during this one's commits.
	sync
	cpu_before=$(backend_cpu_ticks "$name")
	json=$(run_client "$name" "$size" "$seconds" "$max_steps" "$name-$round") ||
		fail "the workload failed on $name (payload $size)"
	lsn_after=$(psql_as_super "$name" postgres -c "SELECT pg_current_wal_lsn()")
	cpu_after=$(backend_cpu_ticks "$name")
	req_after=$(psql_as_super "$name" postgres -c "SELECT checkpoints_req FROM pg_stat_bgwriter")
	stats=$(psql_as_super "$name" "$TL_APP_DB" -F ' ' -c "SELECT (SELECT count(*) FROM checkpoints),
		pg_total_relation_size('checkpoints') + pg_total_relation_size('checkpoint_blobs') + pg_total_relation_size('checkpoint_writes'),
		pg_wal_lsn_diff('$lsn_after', '$lsn_before')")
	printf '%s %s %s %s %s %s %s\n' "$round" "$size" "$name" "$stats" "$((req_after - req_before))" \
		"$(awk -v t="$((cpu_after - cpu_before))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')" \
		"$json" >>"$RESULTS"
	printf '  round %s, %s, payload %s: %s\n' "$round" "$name" "$(human "$size")" "$json" >&2
}

human() {
	awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%g MB", b / 1048576; else if (b >= 1024) printf "%g KB", b / 1024; else printf "%d B", b }'
}

# report: one table, the clusters side by side, per size and round, and the ratios.
report() {
	python3 - "$RESULTS" <<-'EOF'
		import json, sys, statistics
		rows = {}
		for line in open(sys.argv[1]):
		    rnd, size, name, cps, disk, wal, req, server_cpu, js = line.split(" ", 8)
		    d = json.loads(js)
		    d.update(checkpoints=int(cps), disk=int(disk), wal=float(wal), req=int(req), server_cpu=float(server_cpu))
		    rows.setdefault((int(size), name), []).append(d)
		def human(b):
		    return "%.3g MB" % (b / 1048576) if b >= 1048576 else "%.3g KB" % (b / 1024)
		print("%-7s %-9s %9s %-28s %-28s %-28s %10s %10s %5s %11s" % ("payload", "cluster", "steps/s", "getTuple p50/p99 ms",
		      "putWrites p50/p99 ms", "put p50/p99 ms", "disk/ckpt", "WAL/ckpt", "req", "CPU cl/srv"))
		for size in sorted({k[0] for k in rows}):
		    med = {}
		    for name in ("defaults", "tuned"):
		        for d in rows.get((size, name), []):
		            def pp(op):
		                return "%s / %s" % (d[op]["p50_ms"], d[op]["p99_ms"])
		            print("%-7s %-9s %9.2f %-28s %-28s %-28s %10s %10s %5d %5.2f/%5.2f" % (human(size), name,
		                  d["steps_per_second"], pp("get_tuple"), pp("put_writes"), pp("put"),
		                  human(d["disk"] / max(1, d["checkpoints"])), human(d["wal"] / max(1, d["checkpoints"])), d["req"],
		                  d["client_cpu_s"] / d["seconds"], d["server_cpu"] / d["seconds"]))
		        runs = rows.get((size, name), [])
		        if runs:
		            med[name] = (statistics.median(r["steps_per_second"] for r in runs),
		                         statistics.median(max(r[o]["p99_ms"] or 0 for o in ("get_tuple", "put_writes", "put")) for r in runs))
		    if len(med) == 2:
		        print("%-7s tuned/defaults: throughput x%.2f (median of rounds), worst p99 %.0f ms vs %.0f ms" %
		              (human(size), med["tuned"][0] / med["defaults"][0], med["tuned"][1], med["defaults"][1]))
	EOF
}

main() {
	local round size order name
	[ -x "$TL_AGENT" ] || fail "$TL_AGENT is not built: run make"
	NODE_PATH=$("$ROOT/tests/js/install.sh") || fail "the npm tree could not be installed (tests/js/install.sh)"
	JS_NODE=$("$ROOT/tests/js/install.sh" --node) || fail "no Node.js 20 (tests/js/install.sh --node)"
	RESULTS=$(tl_tmpdir)/results
	trap tl_cleanup EXIT
	start_cluster defaults || fail "the defaults cluster did not start"
	start_cluster tuned || fail "the tuned cluster did not start"
	# shellcheck disable=SC2154 # set by start_cluster
	tuning_file >"$tuned_DIR/data/conf.d/50-checkpoint-tuning.conf"
	run_cluster defaults || fail "the defaults cluster did not start"
	run_cluster tuned || fail "the tuned cluster did not start"
	cpa_render "$ROOT/provision/templates/checkpoint-autovacuum.sql.j2" cpa_db_schema=public |
		psql_as_super tuned "$TL_APP_DB" >/dev/null || fail "the per-table autovacuum settings failed"
	echo "workload-bench: $WRITERS writers; payloads $SIZES; $ROUNDS rounds; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	grep -E '^(mem_mb|cores|shared_buffers|max_wal_size|max_connections|work_mem)=' <(
		"$ROOT/provision/tune-values.sh" --pool-size "$WRITERS" --instances 1) | paste -sd ' ' | sed 's/^/  tuned for: /' >&2
	for name in defaults tuned; do
		run_client "$name" 1024 3 0 "$name-warmup" >/dev/null || fail "the warm-up run failed on $name"
	done
	for ((round = 1; round <= ROUNDS; round++)); do
		for size in $SIZES; do
			if [ $((round % 2)) = 1 ]; then order="defaults tuned"; else order="tuned defaults"; fi
			for name in $order; do
				measure "$name" "$size" "$round"
			done
		done
	done
	echo "workload-bench: load at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	report
}

main "$@"
