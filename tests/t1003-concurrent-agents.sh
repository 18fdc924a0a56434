#!/bin/bash
# t1003-concurrent-agents.sh: several agents migrating at once, and the
# migration lock.
#
# Eight agents start `migrate` together on an empty database (suite_setup):
# all of them exit 0, the schema ends at v9 once, and every version is applied
# exactly once (one 'up' ledger row per set and version). Then the lock: an
# agent that cannot have it within migrations.lock_timeout exits 75 naming
# the session that holds it, and while it waits it holds no transaction open
# and never waits inside pg_advisory_lock (its backend is 'idle', not 'idle in
# transaction', and never waits on a Lock).

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

AGENTS=8
LOCK_KEYS="1129333063, 1"

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	tl_agent_conf "$WORK/agent.conf"
	tl_agent_conf "$WORK/short-lock.conf" "lock_timeout = 1;"
	tl_agent_conf "$WORK/waiter.conf" "lock_timeout = 30;"
	tl_agent_conf "$WORK/ddl-lock.conf" "lock_timeout = 4;"
	# The waiter is told apart in pg_stat_activity by its application_name.
	sed -i 's/^\(\s*connect_timeout = 5;\)$/\1 application_name = "t1003-waiter";/' "$WORK/waiter.conf"
	start_agents_together
}

suite_teardown() {
	tl_session_close
}

# start_agents_together: AGENTS agents run `migrate` at once; each leaves
# WORK/agent.N.{out,err,rc}.
start_agents_together() {
	local i pids=()
	for i in $(seq 1 "$AGENTS"); do
		(
			"$TL_AGENT" -c "$WORK/agent.conf" migrate >"$WORK/agent.$i.out" 2>"$WORK/agent.$i.err"
			echo "$?" >"$WORK/agent.$i.rc"
		) &
		pids+=("$!")
	done
	wait "${pids[@]}"
}

# hold_migration_lock: the open session takes the agents' advisory lock.
hold_migration_lock() {
	tl_session_open t1003-holder tl_psql_super
	tl_session_sql "SELECT pg_advisory_lock($LOCK_KEYS);"
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 't1003-holder')" ||
		fail "the test session could not take the migration lock"
}

test_01_eight_agents_all_exit_0() {
	local i rc bad=""
	for i in $(seq 1 "$AGENTS"); do
		rc=$(cat "$WORK/agent.$i.rc")
		[ "$rc" = 0 ] || bad="$bad agent $i exited $rc: $(cat "$WORK/agent.$i.err")"$'\n'
	done
	assertEquals "every one of $AGENTS concurrent agents exits 0" "" "$bad"
}

test_02_eight_agents_no_error_message() {
	local errors
	errors=$(grep -ih 'error\|failed' "$WORK"/agent.*.err)
	assertEquals "no agent reports an error" "" "$errors"
}

test_03_schema_ends_at_v9_with_rows_0_to_9() {
	assertEquals "checkpoint_migrations holds exactly 0..9" "0,1,2,3,4,5,6,7,8,9" \
		"$(tl_sql "SELECT string_agg(v::text, ',' ORDER BY v) FROM public.checkpoint_migrations")"
	assertEquals "one set of LangGraph tables, in public" "checkpoint_blobs checkpoint_writes checkpoints" \
		"$(tl_sql "SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class
			WHERE relkind = 'r' AND relname IN ('checkpoints', 'checkpoint_blobs', 'checkpoint_writes')")"
}

test_04_each_version_applied_exactly_once() {
	local dups
	dups=$(tl_sql "SELECT set_name || ' v' || version || ': ' || count(*) FROM checkpoint_agent.ledger
		WHERE direction = 'up' GROUP BY set_name, version HAVING count(*) <> 1")
	assertEquals "no version has more than one 'up' ledger row" "" "$dups"
	assertEquals "the ledger holds one 'up' row for each of agent v0-1 and langgraph v0-9" \
		"agent:0,1 langgraph:0,1,2,3,4,5,6,7,8,9" \
		"$(tl_sql "SELECT string_agg(s, ' ' ORDER BY s) FROM (SELECT set_name || ':' ||
			string_agg(version::text, ',' ORDER BY version) AS s FROM checkpoint_agent.ledger
			WHERE direction = 'up' GROUP BY set_name) x")"
	assertEquals "no 'down' rows" 0 \
		"$(tl_sql "SELECT count(*) FROM checkpoint_agent.ledger WHERE direction <> 'up'")"
}

test_05_each_agent_reports_the_same_final_version() {
	local i at9=0
	for i in $(seq 1 "$AGENTS"); do
		grep -q 'langgraph is at version 9' "$WORK/agent.$i.err" && at9=$((at9 + 1))
	done
	assertEquals "every agent ends reporting langgraph at version 9" "$AGENTS" "$at9"
	assertEquals "exactly one agent applied the versions" 1 \
		"$(grep -l 'applying langgraph v9' "$WORK"/agent.*.err | wc -l)"
}

test_10_lock_timeout_exits_75_naming_the_holder() {
	local holder
	hold_migration_lock
	holder=$(tl_session_pid)
	tl_agent -c "$WORK/short-lock.conf" migrate
	tl_session_close
	assertEquals "exit code on lock timeout. stderr: $TL_ERR" 75 "$TL_RC"
	assertContains "the message names the pid holding the lock" "$TL_ERR" "pid $holder"
	assertContains "the message says what timed out" "$TL_ERR" "migration lock"
	assertEquals "nothing on stdout" "" "$TL_OUT"
}

test_11_waiting_agent_holds_no_transaction_and_no_lock_wait() {
	local samples=0 idle=0 bad="" line agent_pid rc
	hold_migration_lock
	"$TL_AGENT" -c "$WORK/waiter.conf" migrate >"$WORK/waiter.out" 2>"$WORK/waiter.err" 7>&- &
	agent_pid=$!
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 't1003-waiter')" ||
		fail "the waiting agent did not connect"
	sleep 1
	# Sample its backend for about 3 s while it waits.
	while [ "$samples" -lt 15 ]; do
		line=$(tl_sql "SELECT coalesce(state, '') || '|' || coalesce(wait_event_type, '') || '|' ||
			(xact_start IS NOT NULL) FROM pg_stat_activity WHERE application_name = 't1003-waiter'")
		samples=$((samples + 1))
		case "$line" in
		'idle|'*'|false') idle=$((idle + 1)) ;;
		'active|'*) ;;	# the moment of a pg_try_advisory_lock poll
		*) bad="$bad [$line]" ;;
		esac
		case "$line" in
		*'|Lock|'*) bad="$bad [waits on a lock: $line]" ;;
		esac
		sleep 0.2
	done
	kill -0 "$agent_pid" 2>/dev/null
	assertTrue "the agent still waits for the lock" $?
	tl_session_close
	wait "$agent_pid"
	rc=$?
	assertEquals "no sample shows a transaction open or a lock wait (state|wait_event_type|xact open)" "" "$bad"
	assertTrue "its backend is mostly 'idle' between polls ($idle of $samples samples)" "[ $idle -ge 5 ]"
	assertEquals "once the lock is released, the waiting agent goes on and exits 0: $(cat "$WORK/waiter.err")" 0 "$rc"
}

# hold_table_lock: an application session reads checkpoint_writes in an open
# transaction, so v9's ALTER TABLE cannot have its exclusive lock.
hold_table_lock() {
	tl_session_open t1003-reader
	tl_session_sql "BEGIN; LOCK TABLE checkpoint_writes IN ACCESS SHARE MODE;"
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 't1003-reader'
		AND state = 'idle in transaction')" || fail "the reading session did not start"
}

test_20_ddl_lock_wait_gives_up_with_75_and_changes_nothing() {
	local start
	tl_agent -c "$WORK/agent.conf" rollback --to 8
	assertEquals "rollback to 8: $TL_ERR" 0 "$TL_RC"
	hold_table_lock
	start=$SECONDS
	tl_agent -c "$WORK/ddl-lock.conf" migrate
	tl_session_close
	assertEquals "exit code when the table lock never comes. stderr: $TL_ERR" 75 "$TL_RC"
	assertContains "it says why" "$TL_ERR" "could not get the lock on its tables"
	assertContains "it retried first" "$TL_ERR" "trying again"
	assertTrue "it gave up near lock_timeout (took $((SECONDS - start)) s)" "[ $((SECONDS - start)) -le 15 ]"
	assertEquals "still at v8" 8 "$(tl_sql 'SELECT max(v) FROM checkpoint_migrations')"
}

test_21_ddl_lock_wait_retries_until_the_lock_comes() {
	local agent_pid rc
	hold_table_lock
	"$TL_AGENT" -c "$WORK/waiter.conf" migrate >"$WORK/retry.out" 2>"$WORK/retry.err" 7>&- &
	agent_pid=$!
	sleep 4
	tl_session_close
	wait "$agent_pid"
	rc=$?
	assertEquals "migrate succeeds once the reader ends: $(cat "$WORK/retry.err")" 0 "$rc"
	assertContains "it waited by retrying" "$(cat "$WORK/retry.err")" "trying again"
	assertEquals "at v9" 9 "$(tl_sql 'SELECT max(v) FROM checkpoint_migrations')"
}

tl_run
