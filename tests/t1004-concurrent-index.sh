#!/bin/bash
# t1004-concurrent-index.sh: the CREATE INDEX CONCURRENTLY steps (langgraph
# v6-v8).
#
# - A build that waits on another session's open transaction: `migrate` says
#   so, naming the blocking pid and its state, and completes once that
#   transaction ends. When the blocker is another role's session, whose state
#   the agent's role cannot see, the message says which privilege is missing.
# - kill -9 of the agent in the middle of a build: the server ends the
#   orphaned build (the agent sets client_connection_check_interval), the
#   index is left INVALID, and a re-run drops it, builds it again and ends at
#   v9 with a clean verify.
# - An INVALID index with a version's index name that was there before (a
#   failed CREATE UNIQUE INDEX CONCURRENTLY) is dropped and rebuilt.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

INDEX=checkpoints_thread_id_idx

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	tl_agent_conf "$WORK/agent.conf"
	tl_agent -c "$WORK/agent.conf" migrate --to 5
	[ "$TL_RC" = 0 ] || { tl_log "migrate --to 5 failed: $TL_ERR"; return 1; }
}

suite_teardown() {
	tl_session_close
	[ -z "${AGENT_PID:-}" ] || kill -9 "$AGENT_PID" 2>/dev/null
}

# open_blocking_transaction [PSQL]: a session with an uncommitted write to
# checkpoints; every concurrent index build on it must wait for it to end.
open_blocking_transaction() {
	tl_session_open t1004-blocker "${1:-tl_psql_app}"
	tl_session_sql "BEGIN; INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint)
		VALUES ('blocker-$RANDOM', 'c1', '{}');"
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE application_name = 't1004-blocker' AND state = 'idle in transaction')" ||
		fail "the blocking session did not open its transaction"
	BLOCKER_PID=$(tl_session_pid)
}

# start_migrate: `migrate` in the background; AGENT_PID, WORK/migrate.{out,err}.
start_migrate() {
	"$TL_AGENT" -c "$WORK/agent.conf" migrate >"$WORK/migrate.out" 2>"$WORK/migrate.err" 7>&- &
	AGENT_PID=$!
}

# build_backend: the pid of the backend running the CREATE INDEX CONCURRENTLY, if any.
build_backend() {
	tl_sql "SELECT pid FROM pg_stat_activity
		WHERE query ILIKE '%CREATE INDEX CONCURRENTLY%$INDEX%' AND state = 'active'
		AND pid <> pg_backend_pid()"
}

index_state() {
	tl_sql "SELECT CASE WHEN x.indisvalid THEN 'valid' ELSE 'INVALID' END FROM pg_index x
		WHERE x.indexrelid = to_regclass('public.$INDEX')"
}

versions() {
	tl_sql "SELECT string_agg(v::text, ',' ORDER BY v) FROM public.checkpoint_migrations"
}

roll_back_to_5() {
	tl_agent -c "$WORK/agent.conf" rollback --to 5
	[ "$TL_RC" = 0 ] || fail "rollback --to 5 failed: $TL_ERR"
}

# wait_for_blocker_report: until migrate names BLOCKER_PID (30 s at most);
# BLOCKED_ERR is its stderr then.
wait_for_blocker_report() {
	local deadline=$((SECONDS + 30))
	while [ "$SECONDS" -lt "$deadline" ] && ! grep -q "pid $BLOCKER_PID" "$WORK/migrate.err"; do
		sleep 0.5
	done
	BLOCKED_ERR=$(cat "$WORK/migrate.err")
}

test_01_blocked_build_names_the_blocking_pid_and_state() {
	open_blocking_transaction
	start_migrate
	wait_for_blocker_report
	kill -0 "$AGENT_PID" 2>/dev/null
	assertTrue "migrate still waits while the transaction is open" $?
	assertContains "migrate names the blocking pid" "$BLOCKED_ERR" "pid $BLOCKER_PID"
	assertContains "migrate names the blocker's state" "$BLOCKED_ERR" 'state "idle in transaction"'
	assertContains "migrate says it is the index build that waits" "$BLOCKED_ERR" "$INDEX"
}

test_02_blocked_build_completes_once_the_transaction_ends() {
	local rc
	tl_session_sql "COMMIT;"
	wait "$AGENT_PID"
	rc=$?
	AGENT_PID=
	tl_session_close
	assertEquals "migrate exits 0 once the blocker committed: $(cat "$WORK/migrate.err")" 0 "$rc"
	assertEquals "v9 reached" "0,1,2,3,4,5,6,7,8,9" "$(versions)"
	assertEquals "the index is valid" valid "$(index_state)"
}

# The agent's role sees another role's pid but not its state, unless it has
# pg_read_all_stats: the message says so instead of a wrong state.
test_03_blocker_of_another_role_is_named_with_the_missing_privilege() {
	local rc
	roll_back_to_5
	open_blocking_transaction tl_psql_super
	start_migrate
	wait_for_blocker_report
	tl_session_sql "COMMIT;"
	wait "$AGENT_PID"
	rc=$?
	AGENT_PID=
	tl_session_close
	assertContains "migrate names the blocking pid" "$BLOCKED_ERR" "pid $BLOCKER_PID"
	assertContains "migrate names the blocker's role and application" "$BLOCKED_ERR" \
		'user postgres, application "t1004-blocker"'
	assertContains "it says why the state is not shown" "$BLOCKED_ERR" \
		"state \"not visible to role $TL_APP_ROLE without pg_read_all_stats\""
	assertEquals "migrate exits 0 once the blocker committed: $(cat "$WORK/migrate.err")" 0 "$rc"
}

test_10_kill_9_during_build_leaves_an_invalid_index() {
	local deadline backend
	roll_back_to_5
	open_blocking_transaction
	start_migrate
	deadline=$((SECONDS + 20))
	backend=
	while [ "$SECONDS" -lt "$deadline" ] && [ -z "$backend" ]; do
		backend=$(build_backend)
		sleep 0.2
	done
	assertNotEquals "the agent started the index build" "" "$backend"
	sleep 1
	kill -9 "$AGENT_PID"
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
	# client_connection_check_interval (2 s) lets the server notice the
	# vanished client and cancel the build by itself.
	if tl_wait_for 10 "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ${backend:-0})"; then
		KILL_CANCELLED_BY_SERVER=yes
	else
		KILL_CANCELLED_BY_SERVER=no
		tl_sql "SELECT pg_terminate_backend($backend)" >/dev/null
		tl_wait_for 10 "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $backend)"
	fi
	tl_session_sql "ROLLBACK;"
	tl_session_close
	assertEquals "the interrupted build left the index INVALID" INVALID "$(index_state)"
	assertEquals "v6 was not recorded" "0,1,2,3,4,5" "$(versions)"
}

test_11_server_cancels_the_orphaned_build_by_itself() {
	assertEquals "the server ended the build of the killed agent within 10 s (client_connection_check_interval)" \
		yes "${KILL_CANCELLED_BY_SERVER:-unset}"
}

test_12_rerun_after_kill_converges() {
	tl_agent -c "$WORK/agent.conf" migrate
	assertEquals "the re-run exits 0: $TL_ERR" 0 "$TL_RC"
	assertContains "it says it drops the INVALID index" "$TL_ERR" "$INDEX is INVALID"
	assertEquals "the index is valid" valid "$(index_state)"
	assertEquals "v9 reached" "0,1,2,3,4,5,6,7,8,9" "$(versions)"
	tl_agent -c "$WORK/agent.conf" verify
	assertEquals "verify is clean: $TL_OUT $TL_ERR" 0 "$TL_RC"
}

# make_invalid_unique_index: a CREATE UNIQUE INDEX CONCURRENTLY with the name
# of v6's index fails on duplicate thread_ids and leaves the index INVALID.
make_invalid_unique_index() {
	tl_sql "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint)
		VALUES ('dup', 'c1', '{}'), ('dup', 'c2', '{}')" >/dev/null
	if tl_sql "CREATE UNIQUE INDEX CONCURRENTLY $INDEX ON checkpoints (thread_id)" >/dev/null 2>&1; then
		fail "the unique build should have failed on duplicate data"
	fi
}

test_20_dry_run_shows_the_invalid_index_and_changes_nothing() {
	roll_back_to_5
	make_invalid_unique_index
	assertEquals "the failed unique build left an INVALID index" INVALID "$(index_state)"
	tl_agent -c "$WORK/agent.conf" migrate --dry-run
	assertEquals "dry run exits 0: $TL_ERR" 0 "$TL_RC"
	assertContains "the plan says the index is INVALID" "$TL_OUT" "$INDEX is INVALID"
	printf '%s\n' "$TL_OUT" | grep -Eq "DROP INDEX CONCURRENTLY IF EXISTS \"?public\"?\.\"?$INDEX\"?"
	assertTrue "the plan drops it: $TL_OUT" $?
	assertEquals "the index is still there and INVALID" INVALID "$(index_state)"
	assertEquals "still at v5" "0,1,2,3,4,5" "$(versions)"
}

test_21_preexisting_invalid_index_is_dropped_and_rebuilt() {
	tl_agent -c "$WORK/agent.conf" migrate
	assertEquals "migrate exits 0: $TL_ERR" 0 "$TL_RC"
	assertContains "it says it drops the INVALID index" "$TL_ERR" "$INDEX is INVALID"
	assertEquals "the index is valid" valid "$(index_state)"
	assertEquals "it is v6's index again, not the unique one" \
		"CREATE INDEX $INDEX ON public.checkpoints USING btree (thread_id)" \
		"$(tl_sql "SELECT pg_get_indexdef('public.$INDEX'::regclass)")"
	tl_agent -c "$WORK/agent.conf" verify
	assertEquals "verify is clean: $TL_OUT $TL_ERR" 0 "$TL_RC"
}

tl_run
