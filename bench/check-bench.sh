#!/bin/bash
# check-bench.sh: measures, side by side in one run on the same throwaway
# database (PostgreSQL on loopback, the application role over SCRAM):
#
#   1. whole-process wall time of `checkpoint-agent check` against its peers
#      on the same address, over TCP (127.0.0.1) and over the Unix socket,
#      each with the same SCRAM login: `pg_isready` (no login at all) and
#      `psql -X -c 'select 1'` (the login floor: one authenticated
#      connection and one query); check with the state file warm (verify's
#      answer remembered, as in `run` and repeated Nagios checks) and cold
#      (no state file: verify every time); and check_postgres running the 7
#      nearest actions (connection, backends, txn_idle, txn_time, locks,
#      database_size, txn_wraparound), one process each as Nagios runs them.
#      Also psql and pg_isready as a shell finds them on Debian: /usr/bin/psql
#      is postgresql-common's pg_wrapper, a Perl script that starts before
#      the real program, so a floor timed through it is ~50 ms too slow (why
#      an outside run found check at 0.82x psql and 1.07x pg_isready);
#      Every timed command is first run once and must succeed: a check that
#      fails its login is as fast as pg_isready, and timing one measures
#      nothing;
#   1b. `checkpoint-agent migrate` of an empty database against `psql -f` of
#      the same SQL (the agent's and the langgraph set's up files with their
#      version rows): the floor for applying a schema;
#   2. the peak RSS of `checkpoint-agent run` over BENCH_RUN_SECONDS against
#      prometheus-postgres-exporter after 20 scrapes: anonymous (RssAnon, the
#      process's own memory) and total (VmRSS/VmHWM, with shared libraries);
#   3. CPU per check cycle of `run`: the CPU of N+10 cycles minus that of 10
#      cycles, divided by N, so start-up is not counted.
#
# It prints the figures and the ratios against the targets. Absolute times
# drift between machines (and with their load); the ratios are what to compare.
#
#   bench/check-bench.sh [--runs N] [--run-seconds S] [--cycles N]
#
# Needs root (it makes a cluster as the postgres user), the agent built
# (make), check-postgres, prometheus-postgres-exporter; hyperfine is used
# for check_postgres when present. The peers are timed interleaved (each
# round runs every command once), so the ratios hold on a loaded machine. Environment: BENCH_RUNS (20), BENCH_RUN_SECONDS (120),
# BENCH_CYCLES (1000).
# Exit codes: 0 measured (whether or not the targets are met), 1 a tool or
# the database failed, 64 usage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${BENCH_RUNS:-20}
run_seconds=${BENCH_RUN_SECONDS:-120}
wrapper=/usr/bin	# postgresql-common's pg_wrapper links, for the side-by-side with the real programs
cycles=${BENCH_CYCLES:-1000}

usage() {
	sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'
}

parse_args() {
	while [ "$#" -gt 0 ]; do
		case "$1" in
		--runs) runs=$2; shift 2 ;;
		--run-seconds) run_seconds=$2; shift 2 ;;
		--cycles) cycles=$2; shift 2 ;;
		-h | --help) usage; exit 0 ;;
		*) echo "check-bench: unknown argument '$1'; see --help" >&2; exit 64 ;;
		esac
	done
}

die() {
	echo "check-bench: $*" >&2
	exit 1
}

require_tools() {
	local t
	[ -x "$root/agent/checkpoint-agent" ] || die "agent/checkpoint-agent is not built; run make first"
	for t in check_postgres prometheus-postgres-exporter; do
		command -v "$t" >/dev/null || die "$t is missing; tests/install-deps.sh installs it"
	done
	[ "$(id -u)" -eq 0 ] || die "run as root: the throwaway cluster runs as the postgres user"
}

# The throwaway cluster and its clean-up come from the test library.
start_database() {
	# shellcheck source=../tests/lib/test-lib.sh
	. "$root/tests/lib/test-lib.sh"
	trap 'stop_background; tl_cleanup' EXIT
	tl_pg_start >/dev/null || die "the throwaway PostgreSQL cluster did not start"
	work=$(tl_tmpdir)
	conf=$work/agent.conf
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		migrations: { sets = [ "langgraph" ]; };
		service: { state_file = "$work/state"; data_directory = "$TL_PGDATA"; interval = 1; };
	CONF
	"$root/agent/checkpoint-agent" -c "$conf" migrate 2>/dev/null || die "migrate failed"
	export PGPASSFILE=$TL_PGPASSFILE
}

background_pids=()
stop_background() {
	local p
	for p in "${background_pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	background_pids=()
}

# The 7 check_postgres actions, one process each.
write_check_postgres_script() {
	cpg=$work/check-postgres-7.sh
	cat >"$cpg" <<-SCRIPT
		#!/bin/sh
		c="--dbhost=127.0.0.1 --dbport=$TL_PGPORT --dbuser=$TL_APP_ROLE --dbname=$TL_APP_DB"
		check_postgres --action=connection \$c >/dev/null
		check_postgres --action=backends \$c >/dev/null
		check_postgres --action=txn_idle --warning=60 --critical=300 \$c >/dev/null
		check_postgres --action=txn_time --warning=300 --critical=1800 \$c >/dev/null
		check_postgres --action=locks \$c >/dev/null
		check_postgres --action=database_size --warning=1TB --critical=2TB \$c >/dev/null
		check_postgres --action=txn_wraparound \$c >/dev/null
		exit 0
	SCRIPT
	chmod 0755 "$cpg"
	"$cpg" || die "check_postgres failed; run $cpg by hand to see why"
}

# median_ms CMD...: the median wall time of CMD over $runs runs, in ms.
median_ms() {
	local i t0 t1 times=()
	"$@" >/dev/null 2>&1 || true
	for i in $(seq 1 "$runs"); do
		t0=$(date +%s%N)
		"$@" >/dev/null 2>&1 || true
		t1=$(date +%s%N)
		times+=($(( (t1 - t0) / 1000 )))
	done
	printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) / 1000 }'
}

# hyperfine_ms NAME CMD: the median from hyperfine, in ms.
hyperfine_ms() {
	local json=$work/hf-$1.json
	# -i: every command was run once and checked before (must_succeed), or is meant to fail.
	hyperfine -N -i --warmup 3 --runs "$runs" --export-json "$json" "$2" >/dev/null 2>&1 ||
		hyperfine -i --warmup 3 --runs "$runs" --export-json "$json" "$2" >/dev/null 2>&1 || return 1
	awk -F: '/"median"/ { gsub(/[ ,]/, "", $2); printf "%.1f\n", $2 * 1000; exit }' "$json"
}

wall_ms() {
	local name=$1
	shift
	if command -v hyperfine >/dev/null && hyperfine_ms "$name" "$*"; then
		return 0
	fi
	median_ms "$@"
}

# must_succeed CMD...: runs CMD once; dies unless it exits 0 (a failed run would be timed as a fast one).
must_succeed() {
	"$@" >/dev/null 2>"$work/must.err" || die "$* failed: $(tail -n 3 "$work/must.err")"
}

# The application role also logs in with SCRAM over the Unix socket (peer is the cluster's default there).
allow_scram_on_socket() {
	sed -i "1i local all $TL_APP_ROLE scram-sha-256" "$TL_PGDATA/pg_hba.conf"
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	# libpq looks a socket connection up in the password file under the socket's folder.
	printf '%s:%s:*:%s:%s\n' "${TL_PGSOCK//:/\\:}" "$TL_PGPORT" "$TL_APP_ROLE" "$(cat "$TL_PASSWORD_FILE")" \
		>>"$TL_PGPASSFILE"
	sleep 0.5
}

# agent_conf FILE URI STATE: a config for URI, with STATE as its state file ("" for none).
agent_conf() {
	cat >"$1" <<-CONF
		database: { uri = "$2"; password_file = "$TL_PASSWORD_FILE"; };
		migrations: { sets = [ "langgraph" ]; };
		service: { state_file = "$3"; data_directory = "$TL_PGDATA"; interval = 1; };
	CONF
}

measure_wall_times() {
	local agent=$root/agent/checkpoint-agent tcp_uri sock_uri
	tcp_uri=$TL_DB_URI
	sock_uri="postgresql:///$TL_APP_DB?host=$TL_PGSOCK&port=$TL_PGPORT&user=$TL_APP_ROLE"
	agent_conf "$work/tcp.conf" "$tcp_uri" "$work/state.tcp"
	agent_conf "$work/cold.conf" "$tcp_uri" ""
	agent_conf "$work/sock.conf" "$sock_uri" "$work/state.sock"
	allow_scram_on_socket
	must_succeed "$agent" -c "$work/tcp.conf" check
	must_succeed "$agent" -c "$work/cold.conf" check
	must_succeed "$agent" -c "$work/sock.conf" check
	must_succeed "$TL_PGBIN/psql" -X -q -h 127.0.0.1 -p "$TL_PGPORT" -U "$TL_APP_ROLE" -d "$TL_APP_DB" -c 'select 1'
	must_succeed "$TL_PGBIN/psql" -X -q -h "$TL_PGSOCK" -p "$TL_PGPORT" -U "$TL_APP_ROLE" -d "$TL_APP_DB" -c 'select 1'
	must_succeed "$wrapper/psql" -X -q -h 127.0.0.1 -p "$TL_PGPORT" -U "$TL_APP_ROLE" -d "$TL_APP_DB" -c 'select 1'
	echo "== wall time, median of $runs rounds; each round runs every command once, in turn (interleaved,"
	echo "   so that a change of the machine's load hits every peer alike); same login (SCRAM) for every peer"
	interleaved \
		check "$agent -c $work/tcp.conf check" \
		query "$agent -c $work/tcp.conf check --only query" \
		cold "$agent -c $work/cold.conf check" \
		psql "$TL_PGBIN/psql -X -q -h 127.0.0.1 -p $TL_PGPORT -U $TL_APP_ROLE -d $TL_APP_DB -c select\ 1" \
		isready "$TL_PGBIN/pg_isready -q -h 127.0.0.1 -p $TL_PGPORT" \
		checks "$agent -c $work/sock.conf check" \
		psqls "$TL_PGBIN/psql -X -q -h $TL_PGSOCK -p $TL_PGPORT -U $TL_APP_ROLE -d $TL_APP_DB -c select\ 1" \
		isreadys "$TL_PGBIN/pg_isready -q -h $TL_PGSOCK -p $TL_PGPORT" \
		fail "$agent -c $work/fail.conf check" \
		psqlw "$wrapper/psql -X -q -h 127.0.0.1 -p $TL_PGPORT -U $TL_APP_ROLE -d $TL_APP_DB -c select\ 1" \
		isreadyw "$wrapper/pg_isready -q -h 127.0.0.1 -p $TL_PGPORT"
	t_psql_w=${median[psqlw]} t_ready_w=${median[isreadyw]}
	t_query=${median[query]} t_check=${median[check]} t_cold=${median[cold]} t_psql=${median[psql]} t_ready=${median[isready]}
	t_check_s=${median[checks]} t_psql_s=${median[psqls]} t_ready_s=${median[isreadys]} t_fail=${median[fail]}
	t_cpg=$(wall_ms cpg "$cpg")
	printf '  %-58s %8s ms\n' \
		"TCP 127.0.0.1: checkpoint-agent check (all $(check_count) checks, warm)" "$t_check" \
		"TCP 127.0.0.1: checkpoint-agent check --only query" "$t_query" \
		"TCP 127.0.0.1: checkpoint-agent check (no state file)" "$t_cold" \
		"TCP 127.0.0.1: psql -X -c 'select 1' (the login floor)" "$t_psql" \
		"TCP 127.0.0.1: pg_isready (no login)" "$t_ready" \
		"socket: checkpoint-agent check (warm)" "$t_check_s" \
		"socket: psql -X -c 'select 1'" "$t_psql_s" \
		"socket: pg_isready" "$t_ready_s" \
		"TCP: checkpoint-agent check with a wrong password (fails)" "$t_fail" \
		"TCP: $wrapper/psql -X -c 'select 1' (Perl pg_wrapper)" "$t_psql_w" \
		"TCP: $wrapper/pg_isready (Perl pg_wrapper)" "$t_ready_w" \
		"check_postgres, 7 actions, 7 processes" "$t_cpg"
}

declare -A median

# check_count: how many checks a full `check` runs (from its own summary line).
check_count() {
	"$agent" -c "$work/tcp.conf" check 2>/dev/null | head -n 1 | grep -Eo '[0-9]+ checks' | grep -Eo '[0-9]+' || echo "?"
}

# interleaved NAME CMD [NAME CMD...]: runs every CMD once per round, $runs rounds (after one warm-up
# round); median[NAME] is each one's median wall time in ms. CMD is split on blanks ("\ " keeps one).
interleaved() {
	local -a names=() cmds=()
	local round i t0 t1 n
	while [ "$#" -ge 2 ]; do
		names+=("$1")
		cmds+=("$2")
		shift 2
	done
	for round in $(seq 0 "$runs"); do
		for i in "${!cmds[@]}"; do
			eval "set -- ${cmds[$i]}"
			t0=$(date +%s%N)
			"$@" >/dev/null 2>&1 || true
			t1=$(date +%s%N)
			[ "$round" -gt 0 ] && printf '%s\n' $(( (t1 - t0) / 1000 )) >>"$work/times.${names[$i]}"
		done
	done
	for n in "${names[@]}"; do
		median[$n]=$(sort -n "$work/times.$n" | awk '{ a[NR] = $1 } END { printf "%.1f\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) / 1000 }')
		rm -f "$work/times.$n"
	done
}

# The floor for applying a schema: psql -f of the same SQL the agent applies.
write_raw_sql() {
	local f v
	raw=$work/raw.sql
	{
		echo "CREATE SCHEMA IF NOT EXISTS checkpoint_agent;"
		echo "SET search_path TO checkpoint_agent;"
		for f in "$root"/sql/agent/*.up.sql; do
			cat "$f"
			v=$(basename "$f" | sed 's/_.*//; s/^0*\([0-9]\)/\1/')
			echo "INSERT INTO agent_migrations (v) VALUES ($v);"
		done
		echo "SET search_path TO public;"
		for f in "$root"/sql/langgraph/*.up.sql; do
			cat "$f"
			v=$(basename "$f" | sed 's/_.*//; s/^0*\([0-9]\)/\1/')
			echo "INSERT INTO checkpoint_migrations (v) VALUES ($v);"
		done
	} >"$raw"
	reset=$work/reset.sh
	cat >"$reset" <<-SCRIPT
		#!/bin/sh
		runuser -u postgres -- "$TL_PGBIN/psql" -X -q -h "$TL_PGSOCK" -p "$TL_PGPORT" -d "$TL_APP_DB" -c \
		  "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public AUTHORIZATION pg_database_owner; DROP SCHEMA IF EXISTS checkpoint_agent CASCADE;"
	SCRIPT
	chmod 0755 "$reset"
}

# interleaved_with_reset NAME CMD [NAME CMD...]: like interleaved, with the database emptied (untimed) before each run.
interleaved_with_reset() {
	local -a names=() cmds=()
	local round i t0 t1 n
	while [ "$#" -ge 2 ]; do
		names+=("$1")
		cmds+=("$2")
		shift 2
	done
	for round in $(seq 0 "$runs"); do
		for i in "${!cmds[@]}"; do
			"$reset" >/dev/null 2>&1
			eval "set -- ${cmds[$i]}"
			t0=$(date +%s%N)
			"$@" >/dev/null 2>&1 || true
			t1=$(date +%s%N)
			[ "$round" -gt 0 ] && printf '%s\n' $(( (t1 - t0) / 1000 )) >>"$work/times.${names[$i]}"
		done
	done
	for n in "${names[@]}"; do
		median[$n]=$(sort -n "$work/times.$n" | awk '{ a[NR] = $1 } END { printf "%.1f\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) / 1000 }')
		rm -f "$work/times.$n"
	done
}

measure_migrate() {
	local agent=$root/agent/checkpoint-agent
	write_raw_sql
	"$reset"
	must_succeed "$agent" -c "$work/tcp.conf" migrate
	"$reset"
	must_succeed "$TL_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$TL_PGPORT" -U "$TL_APP_ROLE" \
		-d "$TL_APP_DB" -f "$raw"
	echo "== migrate of an empty database against psql -f of the same SQL (TCP, SCRAM), median of $runs interleaved rounds"
	interleaved_with_reset \
		migrate "$agent -c $work/tcp.conf migrate" \
		raw "$TL_PGBIN/psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $TL_PGPORT -U $TL_APP_ROLE -d $TL_APP_DB -f $raw"
	t_migrate=${median[migrate]} t_raw=${median[raw]}
	printf '  %-58s %8s ms\n' "checkpoint-agent migrate (lock, ledger, 12 versions)" "$t_migrate" \
		"psql -f of the same SQL and version rows" "$t_raw"
	"$reset"
	"$agent" -c "$work/tcp.conf" migrate 2>/dev/null || die "migrate failed"
}

# mem PID FIELD: a field of /proc/PID/status in KiB.
mem() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

measure_run_memory() {
	local pid i anon peak_anon=0
	echo "== memory of \`checkpoint-agent run\` over $run_seconds s (one cycle a second)"
	"$root/agent/checkpoint-agent" -c "$conf" run --interval-ms 1000 2>"$work/run.log" &
	pid=$!
	background_pids+=("$pid")
	for i in $(seq 1 "$run_seconds"); do
		sleep 1
		anon=$(mem "$pid" RssAnon) || die "the agent stopped: $(tail -n 3 "$work/run.log")"
		[ "$anon" -gt "$peak_anon" ] && peak_anon=$anon
	done
	run_anon=$peak_anon
	run_total=$(mem "$pid" VmHWM)
	stop_background
	printf '  %-44s %8s KiB\n' "peak RssAnon" "$run_anon" "peak total RSS (VmHWM)" "$run_total"
}

# scrape PORT: GET /metrics from 127.0.0.1:PORT (HTTP/1.0, so the server closes), body and headers to stdout.
scrape() {
	local fd
	exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
	cat <&"$fd"
	exec {fd}>&-
}

measure_exporter_memory() {
	local pid port i
	echo "== memory of prometheus-postgres-exporter after 20 scrapes"
	port=$(tl_free_port)
	DATA_SOURCE_URI="127.0.0.1:$TL_PGPORT/$TL_APP_DB?sslmode=disable" DATA_SOURCE_USER=$TL_APP_ROLE \
		DATA_SOURCE_PASS_FILE=$TL_PASSWORD_FILE \
		prometheus-postgres-exporter --web.listen-address="127.0.0.1:$port" >"$work/exporter.log" 2>&1 &
	pid=$!
	background_pids+=("$pid")
	for i in $(seq 1 50); do
		scrape "$port" >/dev/null 2>&1 && break
		sleep 0.1
	done
	for i in $(seq 1 20); do
		scrape "$port" >"$work/exporter.prom" 2>/dev/null ||
			die "the exporter does not answer: $(tail -n 3 "$work/exporter.log")"
	done
	grep -q '^pg_up 1' "$work/exporter.prom" || die "the exporter could not reach the database (pg_up is not 1)"
	exp_anon=$(mem "$pid" RssAnon)
	exp_total=$(mem "$pid" VmRSS)
	stop_background
	printf '  %-44s %8s KiB\n' "RssAnon" "$exp_anon" "total RSS (VmRSS)" "$exp_total"
}

# cpu_ms N: user+system CPU of `run --cycles N --interval-ms 0`, in ms.
cpu_ms() {
	local t
	t=$( { TIMEFORMAT='%3U %3S'; time "$root/agent/checkpoint-agent" -c "$conf" run --cycles "$1" --interval-ms 0 \
		>/dev/null 2>&1; } 2>&1)
	awk '{ printf "%.1f\n", ($1 + $2) * 1000 }' <<<"$t"
}

measure_cpu_per_cycle() {
	local base full
	echo "== CPU per check cycle of \`run\` (persistent connection)"
	base=$(cpu_ms 10)
	full=$(cpu_ms $((cycles + 10)))
	cpu_cycle=$(awk -v a="$base" -v b="$full" -v n="$cycles" 'BEGIN { printf "%.3f\n", (b - a) / n }')
	printf '  %-44s %8s ms\n' "CPU of 10 cycles" "$base" "CPU of $((cycles + 10)) cycles" "$full" \
		"CPU per cycle" "$cpu_cycle"
}

# verdict LABEL VALUE OP TARGET: one line of the summary.
verdict() {
	local ok
	ok=$(awk -v v="$2" -v t="$4" -v op="$3" 'BEGIN { print (op == "<=" ? v <= t : v >= t) ? "met" : "MISSED" }')
	printf '  %-52s %8s  (target %s %s: %s)\n' "$1" "$2" "$3" "$4" "$ok"
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

print_ratios() {
	echo "== ratios"
	verdict "check / psql select 1, TCP (the login floor)" "$(ratio "$t_check" "$t_psql")" "<=" 1.2
	verdict "check / psql select 1, socket" "$(ratio "$t_check_s" "$t_psql_s")" "<=" 1.2
	verdict "check --only query / psql select 1, TCP (the same work)" "$(ratio "$t_query" "$t_psql")" "<=" 1.2
	printf '  %-52s %8s\n' "check / pg_isready, TCP (pg_isready never logs in)" "$(ratio "$t_check" "$t_ready")" \
		"check without state file / with it" "$(ratio "$t_cold" "$t_check")" \
		"psql select 1 / pg_isready, TCP" "$(ratio "$t_psql" "$t_ready")" \
		"a failing check / pg_isready, TCP" "$(ratio "$t_fail" "$t_ready")" \
		"check / $wrapper/psql select 1 (Perl wrapper)" "$(ratio "$t_check" "$t_psql_w")" \
		"check / $wrapper/pg_isready (Perl wrapper)" "$(ratio "$t_check" "$t_ready_w")"
	verdict "migrate / psql -f of the same SQL" "$(ratio "$t_migrate" "$t_raw")" "<=" 1.2
	verdict "check_postgres time / check time" "$(awk -v a="$t_cpg" -v b="$t_check" 'BEGIN { printf "%.1f", a / b }')" ">=" 10
	verdict "exporter RssAnon / run peak RssAnon" "$(awk -v a="$exp_anon" -v b="$run_anon" 'BEGIN { printf "%.2f", a / b }')" ">=" 4
	verdict "exporter total RSS / run peak total RSS" "$(awk -v a="$exp_total" -v b="$run_total" 'BEGIN { printf "%.2f", a / b }')" ">=" 4
	verdict "CPU per cycle (ms)" "$cpu_cycle" "<=" 5
}

main() {
	parse_args "$@"
	require_tools
	start_database
	echo "checkpoint-agent $("$root/agent/checkpoint-agent" --version | awk '{print $2}'), PostgreSQL $(tl_sql 'SHOW server_version'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	write_check_postgres_script
	printf 'database: { uri = "%s"; password_file = "%s/wrong-password"; };\n' "$TL_DB_URI" "$work" >"$work/fail.conf"
	echo "not-the-password" >"$work/wrong-password"
	chmod 0600 "$work/wrong-password"
	measure_wall_times
	measure_migrate
	measure_cpu_per_cycle
	measure_exporter_memory
	measure_run_memory
	print_ratios
}

main "$@"
