#!/bin/bash
# t4001: the service's sd_notify protocol, without systemd. A datagram
# socket (tests/tools/notify-listen) stands in for systemd's NOTIFY_SOCKET and
# records every message with its time; the tests assert the messages and
# their order: no READY=1 before the migrations, WATCHDOG=1 at half of
# WATCHDOG_USEC while a check query hangs, the reload and stop sequences,
# the bad-config reload, and the database going away and coming back.
. "$(dirname "$0")/lib/test-lib.sh"

LISTEN=$TL_ROOT/tests/tools/notify-listen
LOCK_KEYS="1129333063, 1"	# the migration lock (agent/lock.c)

suite_setup() {
	make -s -C "$TL_ROOT" tests/tools/notify-listen >/dev/null || return 1
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	HOLD_FDS=()
	HOLD_PIDS=()
}

setUp() {
	write_conf
	: >"$dir/agent.log"
	rm -f "$dir/state" "$dir/metrics.prom"
	NOTIFY_LOG=$dir/notify.log
	"$LISTEN" "$dir/notify.sock" >"$NOTIFY_LOG" &
	LISTEN_PID=$!
	AGENT_PID=
	wait_until 50 "[ -S '$dir/notify.sock' ]"
}

tearDown() {
	local fd pid
	[ -n "$AGENT_PID" ] && kill -TERM "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
	kill "$LISTEN_PID" 2>/dev/null
	wait "$LISTEN_PID" 2>/dev/null
	for fd in "${HOLD_FDS[@]}"; do
		exec {fd}>&-
	done
	for pid in "${HOLD_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	HOLD_FDS=()
	HOLD_PIDS=()
	# A test that stopped the cluster leaves it to be started again (not once the suite removed it).
	if [ -d "$TL_PGDATA" ] && [ ! -f "$TL_PGDATA/postmaster.pid" ]; then
		tl_pg_restart
	fi
	return 0
}

# write_conf: the service's config.
write_conf() {
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; connect_timeout = 2;
		            statement_timeout = 3000; application_name = "cpa-t4001"; };
		migrations: { lock_timeout = 60; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; startup_timeout = 60;
		           metrics_file = "$dir/metrics.prom"; };
	CONF
}

# wait_until TENTHS CONDITION: polls CONDITION every 0.1 s; false on time-out.
wait_until() {
	local i
	for i in $(seq 1 "$1"); do
		eval "$2" && return 0
		sleep 0.1
	done
	return 1
}

# start_agent [ENV=VALUE...]: runs the service in the background with NOTIFY_SOCKET set.
start_agent() {
	(
		close_held_fds
		exec env NOTIFY_SOCKET="$dir/notify.sock" "$@" "$TL_AGENT" -c "$conf" run --interval-ms 500 \
			2>>"$dir/agent.log"
	) &
	AGENT_PID=$!
}

# close_held_fds: in a child, so that only this shell holds the fifos open.
close_held_fds() {
	local fd
	for fd in "${HOLD_FDS[@]}"; do
		exec {fd}>&-
	done
}

# messages: the messages received so far, without their times.
messages() {
	cut -d' ' -f2- "$NOTIFY_LOG"
}

# wait_message REGEX [TENTHS]: waits until a message matches REGEX (extended).
wait_message() {
	wait_until "${2:-100}" "messages | grep -Eq -- '$1'" ||
		fail "no message matching '$1' within $(( ${2:-100} / 10 )) s; got: $(messages | tail -n 20 | tr '\n' '|')"
}

# line_of REGEX: the line number of the first message matching REGEX (0 if none).
line_of() {
	local n
	n=$(messages | grep -En -- "$1" | head -n 1 | cut -d: -f1)
	printf '%s\n' "${n:-0}"
}

# hold_super SQL: a superuser session running SQL, open until tearDown.
hold_super() {
	local fifo fd
	fifo=$(mktemp -u "$dir/fifo.XXXXXX")
	mkfifo "$fifo"
	(
		close_held_fds
		tl_psql_super <"$fifo" >/dev/null 2>&1
	) &
	HOLD_PIDS+=("$!")
	exec {fd}>"$fifo"
	HOLD_FDS+=("$fd")
	printf '%s\n' "$1" >&"$fd"
}

release_super() {
	local fd
	for fd in "${HOLD_FDS[@]}"; do
		exec {fd}>&-
	done
	HOLD_FDS=()
}

reset_database() {
	tl_psql_super -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE;
		CREATE SCHEMA public AUTHORIZATION pg_database_owner; DROP SCHEMA IF EXISTS checkpoint_agent CASCADE;"
}

test_01_no_ready_before_the_migrations() {
	reset_database
	hold_super "SELECT pg_advisory_lock($LOCK_KEYS);"
	wait_until 50 "[ \"\$(tl_sql 'SELECT count(*) FROM pg_locks WHERE locktype = \$\$advisory\$\$ AND granted')\" = 1 ]"
	start_agent
	wait_message '^STATUS=migrating: waiting for the migration lock' 150
	assertEquals "no READY=1 while the migrations wait" 0 "$(line_of '^READY=1$')"
	assertTrue "EXTEND_TIMEOUT_USEC while waiting" "[ $(line_of '^EXTEND_TIMEOUT_USEC=[0-9]+$') -gt 0 ]"
	assertEquals "nothing applied yet" 0 "$(tl_sql "SELECT count(*) FROM pg_tables WHERE tablename = 'checkpoints'")"
	release_super
	wait_message '^READY=1$' 150
	assertEquals "langgraph is at v9 once READY=1 came" 9 "$(tl_sql 'SELECT max(v) FROM public.checkpoint_migrations')"
	assertTrue "READY=1 after 'applying migrations'" \
		"[ $(line_of '^READY=1$') -gt $(line_of '^STATUS=applying migrations$') ]"
	wait_message '^STATUS=OK: all [0-9]+ checks pass$'
}

test_02_watchdog_keeps_its_rhythm_while_a_check_query_hangs() {
	local t0 t1 gaps
	start_agent WATCHDOG_USEC=1000000
	wait_message '^READY=1$'
	# The writable probe's INSERT now waits on the lock for up to statement_timeout (3 s), every cycle.
	hold_super "BEGIN; LOCK TABLE public.checkpoint_writes IN ACCESS EXCLUSIVE MODE;"
	wait_until 50 "[ \"\$(tl_sql \"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE NOT l.granted AND a.application_name = 'cpa-t4001'\")\" = 1 ]"
	assertTrue "the agent's check query waits on the lock" $?
	t0=$(awk 'END { print $1 }' "$NOTIFY_LOG")
	sleep 2.5
	t1=$(awk 'END { print $1 }' "$NOTIFY_LOG")
	assertEquals "the check query still waits" 1 "$(tl_sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a
		USING (pid) WHERE NOT l.granted AND a.application_name = 'cpa-t4001'")"
	# WATCHDOG=1 every 500 ms: in the 2.5 s the query hung, no gap above 750 ms, at least 4 pings.
	gaps=$(awk -v a="$t0" -v b="$t1" '$2 == "WATCHDOG=1" && $1 >= a && $1 <= b {
		if (last) { g = $1 - last; if (g > max) max = g } last = $1; n++ } END { print n + 0, max + 0 }' "$NOTIFY_LOG")
	assertTrue "pings in the hang (count, largest gap ms): $gaps" "[ ${gaps% *} -ge 4 ] && [ ${gaps#* } -le 750 ]"
	release_super
	wait_message '^STATUS=.*writable' 80
}

test_03_reload_sends_reloading_then_ready_and_applies_the_file() {
	start_agent
	wait_message '^READY=1$'
	sed -i 's/application_name = "cpa-t4001"/application_name = "cpa-t4001-reloaded"/' "$conf"
	kill -HUP "$AGENT_PID"
	wait_message '^STATUS=reloaded '
	local reloading ready
	reloading=$(line_of '^RELOADING=1$')
	ready=$(messages | grep -n '^READY=1$' | sed -n 2p | cut -d: -f1)
	assertTrue "RELOADING=1 ($reloading) then the second READY=1 ($ready)" \
		"[ $reloading -gt 0 ] && [ ${ready:-0} -gt $reloading ]"
	assertTrue "MONOTONIC_USEC with RELOADING=1" "[ $(line_of '^MONOTONIC_USEC=[0-9]+$') -gt 0 ]"
	assertTrue "the new application_name is in use" \
		"wait_until 50 \"[ \\\"\\\$(tl_sql \\\"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cpa-t4001-reloaded'\\\")\\\" = 1 ]\""
}

test_04_bad_config_reload_is_refused_and_the_old_one_stays() {
	start_agent
	wait_message '^READY=1$'
	printf 'database: { uri = 42; };\n' >"$conf"
	kill -HUP "$AGENT_PID"
	wait_message '^STATUS=reload refused'
	assertTrue "READY=1 after RELOADING=1" \
		"[ \$(messages | grep -n '^READY=1$' | sed -n 2p | cut -d: -f1) -gt $(line_of '^RELOADING=1$') ]"
	assertContains "the error names file and line" "$(cat "$dir/agent.log")" "$conf:1: uri: must be a string"
	local n
	n=$(messages | grep -c '^STATUS=OK')
	wait_until 50 "[ \$(messages | grep -c '^STATUS=OK') -gt $n ]"
	assertTrue "still checking with the old config" $?
	kill -0 "$AGENT_PID"
	assertTrue "still running" $?
}

test_05_sigterm_sends_stopping_closes_and_exits_0() {
	local rc
	start_agent
	wait_message '^READY=1$'
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID"
	rc=$?
	AGENT_PID=
	assertEquals "exit code" 0 "$rc"
	sleep 0.2
	assertEquals "STOPPING=1 comes last but for its STATUS" "STOPPING=1" "$(messages | grep -v '^STATUS=' | tail -n 1)"
	assertEquals "no session left" 0 \
		"$(tl_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cpa-t4001'")"
}

test_06_database_down_degrades_and_recovery_is_reported() {
	start_agent
	wait_message '^READY=1$'
	tl_pg_stop
	wait_message '^STATUS=degraded: database unreachable' 100
	kill -0 "$AGENT_PID"
	assertTrue "still running while the database is down" $?
	sleep 1
	tl_pg_restart
	wait_message '^STATUS=recovered after [0-9]+ s down; ' 150
	assertTrue "recovery logged" "grep -q 'reachable again' '$dir/agent.log'"
	assertTrue "degraded before recovered" \
		"[ $(line_of '^STATUS=degraded') -lt $(line_of '^STATUS=recovered') ]"
}

test_07_start_waits_for_the_database_with_backoff() {
	tl_pg_stop
	start_agent
	wait_message '^STATUS=waiting for the database \(attempt 3' 100
	assertEquals "no READY=1 while the database is down" 0 "$(line_of '^READY=1$')"
	assertTrue "EXTEND_TIMEOUT_USEC while waiting" "[ $(line_of '^EXTEND_TIMEOUT_USEC=') -gt 0 ]"
	tl_pg_restart
	wait_message '^READY=1$' 150
}

test_08_gives_up_after_the_startup_timeout_with_errno() {
	local rc
	tl_pg_stop
	sed -i 's/startup_timeout = 60/startup_timeout = 2/' "$conf"
	start_agent
	wait "$AGENT_PID"
	rc=$?
	AGENT_PID=
	assertEquals "exit code 69" 69 "$rc"
	sleep 0.2
	assertTrue "ERRNO= sent: $(messages | tail -n 3 | tr '\n' '|')" "messages | grep -Eq '^ERRNO=[0-9]+$'"
	assertTrue "says why" "messages | grep -q '^STATUS=failed: gave up waiting for the database'"
}

test_09_metrics_file_is_written_each_cycle_and_passes_promtool() {
	start_agent
	wait_message '^READY=1$'
	wait_until 50 "[ -s '$dir/metrics.prom' ]"
	local first
	first=$(grep '^checkpoint_agent_last_check_timestamp_seconds' "$dir/metrics.prom")
	sleep 1.5
	assertNotEquals "rewritten" "$first" "$(grep '^checkpoint_agent_last_check_timestamp_seconds' "$dir/metrics.prom")"
	if command -v promtool >/dev/null; then
		promtool check metrics <"$dir/metrics.prom" >/dev/null 2>&1
		assertTrue "promtool accepts it" $?
	fi
	assertEquals "no temporary file left" "" "$(find "$dir" -name '.metrics.prom.*')"
}

test_10_sigterm_cancels_a_hanging_check_query_and_stops_at_once() {
	local start rc
	sed -i 's/statement_timeout = 3000/statement_timeout = 30000/' "$conf"
	start_agent
	wait_message '^READY=1$'
	hold_super "BEGIN; LOCK TABLE public.checkpoint_writes IN ACCESS EXCLUSIVE MODE;"
	wait_until 50 "[ \"\$(tl_sql \"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE NOT l.granted AND a.application_name = 'cpa-t4001'\")\" = 1 ]"
	assertTrue "the agent's check query waits on the lock" $?
	start=$(date +%s%N)
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID"
	rc=$?
	AGENT_PID=
	assertEquals "exit code" 0 "$rc"
	assertTrue "stopped within 2 s, not after the 30 s statement_timeout" \
		"[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 2000 ]"
	assertTrue "STOPPING=1 sent" "[ $(line_of '^STOPPING=1$') -gt 0 ]"
}

test_11_sighup_before_ready_waits_and_the_backoff_holds() {
	tl_pg_stop
	start_agent
	wait_message '^STATUS=waiting for the database \(attempt 1,' 50
	kill -HUP "$AGENT_PID"
	sleep 2
	assertTrue "backoff kept: $(messages | grep -c '^STATUS=waiting') attempts in 2 s" \
		"[ $(messages | grep -c '^STATUS=waiting') -le 8 ]"
	assertEquals "no RELOADING=1 before READY=1" 0 "$(line_of '^RELOADING=1$')"
	tl_pg_restart
	wait_message '^READY=1$' 150
	wait_message '^RELOADING=1$' 50
}

tl_run
