#!/bin/bash
# t4003-retention-sweeps: the TTL sweeps of `checkpoint-agent run` (the
# retention group), watched through the sd_notify protocol without systemd
# (tests/tools/notify-listen records every message with its time, as in
# t4001): off by default; a sweep prunes and says so in STATUS= and the
# journal; a long sweep delays neither WATCHDOG=1 (WATCHDOG_USEC=1 s) nor the
# check cycles; a reload changes the TTL, turns sweeps on, or stops a sweep
# in flight; SIGTERM stops a sweep at once, leaving no thread half pruned;
# sweep_limit bounds a sweep and the next one goes on.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

LISTEN=$TL_ROOT/tests/tools/notify-listen
OLD_AGE=$((40 * 86400))

suite_setup() {
	make -s -C "$TL_ROOT" tests/tools/notify-listen >/dev/null || return 1
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	write_conf ""
	tl_agent -c "$conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

setUp() {
	tl_sql "TRUNCATE checkpoints, checkpoint_blobs, checkpoint_writes" >/dev/null
	: >"$dir/agent.log"
	NOTIFY_LOG=$dir/notify.log
	"$LISTEN" "$dir/notify.sock" >"$NOTIFY_LOG" &
	LISTEN_PID=$!
	AGENT_PID=
	for _ in $(seq 1 50); do [ -S "$dir/notify.sock" ] && break; sleep 0.1; done
}

tearDown() {
	if [ -n "$AGENT_PID" ]; then
		kill -TERM "$AGENT_PID" 2>/dev/null
		wait "$AGENT_PID" 2>/dev/null
	fi
	kill "$LISTEN_PID" 2>/dev/null
	wait "$LISTEN_PID" 2>/dev/null
	return 0
}

# write_conf TTL [RETENTION...]: the service's config; TTL "" is off.
write_conf() {
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; connect_timeout = 2;
		            statement_timeout = 5000; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; startup_timeout = 60; };
		retention: { ttl = "$1"; ${2:-} };
	CONF
}

start_agent() {
	NOTIFY_SOCKET=$dir/notify.sock WATCHDOG_USEC=1000000 "$TL_AGENT" -c "$conf" run --interval-ms 500 \
		2>>"$dir/agent.log" &
	AGENT_PID=$!
}

messages() {
	cut -d' ' -f2- "$NOTIFY_LOG"
}

# wait_status REGEX [SECONDS]: until a STATUS= message matches REGEX (extended).
wait_status() {
	local deadline=$((SECONDS + ${2:-20}))
	while [ "$SECONDS" -lt "$deadline" ]; do
		messages | grep -Eq -- "^STATUS=.*$1" && return 0
		sleep 0.1
	done
	fail "no STATUS= matching '$1' within ${2:-20} s; last: $(messages | grep '^STATUS=' | tail -n 2)"
	return 1
}

# time_of REGEX: the time (ms) of the first message matching REGEX.
time_of() {
	awk -v re="$1" '{ line = $0; sub(/^[0-9]+ /, "", line) } line ~ re { print $1; exit }' "$NOTIFY_LOG"
}

old_threads() {
	tl_sql "SELECT count(DISTINCT thread_id) FROM checkpoints WHERE thread_id LIKE 'old-%'"
}

# broken_threads STEPS: threads that have some but not all of their checkpoints.
broken_threads() {
	tl_sql "SELECT count(*) FROM (SELECT thread_id FROM checkpoints GROUP BY thread_id HAVING count(*) <> $1) x"
}

test_01_retention_is_off_by_default() {
	tl_gen_threads old- 30 2 "$OLD_AGE" || fail "gen"
	write_conf ""
	start_agent
	wait_status 'OK: all [0-9]+ checks pass'
	sleep 2
	assertEquals "nothing pruned" 30 "$(old_threads)"
	assertEquals "no retention state in STATUS=" "" "$(messages | grep '^STATUS=.*retention:')"
}

test_02_a_sweep_prunes_old_threads_and_says_so() {
	tl_gen_threads old- 200 3 "$OLD_AGE" || fail "gen"
	tl_gen_threads new- 20 3 600 || fail "gen"
	write_conf 30d 'sweep_interval = "1h";'
	start_agent
	wait_status 'retention: last sweep at [0-9:]+ pruned 200 threads'
	assertEquals "old threads gone" 0 "$(old_threads)"
	assertEquals "young threads stay" 60 "$(tl_sql "SELECT count(*) FROM checkpoints WHERE thread_id LIKE 'new-%'")"
	assertTrue "the journal line: $(cat "$dir/agent.log")" \
		"grep -q 'retention sweep (delete, ttl 30d): 200 threads pruned' '$dir/agent.log'"
	assertTrue "READY=1 came before the sweep's result" \
		"[ $(time_of '^READY=1$') -le $(time_of 'retention: last sweep') ]"
}

test_03_a_long_sweep_delays_neither_the_watchdog_nor_the_checks() {
	tl_gen_threads old- 4000 2 "$OLD_AGE" || fail "gen"
	write_conf 30d 'batch = 1; sweep_limit = 10000;'
	start_agent
	wait_status 'retention: sweeping, [0-9]+ threads pruned so far' 30
	tl_wait_for 10 "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'checkpoint-agent retention'" ||
		fail "the sweep has no connection of its own"
	wait_status 'retention: last sweep at' 120
	local from to stats
	from=$(time_of 'retention: sweeping, ')
	to=$(time_of 'retention: last sweep at')
	# Gaps between WATCHDOG=1 and between check cycles (STATUS= lines) while the sweep ran.
	stats=$(awk -v from="$from" -v to="$to" '
		$1 < from || $1 > to { next }
		$2 == "WATCHDOG=1" { if (w) { g = $1 - w; if (g > wmax) wmax = g }; w = $1; nw++ }
		$2 ~ /^STATUS=/ { if (c) { g = $1 - c; if (g > cmax) cmax = g }; c = $1; nc++ }
		END { printf "%d %d %d %d", wmax, nw, cmax, nc }' "$NOTIFY_LOG")
	read -r wmax nw cmax nc <<<"$stats"
	tl_log "sweep of $(( (to - from) / 1000 )) s: $nw WATCHDOG=1 (largest gap $wmax ms), $nc cycles (largest gap $cmax ms)"
	assertTrue "the sweep ran long enough to tell ($((to - from)) ms)" "[ $((to - from)) -ge 2000 ]"
	assertTrue "WATCHDOG=1 never later than WATCHDOG_USEC (largest gap $wmax ms)" "[ $wmax -gt 0 ] && [ $wmax -lt 1000 ]"
	assertTrue "a check cycle at least every 1.5 s (largest gap $cmax ms)" "[ $cmax -gt 0 ] && [ $cmax -lt 1500 ]"
	assertEquals "all pruned" 0 "$(old_threads)"
}

test_04_a_reload_stops_a_sweep_in_flight() {
	tl_gen_threads old- 4000 2 "$OLD_AGE" || fail "gen"
	write_conf 30d 'batch = 1;'
	start_agent
	wait_status 'retention: sweeping, [1-9][0-9]* threads pruned so far' 30
	write_conf ""
	kill -HUP "$AGENT_PID"
	wait_status 'reloaded'
	sleep 0.5
	local left
	left=$(old_threads)
	sleep 1.5
	assertEquals "no pruning after the reload turned retention off" "$left" "$(old_threads)"
	assertTrue "threads are left ($left)" "[ $left -gt 0 ]"
	assertEquals "no thread half pruned" 0 "$(broken_threads 2)"
	assertEquals "STATUS= has no retention state once it is off" "" \
		"$(messages | sed -n '/^STATUS=reloaded/,$p' | sed 1d | grep 'retention:')"
}

test_05_a_reload_turns_sweeps_on_and_changes_the_ttl() {
	tl_gen_threads old- 100 2 "$OLD_AGE" || fail "gen"
	write_conf 60d
	start_agent
	wait_status 'retention: last sweep at [0-9:]+ pruned 0 threads'
	assertEquals "a 60d TTL leaves 40-day-old threads" 100 "$(old_threads)"
	write_conf 30d
	kill -HUP "$AGENT_PID"
	wait_status 'retention: last sweep at [0-9:]+ pruned 100 threads'
	assertEquals "the 30d TTL takes them" 0 "$(old_threads)"
}

test_06_sigterm_stops_a_sweep_at_once() {
	tl_gen_threads old- 4000 2 "$OLD_AGE" || fail "gen"
	write_conf 30d 'batch = 1;'
	start_agent
	wait_status 'retention: sweeping, [1-9][0-9]* threads pruned so far' 30
	local t0 rc
	t0=$(date +%s%N)
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID"
	rc=$?
	AGENT_PID=
	local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	assertEquals "exit 0 on SIGTERM" 0 "$rc"
	assertTrue "stopped within 2 s ($ms ms)" "[ $ms -lt 2000 ]"
	assertTrue "STOPPING=1 sent" "messages | grep -q '^STOPPING=1$'"
	assertTrue "threads are left" "[ $(old_threads) -gt 0 ]"
	assertEquals "no thread half pruned" 0 "$(broken_threads 2)"
	assertEquals "no session of the agent is left" 0 \
		"$(tl_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'checkpoint-agent%'")"
}

test_07_sweep_limit_bounds_a_sweep_and_the_next_one_goes_on() {
	tl_gen_threads old- 250 2 "$OLD_AGE" || fail "gen"
	write_conf 30d 'sweep_interval = "3s"; sweep_limit = 100; batch = 10;'
	start_agent
	wait_status 'retention: last sweep at [0-9:]+ pruned 100 threads'
	assertEquals "the first sweep took 100" 150 "$(old_threads)"
	assertEquals "the first 100 in thread order" "old-000101" \
		"$(tl_sql "SELECT min(thread_id) FROM checkpoints WHERE thread_id LIKE 'old-%'")"
	wait_status 'retention: last sweep at [0-9:]+ pruned 50 threads' 20
	assertEquals "the next sweeps took the rest" 0 "$(old_threads)"
}

tl_run
