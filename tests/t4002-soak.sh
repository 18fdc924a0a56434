#!/bin/bash
# t4002: the service's memory stays flat. `run --cycles N --interval-ms 0`
# runs N check cycles back to back (the state and metrics files are
# rewritten every cycle); its anonymous RSS after the first 1,000 cycles and
# near the end of 10,000 must not differ by more than 64 KiB. A shorter run
# under valgrind must show no error and no definite leak.
#
# Environment: T4002_CYCLES (default 10000), T4002_VALGRIND_CYCLES (default 50).
. "$(dirname "$0")/lib/test-lib.sh"

LISTEN=$TL_ROOT/tests/tools/notify-listen
CYCLES=${T4002_CYCLES:-10000}
VG_CYCLES=${T4002_VALGRIND_CYCLES:-50}

suite_setup() {
	make -s -C "$TL_ROOT" tests/tools/notify-listen >/dev/null || return 1
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		migrations: { sets = [ "langgraph", "langgraph-store" ]; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; metrics_file = "$dir/metrics.prom"; };
	CONF
	tl_agent -c "$conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

# rss_anon PID: RssAnon of PID in KiB.
rss_anon() {
	awk '$1 == "RssAnon:" { print $2 }' "/proc/$1/status" 2>/dev/null
}

# cycles_done: STATUS= lines so far, one per cycle and one for the start-up check.
cycles_done() {
	grep -c '^[0-9]* STATUS=OK' "$dir/notify.log"
}

test_01_anonymous_memory_is_flat_over_the_cycles() {
	local listener pid early late rc start
	"$LISTEN" "$dir/notify.sock" >"$dir/notify.log" &
	listener=$!
	sleep 0.2
	start=$(date +%s)
	NOTIFY_SOCKET=$dir/notify.sock "$TL_AGENT" -c "$conf" run --cycles "$CYCLES" --interval-ms 0 2>"$dir/agent.log" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null && [ "$(cycles_done)" -lt 1000 ]; do
		sleep 0.2
	done
	early=$(rss_anon "$pid")
	while kill -0 "$pid" 2>/dev/null && [ "$(cycles_done)" -lt $((CYCLES - 200)) ]; do
		sleep 0.5
	done
	late=$(rss_anon "$pid")
	wait "$pid"
	rc=$?
	kill "$listener"
	wait "$listener" 2>/dev/null
	tl_log "$(cycles_done) cycles in $(( $(date +%s) - start )) s; RssAnon ${early:-?} KiB after 1000, ${late:-?} KiB near the end"
	assertEquals "exit code; log: $(tail -n 5 "$dir/agent.log")" 0 "$rc"
	assertEquals "every cycle passed (and the start-up check)" "$((CYCLES + 1))" "$(cycles_done)"
	assertNotNull "sampled early" "$early"
	assertNotNull "sampled late" "$late"
	assertTrue "RssAnon grew from $early to $late KiB" "[ $((late - early)) -le 64 ]"
}

test_02_valgrind_finds_no_error_and_no_leak() {
	command -v valgrind >/dev/null || { startSkipping; return; }
	local log rc
	log=$dir/valgrind.log
	valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		--log-file="$log" "$TL_AGENT" -c "$conf" run --cycles "$VG_CYCLES" --interval-ms 0 2>"$dir/vg-agent.log"
	rc=$?
	assertEquals "valgrind exit code; report: $(head -c 3000 "$log")" 0 "$rc"
}

tl_run
