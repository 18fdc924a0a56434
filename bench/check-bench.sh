#!/bin/bash
# check-bench.sh: measures, side by side in one run on the same throwaway
# database (PostgreSQL on loopback, the application role over SCRAM):
#
#   1. whole-process wall time of `checkpoint-agent check` against
#      `pg_isready` and against check_postgres running the 7 nearest actions
#      (connection, backends, txn_idle, txn_time, locks, database_size,
#      txn_wraparound), one process each as a Nagios setup runs them;
#   2. the peak RSS of `checkpoint-agent run` over BENCH_RUN_SECONDS against
#      prometheus-postgres-exporter after 20 scrapes: anonymous (RssAnon, the
#      process's own memory) and total (VmRSS/VmHWM, with shared libraries);
#   3. CPU per check cycle of `run`: the CPU of N+10 cycles minus that of 10
#      cycles, divided by N, so start-up is not counted.
#
# It prints the figures and the ratios against the targets of issue 3.
# Absolute times drift between machines; the ratios are what to compare.
#
#   bench/check-bench.sh [--runs N] [--run-seconds S] [--cycles N]
#
# Needs root (it makes a cluster as the postgres user), the agent built
# (make), check-postgres, prometheus-postgres-exporter; hyperfine is used
# when present. Environment: BENCH_RUNS (20), BENCH_RUN_SECONDS (120),
# BENCH_CYCLES (1000).
# Exit codes: 0 measured (whether or not the targets are met), 1 a tool or
# the database failed, 64 usage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${BENCH_RUNS:-20}
run_seconds=${BENCH_RUN_SECONDS:-120}
cycles=${BENCH_CYCLES:-1000}

usage() {
	sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
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
	hyperfine -N --warmup 3 --runs "$runs" --export-json "$json" "$2" >/dev/null 2>&1 ||
		hyperfine --warmup 3 --runs "$runs" --export-json "$json" "$2" >/dev/null 2>&1 || return 1
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

measure_wall_times() {
	local agent=$root/agent/checkpoint-agent
	echo "== wall time, median of $runs runs$(command -v hyperfine >/dev/null && echo ' (hyperfine)')"
	t_check=$(wall_ms check "$agent -c $conf check")
	t_ready=$(wall_ms isready "$TL_PGBIN/pg_isready -q -h 127.0.0.1 -p $TL_PGPORT")
	t_cpg=$(wall_ms cpg "$cpg")
	# The floor of any real check: one authenticated (SCRAM) connection and one query.
	t_psql=$(wall_ms psql "$TL_PGBIN/psql -X -q -h 127.0.0.1 -p $TL_PGPORT -U $TL_APP_ROLE -d $TL_APP_DB -c SELECT")
	printf '  %-44s %8s ms\n' "checkpoint-agent check (11 checks)" "$t_check" \
		"pg_isready -h 127.0.0.1 (ping only)" "$t_ready" "check_postgres, 7 actions, 7 processes" "$t_cpg" \
		"psql -c SELECT as the app role (floor)" "$t_psql"
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

print_ratios() {
	echo "== ratios"
	verdict "check time / pg_isready time" "$(awk -v a="$t_check" -v b="$t_ready" 'BEGIN { printf "%.2f", a / b }')" "<=" 2
	printf '  %-52s %8s  (a SCRAM login and one query, for scale)\n' "psql -c SELECT time / pg_isready time" \
		"$(awk -v a="$t_psql" -v b="$t_ready" 'BEGIN { printf "%.2f", a / b }')"
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
	measure_wall_times
	measure_cpu_per_cycle
	measure_exporter_memory
	measure_run_memory
	print_ratios
}

main "$@"
