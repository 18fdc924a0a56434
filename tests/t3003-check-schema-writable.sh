#!/bin/bash
# t3003: the schema and writable checks, each driven into OK, WARNING and
# CRITICAL: a pending version, a dropped or INVALID index; a slow heartbeat
# commit, a read-only role, a missing privilege, and a standby in recovery.
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	write_conf ""
	HOLD_PIDS=()
	HOLD_FDS=()
}

setUp() {
	tl_psql_super -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE;
		CREATE SCHEMA public AUTHORIZATION pg_database_owner; DROP SCHEMA IF EXISTS checkpoint_agent CASCADE;
		ALTER ROLE $TL_APP_ROLE RESET default_transaction_read_only;"
	write_conf ""
	tl_agent -c "$conf" migrate
	assertEquals "migrate: $TL_ERR" 0 "$TL_RC"
}

tearDown() {
	local fd pid
	for fd in "${HOLD_FDS[@]}"; do
		exec {fd}>&-
	done
	for pid in "${HOLD_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	HOLD_FDS=()
	HOLD_PIDS=()
	return 0
}

# write_conf CHECKS [URI]: the config, with CHECKS inside its checks group.
write_conf() {
	cat >"$conf" <<-CONF
		database: { uri = "${2:-$TL_DB_URI}"; password_file = "$TL_PASSWORD_FILE"; statement_timeout = 3000; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; };
		checks: { $1 };
	CONF
}

status_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name { print $1 }'
}

test_01_schema_ok_after_migrate() {
	tl_agent -c "$conf" check
	assertEquals "out: $TL_OUT" OK "$(status_of schema)"
}

test_02_schema_warning_when_a_version_is_pending() {
	tl_agent -c "$conf" rollback --to 8
	assertEquals "rollback: $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$conf" check
	assertEquals "out: $TL_OUT" WARNING "$(status_of schema)"
	assertContains "$TL_OUT" "langgraph: at v8, target v9"
}

test_03_schema_critical_when_an_index_is_dropped() {
	tl_sql "DROP INDEX public.checkpoints_thread_id_idx"
	tl_agent -c "$conf" check
	assertEquals "exit code; out: $TL_OUT" 2 "$TL_RC"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of schema)"
	assertContains "$TL_OUT" "checkpoints_thread_id_idx"
}

test_04_schema_critical_when_an_index_is_invalid() {
	# First a clean check, so that a remembered verify must notice the change.
	tl_agent -c "$conf" check
	assertEquals "clean first; out: $TL_OUT" OK "$(status_of schema)"
	tl_sql "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.checkpoint_blobs_thread_id_idx'::regclass"
	tl_agent -c "$conf" check
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of schema)"
	assertContains "$TL_OUT" "checkpoint_blobs_thread_id_idx"
	assertContains "$TL_OUT" "INVALID"
}

test_05_schema_critical_when_a_column_changes_after_a_clean_check() {
	tl_agent -c "$conf" check
	assertEquals "clean first; out: $TL_OUT" OK "$(status_of schema)"
	tl_sql "ALTER TABLE public.checkpoint_writes ALTER COLUMN task_path DROP DEFAULT"
	tl_agent -c "$conf" check
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of schema)"
	assertContains "$TL_OUT" "task_path"
}

test_06_writable_ok_leaves_no_probe_row_and_commits_the_heartbeat() {
	tl_agent -c "$conf" check
	assertEquals "out: $TL_OUT" OK "$(status_of writable)"
	tl_agent -c "$conf" check
	assertEquals "no probe row is left" 0 \
		"$(tl_sql "SELECT (SELECT count(*) FROM public.checkpoints) + (SELECT count(*) FROM public.checkpoint_blobs)
			+ (SELECT count(*) FROM public.checkpoint_writes)")"
	assertEquals "two committed beats" "1 2" \
		"$(tl_sql "SELECT count(*), max(beats) FROM checkpoint_agent.heartbeat" | tr '|' ' ')"
}

test_07_writable_warning_when_the_commit_is_slow() {
	local fifo fd releaser
	tl_agent -c "$conf" check
	fifo=$dir/fifo
	rm -f "$fifo"
	mkfifo "$fifo"
	tl_psql_super -d "dbname=$TL_APP_DB application_name=t3003-holder" <"$fifo" >/dev/null 2>&1 &
	HOLD_PIDS+=("$!")
	exec {fd}>"$fifo"
	HOLD_FDS+=("$fd")
	# The heartbeat row stays locked until the agent has waited on it for 1 s,
	# however slowly the agent starts: its commit then takes at least that long.
	printf 'BEGIN; SELECT 1 FROM checkpoint_agent.heartbeat FOR UPDATE;\n' >&"$fd"
	tl_wait_for 20 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 't3003-holder'
		AND state = 'idle in transaction')" || fail "the holder never took the row lock"
	write_conf "write_warn_ms = 500; write_crit_ms = 60000;"
	(
		tl_wait_for 60 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'
			AND usename = '$TL_APP_ROLE')" && sleep 1
		printf 'COMMIT;\n' >&"$fd"
	) &
	releaser=$!
	tl_agent -c "$conf" check
	wait "$releaser"
	assertEquals "out: $TL_OUT" WARNING "$(status_of writable)"
}

test_08_writable_critical_when_the_role_is_read_only() {
	tl_sql "ALTER ROLE $TL_APP_ROLE SET default_transaction_read_only = on"
	tl_agent -c "$conf" check
	assertEquals "exit code; out: $TL_OUT" 2 "$TL_RC"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of writable)"
	assertContains "$TL_OUT" "read-only transaction"
}

test_09_writable_critical_without_insert_privilege() {
	# The application role owns its tables; a table owned by another role, as after a restore, refuses it.
	tl_sql "ALTER TABLE public.checkpoint_writes OWNER TO postgres"
	tl_agent -c "$conf" check
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of writable)"
	assertContains "$TL_OUT" "permission denied for table checkpoint_writes"
}

# A standby made with pg_basebackup -R from the test cluster: in recovery, it refuses writes.
test_10_writable_critical_on_a_standby() {
	local sdir sport rc
	sdir=$(tl_tmpdir)
	chown postgres: "$sdir"
	printf 'local replication postgres peer\n' >>"$TL_PGDATA/pg_hba.conf"
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	runuser -u postgres -- "$TL_PGBIN/pg_basebackup" -h "$TL_PGSOCK" -p "$TL_PGPORT" -D "$sdir/data" -R -X stream -c fast \
		>/dev/null 2>&1
	assertEquals "pg_basebackup" 0 $?
	sport=$(tl_free_port)
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$sdir/data" -o "-p $sport -k $sdir" -l "$sdir/server.log" \
		-w -t 30 start >/dev/null 2>&1
	rc=$?
	assertEquals "standby starts: $(cat "$sdir/server.log" 2>/dev/null)" 0 "$rc"
	TL_CLUSTERS+=("$sdir/data")
	write_conf "" "postgresql://$TL_APP_ROLE@127.0.0.1:$sport/$TL_APP_DB"
	tl_agent -c "$conf" check
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of writable)"
	assertContains "$TL_OUT" "in recovery"
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$sdir/data" -m immediate -w stop >/dev/null 2>&1
}

tl_run
