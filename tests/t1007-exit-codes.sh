#!/bin/bash
# t1007-exit-codes.sh: every exit code of the documented table, with its
# message: 0, 64 usage, 65 schema differs, 69 database unreachable (libpq's
# reason, never the password), 70 step refused, 75 lock timeout, 78 config
# error ("file:line: message"), 130/143 stopped by SIGINT/SIGTERM. Messages
# go to stderr and stdout stays empty on errors. With JOURNAL_STREAM naming
# stderr, every line carries its syslog priority ("<3>"); without it, none
# does.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	CONF=$WORK/agent.conf
	tl_agent_conf "$CONF"
	tl_agent_conf "$WORK/short-lock.conf" "lock_timeout = 1;"
	tl_agent -c "$CONF" migrate
	[ "$TL_RC" = 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

suite_teardown() {
	close_session
}

# assert_error RC WHAT: the last run exited RC, printed nothing on stdout,
# and said something on stderr.
assert_error() {
	assertEquals "$2: exit code (stderr: $TL_ERR)" "$1" "$TL_RC"
	assertEquals "$2: nothing on stdout" "" "$TL_OUT"
	assertNotEquals "$2: a message on stderr" "" "$TL_ERR"
}

# write_conf NAME TEXT: a config file WORK/NAME holding TEXT; prints its path.
write_conf() {
	printf '%s\n' "$2" >"$WORK/$1"
	printf '%s\n' "$WORK/$1"
}

# Another session holding the migration lock, fed through a fifo on fd 7.
open_lock_holder() {
	local deadline=$((SECONDS + 10))
	rm -f "$WORK/session.fifo"
	mkfifo "$WORK/session.fifo"
	tl_psql_super -d "dbname=$TL_APP_DB application_name=t1007-holder" \
		<"$WORK/session.fifo" >/dev/null 2>&1 &
	SESSION_PSQL=$!
	exec 7>"$WORK/session.fifo"
	printf '%s\n' "SELECT pg_advisory_lock(1129333063, 1);" >&7
	while [ "$SECONDS" -lt "$deadline" ]; do
		HOLDER_PID=$(tl_sql "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 't1007-holder'")
		[ -n "$HOLDER_PID" ] && return 0
		sleep 0.2
	done
	fail "the test session could not take the migration lock"
}

close_session() {
	[ -n "${SESSION_PSQL:-}" ] || return 0
	printf '%s\n' '\q' >&7
	exec 7>&-
	wait "$SESSION_PSQL" 2>/dev/null
	SESSION_PSQL=
}

test_01_exit_0_version() {
	tl_agent --version
	assertEquals "--version exits 0" 0 "$TL_RC"
	assertEquals "--version prints the name and version" "checkpoint-agent $(cat "$TL_ROOT/VERSION")" "$TL_OUT"
}

test_02_exit_0_status_verify_migrate() {
	tl_agent -c "$CONF" status
	assertEquals "status at v9: $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$CONF" verify
	assertEquals "verify at v9: $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$CONF" migrate
	assertEquals "migrate with nothing to do: $TL_ERR" 0 "$TL_RC"
}

test_10_exit_64_unknown_option() {
	tl_agent -c "$CONF" --frobnicate status
	assert_error 64 "unknown option"
	assertContains "the message names the option" "$TL_ERR" "'--frobnicate'"
	tl_agent -c "$CONF" migrate --frobnicate
	assert_error 64 "unknown option of migrate"
	assertContains "the message names the option" "$TL_ERR" "'--frobnicate'"
}

test_11_exit_64_unknown_command() {
	tl_agent -c "$CONF" frobnicate
	assert_error 64 "unknown command"
	assertContains "the message names the command" "$TL_ERR" "unknown command 'frobnicate'"
	tl_agent -c "$CONF"
	assert_error 64 "no command"
}

test_12_exit_64_bad_to_value() {
	tl_agent -c "$CONF" migrate --to nine
	assert_error 64 "migrate --to nine"
	assertContains "the message names the value" "$TL_ERR" "--to nine: not a version number"
	tl_agent -c "$CONF" rollback --to -2
	assert_error 64 "rollback --to -2"
	assertContains "the message names the value" "$TL_ERR" "--to -2: not a version number"
	tl_agent -c "$CONF" rollback --to 3x
	assert_error 64 "rollback --to 3x"
	assertContains "the message names the value" "$TL_ERR" "--to 3x"
	tl_agent -c "$CONF" rollback
	assert_error 64 "rollback without --to"
	assertContains "the message says --to is required" "$TL_ERR" "--to V is required"
}

test_13_exit_64_unknown_set() {
	tl_agent -c "$CONF" migrate --set nosuchset
	assert_error 64 "migrate --set nosuchset"
	assertContains "the message names the set" "$TL_ERR" "--set nosuchset: unknown set"
	tl_agent -c "$CONF" rollback --set agentos --to 0
	assert_error 64 "a set not in the config"
	assertContains "the message says where to add it" "$TL_ERR" "--set agentos: the set is not in migrations.sets"
}

test_20_exit_65_schema_differs() {
	tl_sql "ALTER TABLE public.checkpoints DROP COLUMN type" >/dev/null
	tl_agent -c "$CONF" verify
	tl_sql "ALTER TABLE public.checkpoints ADD COLUMN type TEXT" >/dev/null
	assertEquals "verify exits 65" 65 "$TL_RC"
	assertContains "the difference is listed" "$TL_OUT" "column type of public.checkpoints is missing"
}

test_30_exit_69_nothing_listens_on_the_port() {
	local port
	port=$(tl_free_port)
	CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$port/$TL_APP_DB" tl_agent -c "$CONF" status
	assert_error 69 "wrong port"
	assertContains "libpq's reason" "$TL_ERR" "Connection refused"
	assertContains "the address it tried" "$TL_ERR" "127.0.0.1:$port"
}

test_31_exit_69_wrong_password_never_shows_it() {
	local secret="Wr0ng-pa55-$RANDOM-zq" conf
	printf '%s\n' "$secret" >"$WORK/wrong-password"
	chmod 0600 "$WORK/wrong-password"
	conf=$(write_conf wrong-password.conf "database: { uri = \"$TL_DB_URI\"; password_file = \"$WORK/wrong-password\"; };")
	tl_agent -v -c "$conf" migrate
	assert_error 69 "wrong password"
	assertContains "libpq's reason" "$TL_ERR" "password authentication failed for user \"$TL_APP_ROLE\""
	assertNotContains "the password is not on stderr" "$TL_ERR" "$secret"
	assertNotContains "the password is not on stdout" "$TL_OUT" "$secret"
}

test_32_right_password_never_shown_either() {
	local secret
	secret=$(cat "$TL_PASSWORD_FILE")
	tl_agent -v -c "$CONF" status --json
	assertEquals "status works: $TL_ERR" 0 "$TL_RC"
	assertNotContains "the password is not on stderr" "$TL_ERR" "$secret"
	assertNotContains "the password is not on stdout" "$TL_OUT" "$secret"
}

test_33_password_in_the_uri_never_shown() {
	local secret="In-Ur1-$RANDOM-pw" port
	port=$(tl_free_port)
	CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE:$secret@127.0.0.1:$port/$TL_APP_DB" tl_agent -c "$CONF" status
	assert_error 69 "unreachable, with a password in the URI"
	assertContains "the target, without the password" "$TL_ERR" "$TL_APP_ROLE@127.0.0.1:$port/$TL_APP_DB"
	assertNotContains "the password is not on stderr" "$TL_ERR" "$secret"
	CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE:$secret@127.0.0.1:$TL_PGPORT/$TL_APP_DB" \
		tl_agent -c "$CONF" migrate --dry-run
	assertEquals "dry run: $TL_ERR" 0 "$TL_RC"
	assertNotContains "the plan does not show the password" "$TL_OUT" "$secret"
}

test_40_exit_75_lock_timeout() {
	open_lock_holder
	tl_agent -c "$WORK/short-lock.conf" migrate
	close_session
	assert_error 75 "lock timeout"
	assertContains "the message names the holder's pid" "$TL_ERR" "(pid $HOLDER_PID)"
}

# stop_waiting_migrate SIGNAL: a migrate waiting for the held migration lock,
# stopped by SIGNAL; its exit code in TL_RC, its stderr in TL_ERR.
stop_waiting_migrate() {
	local pid deadline=$((SECONDS + 15)) waiting=
	open_lock_holder
	"$TL_AGENT" -c "$CONF" migrate >/dev/null 2>"$WORK/stop.err" &
	pid=$!
	while [ "$SECONDS" -lt "$deadline" ] && [ -z "$waiting" ]; do
		waiting=$(tl_sql "SELECT pid FROM pg_stat_activity WHERE pid <> $HOLDER_PID
			AND query LIKE '%pg_try_advisory_lock%' AND query NOT LIKE '%pg_stat_activity%'")
		[ -n "$waiting" ] || sleep 0.2
	done
	kill -s "$1" "$pid"
	wait "$pid"
	TL_RC=$?
	TL_ERR=$(cat "$WORK/stop.err")
	close_session
	assertNotEquals "the migrate was seen waiting for the lock" "" "$waiting"
}

# AERR_STOPPED becomes 128 + the signal in the dispatcher (exit_code_for).
test_41_exit_143_and_130_stopped_while_waiting_for_the_lock() {
	stop_waiting_migrate TERM
	assertEquals "SIGTERM: exit 143 (stderr: $TL_ERR)" 143 "$TL_RC"
	assertContains "it says it stopped and changed nothing" "$TL_ERR" "stopped while waiting for the migration lock"
	stop_waiting_migrate INT
	assertEquals "SIGINT: exit 130 (stderr: $TL_ERR)" 130 "$TL_RC"
}

test_50_exit_78_syntax_error() {
	local conf
	conf=$(write_conf syntax.conf "database:
{
  uri = \"$TL_DB_URI\";
  connect_timeout = ;
};")
	tl_agent -c "$conf" status
	assert_error 78 "syntax error"
	assertContains "file:line: libconfig's message" "$TL_ERR" "$conf:4: syntax error"
}

test_51_exit_78_unknown_setting() {
	local conf
	conf=$(write_conf unknown.conf "migrations:
{
  lock_timout = 5;
};")
	tl_agent -c "$conf" status
	assert_error 78 "unknown setting"
	assertContains "file:line: and the setting" "$TL_ERR" "$conf:3: unknown setting \"migrations.lock_timout\""
	conf=$(write_conf unknown-group.conf "database: { uri = \"$TL_DB_URI\"; };
migration: { lock_timeout = 5; };")
	tl_agent -c "$conf" status
	assert_error 78 "unknown group"
	assertContains "file:line: and the group" "$TL_ERR" "$conf:2: unknown setting \"migration\""
}

test_52_exit_78_wrong_type() {
	local conf
	conf=$(write_conf type.conf "database:
{
  connect_timeout = \"5\";
};")
	tl_agent -c "$conf" status
	assert_error 78 "wrong type"
	assertContains "file:line: setting: what it must be" "$TL_ERR" "$conf:3: connect_timeout: must be a whole number"
	conf=$(write_conf range.conf "migrations: { lock_timeout = -1; };")
	tl_agent -c "$conf" status
	assert_error 78 "out of range"
	assertContains "file:line: setting: the range" "$TL_ERR" "$conf:1: lock_timeout: must be between 0 and 86400"
}

test_53_exit_78_missing_config_file() {
	tl_agent -c "$WORK/no-such.conf" status
	assert_error 78 "missing -c file"
	assertContains "the message names the file" "$TL_ERR" "$WORK/no-such.conf"
	assertContains "and the reason" "$TL_ERR" "No such file or directory"
}

test_54_exit_78_password_file_others_can_read() {
	local conf
	cp "$TL_PASSWORD_FILE" "$WORK/open-password"
	chmod 0644 "$WORK/open-password"
	conf=$(write_conf open-password.conf "database: { uri = \"$TL_DB_URI\"; password_file = \"$WORK/open-password\"; };")
	tl_agent -c "$conf" status
	assert_error 78 "world-readable password file"
	assertContains "the message names the file and the fix" "$TL_ERR" \
		"the password file $WORK/open-password can be read or written by others; make it 0600 or 0640"
}

test_60_exit_70_refused_step() {
	tl_agent -c "$CONF" rollback --to 4
	assertEquals "rollback --to 4: $TL_ERR" 0 "$TL_RC"
	tl_sql "INSERT INTO checkpoint_blobs (thread_id, channel, version, type, blob) VALUES ('t', 'c', '1', 'empty', NULL)" >/dev/null
	tl_agent -c "$CONF" rollback --to 3
	tl_sql "DELETE FROM checkpoint_blobs" >/dev/null
	assert_error 70 "refused down step"
	assertContains "the reason" "$TL_ERR" "blob is NULL"
	tl_agent -c "$CONF" migrate
	assertEquals "back to v9: $TL_ERR" 0 "$TL_RC"
}

# run_with_journal_stream ARGS...: the agent with stderr on a file that
# JOURNAL_STREAM names (device:inode, in decimal, as systemd sets it).
run_with_journal_stream() {
	local err=$WORK/journal.err stream
	: >"$err"
	stream=$(stat -c '%d:%i' "$err")
	TL_RC=0
	JOURNAL_STREAM=$stream "$TL_AGENT" "$@" >/dev/null 2>>"$err" || TL_RC=$?
	TL_ERR=$(cat "$err")
}

# unprefixed_lines TEXT: the lines of TEXT that carry no "<N>" priority.
unprefixed_lines() {
	printf '%s\n' "$1" | grep -Ev '^<[0-7]>' || true
}

test_70_journal_stream_prefixes_every_line() {
	run_with_journal_stream -c "$CONF" frobnicate
	assertEquals "exit code under the journal" 64 "$TL_RC"
	assertEquals "every line has a priority prefix" "" "$(unprefixed_lines "$TL_ERR")"
	assertContains "an error is priority 3" "$TL_ERR" "<3>unknown command 'frobnicate'"
	run_with_journal_stream -c "$CONF" migrate
	assertEquals "every line of migrate has a priority prefix" "" "$(unprefixed_lines "$TL_ERR")"
	assertContains "information is priority 6" "$TL_ERR" "<6>langgraph is at version 9"
	run_with_journal_stream -c "$CONF" migrate --to x
	assertEquals "every line of a usage error has a priority prefix" "" "$(unprefixed_lines "$TL_ERR")"
}

test_71_no_prefix_without_journal_stream() {
	tl_agent -c "$CONF" frobnicate
	assertEquals "no line starts with a priority" "" "$(printf '%s\n' "$TL_ERR" | grep -E '^<[0-9]>')"
	assertContains "lines name the program instead" "$TL_ERR" "checkpoint-agent: unknown command 'frobnicate'"
}

test_72_journal_stream_naming_another_file_is_ignored() {
	local other=$WORK/other
	: >"$other"
	JOURNAL_STREAM=$(stat -c '%d:%i' "$other") tl_agent -c "$CONF" frobnicate
	assertEquals "stderr is not that stream: no prefix" "" "$(printf '%s\n' "$TL_ERR" | grep -E '^<[0-9]>')"
}

tl_run
