#!/bin/bash
# t4010-faults-service.sh: the service (`run`) under faults, measured. A
# datagram socket (tests/tools/notify-listen -r) stands in for systemd and
# records every message with its Unix time in ms.
#
# - A healthy long migration keeps the watchdog fed: with WATCHDOG_USEC=2s,
#   an index build waiting on an old transaction, and a second connection
#   that cannot open (the role's connection limit), WATCHDOG=1 keeps its
#   1 s rhythm for over a minute (it stopped after 60 s before the fix).
# - SIGTERM during that build: the statement is cancelled, the lock
#   released, STOPPING=1 sent, exit 0 within 2 s (it waited for the blocker
#   before); the next start converges (v9, verify clean, no INVALID index).
# - 10 PostgreSQL restarts (fast and immediate) under `run`: alive, no
#   watchdog gap over 1.5 s, healthy again within 5 s of the server
#   accepting connections.
# - SIGTERM during an outage: exit 0 within 2 s.
#
# The figures are printed (tl_log) and copied into the README.
. "$(dirname "$0")/lib/test-lib.sh"

LISTEN=$TL_ROOT/tests/tools/notify-listen

suite_setup() {
	make -s -C "$TL_ROOT" tests/tools/notify-listen >/dev/null || return 1
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; connect_timeout = 2;
		            statement_timeout = 3000; application_name = "cpa-t4010"; };
		migrations: { lock_timeout = 1; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; startup_timeout = 60; };
	CONF
	AGENT_PID=
	LISTEN_PID=
}

suite_teardown() {
	stop_agent
	stop_listener
	tl_session_close
	tl_sql "ALTER ROLE $TL_APP_ROLE CONNECTION LIMIT -1" >/dev/null 2>&1
}

start_listener() {
	NOTIFY_LOG=$dir/notify.$1.log
	"$LISTEN" -r "$dir/notify.sock" >"$NOTIFY_LOG" &
	LISTEN_PID=$!
	local i
	for i in $(seq 1 50); do
		[ -S "$dir/notify.sock" ] && return 0
		sleep 0.1
	done
	fail "notify-listen did not start"
}

stop_listener() {
	[ -n "$LISTEN_PID" ] || return 0
	kill "$LISTEN_PID" 2>/dev/null
	wait "$LISTEN_PID" 2>/dev/null
	LISTEN_PID=
}

# start_agent INTERVAL_MS: the service, WATCHDOG_USEC=2s, messages to the listener.
start_agent() {
	(
		exec 7>&-
		exec env NOTIFY_SOCKET="$dir/notify.sock" WATCHDOG_USEC=2000000 "$TL_AGENT" -c "$conf" run \
			--interval-ms "$1" 2>>"$dir/agent.log"
	) &
	AGENT_PID=$!
}

stop_agent() {
	[ -n "$AGENT_PID" ] || return 0
	kill -TERM "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
}

now_ms() {
	date +%s%3N
}

# wait_message REGEX SECONDS: until a message matches; its time (ms) on stdout.
wait_message() {
	local deadline=$((SECONDS + $2)) t
	while [ "$SECONDS" -lt "$deadline" ]; do
		t=$(awk -v re="$1" '{ line = $0; sub(/^[0-9]+ /, "", line) } line ~ re { print $1; exit }' "$NOTIFY_LOG")
		[ -n "$t" ] && { printf '%s\n' "$t"; return 0; }
		sleep 0.1
	done
	return 1
}

# max_watchdog_gap FROM TO: the largest gap (ms) without WATCHDOG=1 in [FROM, TO] (its ends
# count: pings that stop show as a gap up to TO), and the number of pings.
max_watchdog_gap() {
	awk -v a="$1" -v b="$2" '$2 == "WATCHDOG=1" && $1 >= a && $1 <= b {
		g = $1 - (last ? last : a); if (g > max) max = g; last = $1; n++ }
		END { g = b - (last ? last : a); if (g > max) max = g; print max + 0, n + 0 }' "$NOTIFY_LOG"
}

reset_to_v5() {
	tl_psql_super -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE;
		CREATE SCHEMA public AUTHORIZATION pg_database_owner; DROP SCHEMA IF EXISTS checkpoint_agent CASCADE;" \
		>/dev/null
	tl_agent -c "$conf" migrate --to 5
	[ "$TL_RC" = 0 ] || fail "migrate --to 5: $TL_ERR"
}

test_01_watchdog_fed_during_a_blocked_build_then_sigterm_stops_it() {
	local t0 t1 gap n stop_ms rc built
	reset_to_v5
	# The blocker: an open transaction on checkpoints, as another role (it does not count against the limit).
	tl_session_open t4010-blocker tl_psql_super
	tl_session_sql "BEGIN; INSERT INTO public.checkpoints (thread_id, checkpoint_id, checkpoint) VALUES ('b', 'c', '{}');"
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 't4010-blocker'
		AND state = 'idle in transaction')" || fail "the blocker did not start"
	# One connection for the role: the agent's second connection (naming blockers) cannot open.
	tl_sql "ALTER ROLE $TL_APP_ROLE CONNECTION LIMIT 1" >/dev/null
	start_listener build
	start_agent 500
	tl_wait_for 20 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query ILIKE '%CREATE INDEX CONCURRENTLY%'
		AND state = 'active')" || fail "the index build did not start: $(tail -n 5 "$dir/agent.log")"
	t0=$(now_ms)
	sleep 64
	t1=$(now_ms)
	read -r gap n <<<"$(max_watchdog_gap "$t0" "$t1")"
	tl_log "blocked build: $n WATCHDOG=1 in $(( (t1 - t0) / 1000 )) s, largest gap $gap ms"
	assertTrue "WATCHDOG=1 kept its rhythm for 64 s of a blocked build ($n pings, largest gap $gap ms)" \
		"[ $n -ge 55 ] && [ $gap -le 1500 ]"
	assertContains "the agent said it cannot name the blockers" "$(cat "$dir/agent.log")" "cannot open a second connection"
	assertEquals "no READY=1 during the migration" "" "$(grep ' READY=1$' "$NOTIFY_LOG")"

	t0=$(now_ms)
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID"
	rc=$?
	stop_ms=$(( $(now_ms) - t0 ))
	AGENT_PID=
	tl_log "SIGTERM during the blocked build: exit $rc after $stop_ms ms"
	assertEquals "exit code after SIGTERM" 0 "$rc"
	assertTrue "stopped within 2 s ($stop_ms ms)" "[ $stop_ms -le 2000 ]"
	assertTrue "STOPPING=1 sent" "grep -q ' STOPPING=1$' '$NOTIFY_LOG'"
	assertEquals "the migration lock is released" 0 \
		"$(tl_sql "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1129333063 AND objid = 1")"
	assertEquals "no session of the agent is left" 0 \
		"$(tl_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cpa-t4010'")"
	stop_listener

	# The next start converges once the blocker is gone.
	tl_sql "ALTER ROLE $TL_APP_ROLE CONNECTION LIMIT -1" >/dev/null
	tl_session_sql "ROLLBACK;"
	tl_session_close
	start_listener converge
	start_agent 500
	built=$(wait_message '^READY=1$' 60)
	assertNotEquals "READY=1 after the restart: $(tail -n 5 "$dir/agent.log")" "" "$built"
	stop_agent
	stop_listener
	assertEquals "v9" 9 "$(tl_sql 'SELECT max(v) FROM public.checkpoint_migrations')"
	assertEquals "no INVALID index" 0 "$(tl_sql 'SELECT count(*) FROM pg_index WHERE NOT indisvalid')"
	tl_agent -c "$conf" verify
	assertEquals "verify clean: $TL_OUT" 0 "$TL_RC"
}

test_02_ten_postgresql_restarts() {
	local i mode starting accepted healthy worst=0 early=0 all="" t0 t1 gap n
	start_listener restarts
	start_agent 10000
	wait_message '^READY=1$' 60 >/dev/null || fail "not ready: $(tail -n 5 "$dir/agent.log")"
	t0=$(now_ms)
	for i in $(seq 1 10); do
		mode=fast
		[ $((i % 2)) = 0 ] && mode=immediate
		runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_PGDATA" -m "$mode" -w stop >/dev/null 2>&1
		sleep 0.5
		# The agent may be healthy again before pg_ctl has seen the server
		# accept (it polls): its report counts from the start, and a
		# recovery before pg_ctl returned is 0 ms after accepting.
		starting=$(now_ms)
		tl_pg_restart || fail "PostgreSQL did not start again"
		accepted=$(now_ms)
		healthy=
		while [ -z "$healthy" ] && [ $(( $(now_ms) - accepted )) -lt 15000 ]; do
			healthy=$(awk -v a="$starting" '$1 >= a && ($2 ~ /^STATUS=recovered/ || $2 ~ /^STATUS=OK/) { print $1; exit }' \
				"$NOTIFY_LOG")
			[ -n "$healthy" ] || sleep 0.1
		done
		kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent died at restart $i"
		[ -n "$healthy" ] || healthy=$((accepted + 99999))
		[ "$healthy" -ge "$accepted" ] || { early=$((early + 1)); healthy=$accepted; }
		all="$all $((healthy - accepted))"
		[ $((healthy - accepted)) -gt "$worst" ] && worst=$((healthy - accepted))
	done
	t1=$(now_ms)
	read -r gap n <<<"$(max_watchdog_gap "$t0" "$t1")"
	tl_log "10 restarts (fast/immediate): healthy again after accept in ms:$all (worst $worst; $early before pg_ctl saw it accept); $n WATCHDOG=1, largest gap $gap ms"
	kill -0 "$AGENT_PID"
	assertTrue "the agent is alive after 10 restarts" $?
	assertTrue "healthy within 5 s of accepting, each time (ms:$all)" "[ $worst -le 5000 ]"
	assertTrue "no watchdog gap over 1.5 s ($gap ms)" "[ $gap -le 1500 ]"
	stop_agent
	stop_listener
}

test_03_sigterm_during_an_outage_exits_within_2s() {
	local t0 stop_ms rc
	start_listener outage
	start_agent 1000
	wait_message '^READY=1$' 60 >/dev/null || fail "not ready"
	tl_pg_stop
	wait_message '^STATUS=degraded' 20 >/dev/null || fail "no degraded status"
	t0=$(now_ms)
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID"
	rc=$?
	stop_ms=$(( $(now_ms) - t0 ))
	AGENT_PID=
	tl_log "SIGTERM during an outage: exit $rc after $stop_ms ms"
	assertEquals "exit code" 0 "$rc"
	assertTrue "stopped within 2 s ($stop_ms ms)" "[ $stop_ms -le 2000 ]"
	assertTrue "STOPPING=1 sent" "grep -q ' STOPPING=1$' '$NOTIFY_LOG'"
	stop_listener
	tl_pg_restart
}

tl_run
