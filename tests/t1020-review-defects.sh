#!/bin/bash
# t1020-review-defects.sh: the defects a review found in the migration
# commands and their command line, one test each (each failed against the
# agent before its fix):
#
# - a row committed between a down step's row count and its DROP TABLE was
#   lost: the table is now locked before it is counted;
# - a lock timeout on the ledger INSERT exited 70 instead of being retried;
# - status and verify exited 70 ("a step failed") when a query was refused;
#   a missing privilege is 77 now;
# - `check` usage errors exited 64 where a Nagios plugin exits 3;
# - `migrate --to 42` and `rollback --to 99` exited 0; they are usage errors
#   naming the known range, and a rollback never says "nothing to apply";
# - every command has --help (exit 0, its options) and `help COMMAND`; -c and
#   --config=FILE work before or after the command;
# - the state file's folder was not fsynced after the rename.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	CONF=$WORK/agent.conf
	tl_agent_conf "$CONF" "lock_timeout = 20;"
	tl_agent -c "$CONF" migrate
	[ "$TL_RC" = 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

suite_teardown() {
	tl_session_close
	[ -z "${BG_PID:-}" ] || kill "$BG_PID" 2>/dev/null
}

versions() {
	tl_sql "SELECT coalesce(max(v), -1) FROM public.checkpoint_migrations"
}

# The agent's backend waits for the advisory lock KEY (held by the test).
agent_waits_on_advisory() {
	tl_wait_for 15 "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted)"
}

# An event trigger that pauses the real down step's DROP TABLE of checkpoints
# (lock_timeout 3s; the rehearsal's is 5s) until the test lets it go: the
# moment between its row count and its drop.
install_pause_before_drop() {
	tl_sql "CREATE FUNCTION public.t1020_pause() RETURNS event_trigger LANGUAGE plpgsql AS \$\$
		BEGIN
			IF current_setting('lock_timeout') = '3s' AND current_query() LIKE '%DROP TABLE%checkpoints%' THEN
				PERFORM pg_advisory_xact_lock(1020);
			END IF;
		END \$\$;
		CREATE EVENT TRIGGER t1020_pause ON ddl_command_start WHEN TAG IN ('DROP TABLE')
			EXECUTE FUNCTION public.t1020_pause();" >/dev/null
}

remove_pause_before_drop() {
	tl_sql "DROP EVENT TRIGGER IF EXISTS t1020_pause; DROP FUNCTION IF EXISTS public.t1020_pause()" >/dev/null
}

# rows_anywhere: rows of the test's writer in public.checkpoints and in every quarantined checkpoints.
rows_anywhere() {
	local t n=0 c
	for t in $(tl_sql "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'checkpoints' AND c.relkind = 'r'
		AND (n.nspname = 'public' OR n.nspname LIKE 'checkpoint\_quarantine\_%')"); do
		c=$(tl_sql "SELECT count(*) FROM $t WHERE thread_id = 'late'")
		n=$((n + c))
	done
	printf '%s\n' "$n"
}

test_01_a_row_committed_during_a_down_step_is_not_lost() {
	local insert_rc found
	tl_agent -c "$CONF" rollback --to 1
	assertEquals "rollback --to 1: $TL_ERR" 0 "$TL_RC"
	install_pause_before_drop
	tl_session_open t1020-pauser tl_psql_super
	tl_session_sql "SELECT pg_advisory_lock(1020);"
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 1020 AND granted)" ||
		fail "the test session could not take its advisory lock"
	"$TL_AGENT" -c "$CONF" rollback --to 0 >"$WORK/rb.out" 2>"$WORK/rb.err" 7>&- &
	BG_PID=$!
	agent_waits_on_advisory 1020 || fail "the down step never reached its DROP TABLE"
	# A writer commits a row now, between the step's count (0 rows) and its drop.
	tl_psql_app -c "SET statement_timeout = '15s'" \
		-c "INSERT INTO public.checkpoints (thread_id, checkpoint_id, checkpoint) VALUES ('late', 'c', '{}')" \
		>"$WORK/insert.out" 2>&1 7>&- &
	local insert_pid=$!
	sleep 1
	tl_session_close
	wait "$insert_pid"
	insert_rc=$?
	wait "$BG_PID"
	BG_PID=
	remove_pause_before_drop
	found=$(rows_anywhere)
	tl_log "insert exit $insert_rc ($(cat "$WORK/insert.out")); its row found $found times"
	if [ "$insert_rc" = 0 ]; then
		assertEquals "the committed row survives, in public or in quarantine (rollback: $(cat "$WORK/rb.err"))" \
			1 "$found"
	else
		assertContains "the writer was held off until the table was gone" "$(cat "$WORK/insert.out")" \
			"does not exist"
	fi
	tl_agent -c "$CONF" migrate
	assertEquals "migrate back: $TL_ERR" 0 "$TL_RC"
}

test_02_a_lock_timeout_on_the_ledger_is_retried() {
	local rc
	tl_agent -c "$CONF" rollback --to 8
	assertEquals "rollback --to 8: $TL_ERR" 0 "$TL_RC"
	tl_session_open t1020-ledger tl_psql_super
	tl_session_sql "BEGIN; LOCK TABLE checkpoint_agent.ledger IN SHARE MODE;"
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 't1020-ledger'
		AND state = 'idle in transaction')" || fail "the ledger was not locked"
	"$TL_AGENT" -c "$CONF" migrate >"$WORK/ledger.out" 2>"$WORK/ledger.err" 7>&- &
	BG_PID=$!
	# Until the step has given up on the ledger's lock once (3 s) and said it tries again.
	local i
	for i in $(seq 1 300); do
		grep -q "trying again" "$WORK/ledger.err" && break
		sleep 0.1
	done
	tl_session_close
	wait "$BG_PID"
	rc=$?
	BG_PID=
	assertEquals "migrate retries past the ledger's lock and succeeds: $(cat "$WORK/ledger.err")" 0 "$rc"
	assertContains "it said it retries" "$(cat "$WORK/ledger.err")" "trying again"
	assertEquals "at v9" 9 "$(versions)"
}

test_03_status_and_verify_without_privilege_exit_77() {
	local pw=$WORK/ro-password conf=$WORK/ro.conf
	head -c 12 /dev/urandom | base64 | tr '+/' '-_' >"$pw"
	chmod 0644 "$pw"	# psql runs as postgres; the agent then wants 0600
	tl_psql_super -d postgres <<-EOF >/dev/null
		\\set pw \`cat $pw\`
		SET password_encryption = 'scram-sha-256';
		CREATE ROLE t1020_ro LOGIN PASSWORD :'pw';
	EOF
	chmod 0600 "$pw"
	cat >"$conf" <<-EOF
		database: { uri = "postgresql://t1020_ro@127.0.0.1:$TL_PGPORT/$TL_APP_DB"; password_file = "$pw"; };
	EOF
	tl_agent -c "$conf" status
	assertEquals "status without SELECT on the version table: $TL_ERR" 77 "$TL_RC"
	assertContains "it names the refusal" "$TL_ERR" "permission denied"
	tl_agent -c "$conf" verify
	assertEquals "verify without privilege: $TL_ERR" 77 "$TL_RC"
}

test_04_check_usage_errors_exit_3() {
	tl_agent -c "$CONF" check --format xml
	assertEquals "unknown format: $TL_ERR" 3 "$TL_RC"
	assertContains "it names the value" "$TL_ERR" "'xml'"
	tl_agent -c "$CONF" check --frobnicate
	assertEquals "unknown option: $TL_ERR" 3 "$TL_RC"
	tl_agent -c "$CONF" check extra
	assertEquals "a stray argument: $TL_ERR" 3 "$TL_RC"
}

test_05_out_of_range_targets_are_usage_errors() {
	tl_agent -c "$CONF" migrate --to 42
	assertEquals "migrate --to 42: $TL_ERR" 64 "$TL_RC"
	assertContains "it names the range" "$TL_ERR" "langgraph has versions 0 to 9"
	tl_agent -c "$CONF" rollback --to 99
	assertEquals "rollback --to 99: $TL_ERR" 64 "$TL_RC"
	assertContains "it names the range" "$TL_ERR" "langgraph has versions -1 to 9"
	assertEquals "nothing changed" 9 "$(versions)"
}

test_06_rollback_never_says_nothing_to_apply() {
	tl_agent -c "$CONF" rollback --to 9
	assertEquals "rollback to the current version: $TL_ERR" 0 "$TL_RC"
	assertNotContains "no 'nothing to apply' in a rollback" "$TL_ERR" "nothing to apply"
	assertContains "it says there is nothing to roll back" "$TL_ERR" "nothing to roll back"
}

test_07_every_command_has_help() {
	local cmd opt
	for cmd in migrate status verify rollback check run; do
		tl_agent "$cmd" --help
		assertEquals "$cmd --help exits 0: $TL_ERR" 0 "$TL_RC"
		assertContains "$cmd --help shows its usage" "$TL_OUT" "usage: checkpoint-agent $cmd"
		assertContains "$cmd --help shows the common options" "$TL_OUT" "--config=FILE"
		tl_agent help "$cmd"
		assertEquals "help $cmd exits 0" 0 "$TL_RC"
		assertContains "help $cmd is the same text" "$TL_OUT" "usage: checkpoint-agent $cmd"
	done
	for opt in --set= --to= --dry-run; do
		tl_agent migrate -h
		assertContains "migrate's help lists $opt" "$TL_OUT" "$opt"
	done
	tl_agent rollback --help
	assertContains "rollback's help lists --purge" "$TL_OUT" "--purge"
	tl_agent check --help
	assertContains "check's help lists --format" "$TL_OUT" "--format=F"
	tl_agent help nosuch
	assertEquals "help of an unknown command" 64 "$TL_RC"
}

test_08_config_before_or_after_the_command_in_both_spellings() {
	local how
	for how in "-c $CONF status" "--config=$CONF status" "--config $CONF status" "status -c $CONF" \
		"status --config=$CONF" "status --config $CONF" "status -c$CONF" "-v status --config=$CONF"; do
		# shellcheck disable=SC2086 # the words of HOW are the arguments
		tl_agent $how
		assertEquals "checkpoint-agent $how: $TL_ERR" 0 "$TL_RC"
	done
	tl_agent migrate --dry-run --config="$CONF" --set=langgraph --to=9
	assertEquals "--opt=value for every option: $TL_ERR" 0 "$TL_RC"
	tl_agent status -c "$WORK/none.conf"
	assertEquals "a missing -c file after the command is the config error" 78 "$TL_RC"
}

test_09_state_file_folder_is_synced_after_the_rename() {
	command -v strace >/dev/null || { startSkipping; return; }
	local conf=$WORK/state.conf trace=$WORK/strace.log
	tl_agent_conf "$conf"
	printf 'service: { state_file = "%s/state"; };\n' "$WORK" >>"$conf"
	strace -f -e trace=openat,rename,fsync -o "$trace" "$TL_AGENT" -c "$conf" check >/dev/null 2>&1
	# After the state file's rename, an fsync of a descriptor opened on its folder.
	awk -v dir="\"$WORK\"" '
		/rename\(.*\/state"/ { renamed = 1 }
		renamed && /openat\(/ && index($0, dir ",") && /O_DIRECTORY/ { split($0, a, "= "); fd = a[2] + 0 }
		renamed && fd && $0 ~ ("fsync\\(" fd "\\)") { ok = 1 }
		END { if (ok) exit 0; exit 1 }' "$trace"
	assertTrue "the folder is fsynced after the rename: $(grep -E 'rename|fsync|DIRECTORY' "$trace" | tail -n 5)" $?
}

tl_run
