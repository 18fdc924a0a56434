#!/bin/bash
# t3002: the checks that watch sessions, each driven into OK, WARNING and
# CRITICAL on a small server (max_connections 10): idle in transaction,
# long transactions, lock waits, and pool headroom.
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	TL_PG_MAX_CONNECTIONS=10 tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	write_conf ""
	tl_agent -c "$conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
	tl_sql "CREATE SCHEMA scratch; CREATE TABLE scratch.t (a int);
		GRANT USAGE ON SCHEMA scratch TO $TL_APP_ROLE; GRANT SELECT ON scratch.t TO $TL_APP_ROLE;" >/dev/null
	HOLD_PIDS=()
	HOLD_FDS=()
}

tearDown() {
	release_sessions
}

# write_conf CHECKS: the config, with CHECKS inside its checks group.
write_conf() {
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; statement_timeout = 2000; };
		pool: { size = 2; instances = 1; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; };
		checks: { $1 };
	CONF
}

# hold_session app|super SQL: a psql session that runs SQL and stays open
# (reading more from a fifo) until release_sessions.
hold_session() {
	local who=$1 sql=$2 fifo fd
	fifo=$(mktemp -u "$dir/fifo.XXXXXX")
	mkfifo "$fifo"
	if [ "$who" = super ]; then
		tl_psql_super -f - <"$fifo" >/dev/null 2>&1 &
	else
		tl_psql_app -f - <"$fifo" >/dev/null 2>&1 &
	fi
	HOLD_PIDS+=("$!")
	exec {fd}>"$fifo"
	HOLD_FDS+=("$fd")
	printf '%s\n' "$sql" >&"$fd"
}

# release_sessions: end every held session (psql exits at the end of its input).
release_sessions() {
	local fd pid
	for fd in "${HOLD_FDS[@]}"; do
		exec {fd}>&-
	done
	for pid in "${HOLD_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ "${#HOLD_PIDS[@]}" -gt 0 ]; then
		tl_sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" >/dev/null 2>&1
	fi
	HOLD_FDS=()
	HOLD_PIDS=()
	return 0
}

# wait_for_sql QUERY: waits (up to 10 s) until QUERY, run as the superuser, answers t.
wait_for_sql() {
	local i
	for i in $(seq 1 100); do
		[ "$(tl_sql "$1")" = t ] && return 0
		sleep 0.1
	done
	fail "timed out waiting for: $1"
	return 1
}

# status_of NAME: the status word of check NAME in the text report in TL_OUT.
status_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name { print $1 }'
}

# check_with CHECKS: runs `check` with those thresholds.
check_with() {
	write_conf "$1"
	tl_agent -c "$conf" check
}

idle_session() {
	hold_session app "BEGIN; SELECT txid_current();"
	wait_for_sql "SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'idle in transaction'"
}

test_01_idle_in_transaction_ok_without_such_session() {
	check_with "idle_in_transaction_warn = 1; idle_in_transaction_crit = 3600;"
	assertEquals "out: $TL_OUT" OK "$(status_of idle_in_transaction)"
}

test_02_idle_in_transaction_warning() {
	idle_session
	sleep 1.2
	check_with "idle_in_transaction_warn = 1; idle_in_transaction_crit = 3600;"
	assertEquals "out: $TL_OUT" WARNING "$(status_of idle_in_transaction)"
	assertEquals "exit code" 1 "$TL_RC"
	assertContains "names the pid" "$TL_OUT" \
		"pid $(tl_sql "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction'") ($TL_APP_ROLE)"
}

test_03_idle_in_transaction_critical() {
	idle_session
	sleep 1.2
	check_with "idle_in_transaction_warn = 1; idle_in_transaction_crit = 1;"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of idle_in_transaction)"
	assertEquals "exit code" 2 "$TL_RC"
}

test_04_long_transaction_ok_warning_critical() {
	check_with "transaction_age_warn = 1; transaction_age_crit = 3600;"
	assertEquals "none open; out: $TL_OUT" OK "$(status_of long_transactions)"
	hold_session app "BEGIN; SELECT txid_current(); SELECT pg_sleep(30);"
	wait_for_sql "SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(30)%'
		AND pid <> pg_backend_pid()"
	sleep 1.2
	check_with "transaction_age_warn = 1; transaction_age_crit = 3600;"
	assertEquals "out: $TL_OUT" WARNING "$(status_of long_transactions)"
	check_with "transaction_age_warn = 1; transaction_age_crit = 1;"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of long_transactions)"
}

# lock_waiters N: the superuser locks scratch.t; N sessions of the application wait on it.
lock_waiters() {
	local i
	hold_session super "BEGIN; LOCK TABLE scratch.t IN ACCESS EXCLUSIVE MODE;"
	wait_for_sql "SELECT count(*) = 1 FROM pg_locks WHERE relation = 'scratch.t'::regclass AND granted"
	for i in $(seq 1 "$1"); do
		hold_session app "SELECT count(*) FROM scratch.t;"
	done
	wait_for_sql "SELECT count(*) = $1 FROM pg_locks WHERE NOT granted"
}

test_05_lock_waits_ok() {
	check_with "lock_waits_warn = 1; lock_waits_crit = 2;"
	assertEquals "out: $TL_OUT" OK "$(status_of lock_waits)"
}

test_06_lock_waits_warning() {
	lock_waiters 1
	check_with "lock_waits_warn = 1; lock_waits_crit = 2;"
	assertEquals "out: $TL_OUT" WARNING "$(status_of lock_waits)"
	assertContains "names the blocker" "$TL_OUT" \
		"blocked by pid $(tl_sql "SELECT pid FROM pg_locks WHERE relation = 'scratch.t'::regclass AND granted")"
}

test_07_lock_waits_critical() {
	lock_waiters 2
	check_with "lock_waits_warn = 1; lock_waits_crit = 2;"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of lock_waits)"
}

# open_sessions N: N idle sessions of the application role.
open_sessions() {
	local i
	for i in $(seq 1 "$1"); do
		hold_session app "SELECT 1;"
	done
	wait_for_sql "SELECT count(*) = $1 FROM pg_stat_activity WHERE usename = '$TL_APP_ROLE'"
}

# max_connections 10 leaves 7 usable slots (3 are reserved for superusers).
test_08_pool_headroom_ok() {
	check_with ""
	assertEquals "out: $TL_OUT" OK "$(status_of pool_headroom)"
	assertContains "the check's own session is not counted" "$TL_OUT" \
		"0 of 7 usable slots in use besides this check's own session"
}

test_09_pool_headroom_warning_when_others_leave_little_room() {
	# 4 superuser sessions plus the pools' 2: 6 of 7 usable slots (86%); the
	# check's own session does not count (it leaves when the check is done).
	local i
	for i in 1 2 3 4; do
		hold_session super "SELECT 1;"
	done
	wait_for_sql "SELECT count(*) = 5 FROM pg_stat_activity WHERE usename = 'postgres' AND backend_type = 'client backend'"
	check_with ""
	assertEquals "out: $TL_OUT" WARNING "$(status_of pool_headroom)"
	assertContains "$TL_OUT" "demand 6 = 4 other sessions + 2 for the pools"
	assertContains "per role and state" "$TL_OUT" "postgres/"
}

test_10_pool_headroom_critical_when_the_pools_no_longer_fit() {
	write_conf ""
	sed -i 's/size = 2; instances = 1;/size = 4; instances = 2;/' "$conf"
	tl_agent -c "$conf" check
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of pool_headroom)"
	assertContains "$TL_OUT" "budget 8 = 4 x 2"
	assertContains "$TL_OUT" "the pools no longer fit"
}

test_11_pool_headroom_critical_when_nearly_full() {
	open_sessions 6
	check_with "pool_usage_warn_pct = 50; pool_usage_crit_pct = 80;"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of pool_headroom)"
	assertContains "$TL_OUT" "6 of 7 usable slots in use besides this check's own session"
	assertContains "$TL_OUT" "86% of the usable slots"
}

test_12_no_free_slot_is_critical_where_pg_isready_says_ok() {
	open_sessions 6
	# The last one alone: a superuser's polling session would take a free slot too.
	hold_session app "SELECT 1;"
	sleep 1
	wait_for_sql "SELECT count(*) = 7 FROM pg_stat_activity WHERE usename = '$TL_APP_ROLE'"
	"$TL_PGBIN/pg_isready" -q -h 127.0.0.1 -p "$TL_PGPORT"
	assertEquals "pg_isready answers OK" 0 $?
	check_with ""
	assertEquals "exit code; out: $TL_OUT" 2 "$TL_RC"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of pool_headroom)"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of connect)"
}

# Without pg_read_all_stats the agent's role sees another role's session but
# not its state: the session checks say how many they could not judge, and
# name the grant that fixes it, instead of reporting them as fine.
test_13_sessions_of_other_roles_it_cannot_see_are_counted_and_named() {
	assertEquals "the role is no pg_read_all_stats member" f \
		"$(tl_sql "SELECT pg_has_role('$TL_APP_ROLE', 'pg_read_all_stats', 'MEMBER')")"
	hold_session super "BEGIN; SELECT txid_current();"
	wait_for_sql "SELECT count(*) = 1 FROM pg_stat_activity WHERE usename = 'postgres' AND state = 'idle in transaction'"
	check_with "idle_in_transaction_warn = 1; idle_in_transaction_crit = 3600;"
	assertEquals "out: $TL_OUT" OK "$(status_of idle_in_transaction)"
	assertContains "$TL_OUT" "idle_in_transaction: no session is idle in a transaction; 1 session of other roles not visible (grant pg_monitor to the agent's role to see them)"
	assertContains "$TL_OUT" "long_transactions: no other session has a transaction open; 1 session of other roles not visible"
	assertContains "counted by its role" "$TL_OUT" "postgres/"
}

tl_run
