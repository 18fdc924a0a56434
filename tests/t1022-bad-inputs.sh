#!/bin/bash
# t1022-bad-inputs.sh: bad inputs of every kind, run with the agent built
# with AddressSanitizer and UndefinedBehaviorSanitizer: arguments, config
# files (empty, binary, huge, a directory, unreadable, wrong settings),
# connection strings (malformed, unknown parameters, bad ports, wrong
# password, missing database, a role without rights) and the environment.
# Each must exit with its documented code, say what the problem is, and
# leave no sanitizer report. The counts are printed for the README.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

ASAN_AGENT=$TL_ROOT/agent/checkpoint-agent-asan

suite_setup() {
	make -s -C "$TL_ROOT" agent/checkpoint-agent-asan >/dev/null || return 1
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	CONF=$WORK/agent.conf
	tl_agent_conf "$CONF" "lock_timeout = 2;"
	tl_agent -c "$CONF" migrate
	[ "$TL_RC" = 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
	make_role_without_rights
	CASES=0
	REPORTS=0
}

# A role that may log in, and nothing else.
make_role_without_rights() {
	NORIGHTS_PW=$WORK/norights-password
	head -c 12 /dev/urandom | base64 | tr '+/' '-_' >"$NORIGHTS_PW"
	chmod 0644 "$NORIGHTS_PW"
	tl_psql_super -d postgres <<-EOF >/dev/null
		\\set pw \`cat $NORIGHTS_PW\`
		SET password_encryption = 'scram-sha-256';
		CREATE ROLE t1022_norights LOGIN PASSWORD :'pw';
		REVOKE CREATE ON SCHEMA public FROM PUBLIC;
	EOF
	chmod 0600 "$NORIGHTS_PW"
	cat >"$WORK/norights.conf" <<-EOF
		database: { uri = "postgresql://t1022_norights@127.0.0.1:$TL_PGPORT/$TL_APP_DB"; password_file = "$NORIGHTS_PW"; };
	EOF
}

# expect RC MESSAGE ARGS...: the ASan agent with ARGS exits RC, says MESSAGE on
# stderr or stdout, and no sanitizer reports anything.
expect() {
	local rc=$1 msg=$2
	shift 2
	CASES=$((CASES + 1))
	ASAN_OPTIONS=detect_leaks=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		TL_AGENT=$ASAN_AGENT tl_agent "$@"
	case "$TL_ERR" in
	*Sanitizer* | *"runtime error"*)
		REPORTS=$((REPORTS + 1))
		fail "sanitizer report for $*: $(printf '%s' "$TL_ERR" | head -c 1500)"
		return
		;;
	esac
	assertEquals "exit code of: $* (stderr: $TL_ERR)" "$rc" "$TL_RC"
	assertContains "message of: $*" "$TL_OUT$TL_ERR" "$msg"
}

# conf NAME TEXT: a config file holding TEXT; its path on stdout.
conf() {
	printf '%s\n' "$2" >"$WORK/$1"
	printf '%s\n' "$WORK/$1"
}

test_01_arguments() {
	expect 64 "'--frobnicate'" --frobnicate status
	expect 64 "no command given" -c "$CONF"
	expect 64 "unknown command 'frobnicate'" -c "$CONF" frobnicate
	expect 64 "--to nine: not a version number" -c "$CONF" migrate --to nine
	expect 64 "langgraph has versions 0 to 9" -c "$CONF" migrate --to 42
	expect 64 "not a version number" -c "$CONF" migrate --to 99999999999999999999
	expect 64 "not a version number" -c "$CONF" migrate --to=
	expect 64 "'--to'" -c "$CONF" migrate --to
	expect 64 "--to V is required" -c "$CONF" rollback
	expect 64 "--to -2: not a version number" -c "$CONF" rollback --to -2
	expect 64 "langgraph has versions -1 to 9" -c "$CONF" rollback --to 99
	expect 64 "--set nosuch: unknown set" -c "$CONF" migrate --set nosuch
	expect 64 "not in migrations.sets" -c "$CONF" rollback --set agentos --to 0
	expect 64 "'extra'" -c "$CONF" status extra
	expect 64 "'--json'" -c "$CONF" verify --json
	expect 3 "'xml'" -c "$CONF" check --format xml
	expect 64 "--cycles needs a whole number" -c "$CONF" run --cycles 0
	expect 64 "--interval-ms needs a whole number" -c "$CONF" run --interval-ms -5
	expect 64 "'-c'" -c
	expect 64 "unknown command 'nosuch'" help nosuch
}

test_02_config_files() {
	local huge=$WORK/huge.conf
	expect 78 "No such file or directory" -c "$WORK/none.conf" status
	CHECKPOINT_DB_URI=$TL_DB_URI PGPASSFILE=$TL_PGPASSFILE expect 0 "set langgraph" -c "$(conf empty.conf '')" status
	head -c 4096 /dev/urandom >"$WORK/binary.conf"
	expect 78 "$WORK/binary.conf:" -c "$WORK/binary.conf" status
	awk 'BEGIN { for (i = 0; i < 200000; i++) print "database: { uri = \"x\"; }; garbage garbage garbage" }' >"$huge"
	expect 78 "$huge:1:" -c "$huge" status
	expect 78 "cannot read the config file" -c "$WORK" status
	expect 78 "unknown setting \"migration\"" -c "$(conf group.conf 'migration: { lock_timeout = 5; };')" status
	expect 78 "unknown setting \"database.colour\"" -c "$(conf key.conf 'database: { colour = "red"; };')" status
	expect 78 "connect_timeout: must be a whole number" -c "$(conf type.conf 'database: { connect_timeout = "5"; };')" status
	expect 78 "lock_timeout: must be between 0 and 86400" -c "$(conf range.conf 'migrations: { lock_timeout = -1; };')" status
	expect 78 "warning threshold is beyond its critical one" \
		-c "$(conf order.conf 'checks: { query_warn_ms = 900; query_crit_ms = 100; };')" status
	expect 78 "unknown set \"redis\"" -c "$(conf sets.conf 'migrations: { sets = [ "redis" ]; };')" status
	expect 78 "names no set" -c "$(conf nosets.conf 'migrations: { sets = [ ]; };')" status
	expect 78 "syntax error" -c "$(conf syntax.conf 'database: { uri = ; };')" status
}

test_03_unreadable_config_file() {
	local file=$WORK/secret.conf
	cp "$CONF" "$file"
	chmod 0600 "$file"
	chmod 0755 "$WORK"
	CASES=$((CASES + 1))
	TL_RC=0
	TL_ERR=$(ASAN_OPTIONS=detect_leaks=0 runuser -u nobody -- "$ASAN_AGENT" -c "$file" status 2>&1 >/dev/null) || TL_RC=$?
	assertEquals "unreadable config, as nobody: $TL_ERR" 78 "$TL_RC"
	assertContains "it names the reason" "$TL_ERR" "Permission denied"
}

test_04_password_files() {
	local pw=$WORK/pw
	expect 78 "cannot open the password file" \
		-c "$(conf pw1.conf "database: { uri = \"$TL_DB_URI\"; password_file = \"$WORK/nopw\"; };")" status
	cp "$TL_PASSWORD_FILE" "$pw"
	chmod 0644 "$pw"
	expect 78 "can be read or written by others" \
		-c "$(conf pw2.conf "database: { uri = \"$TL_DB_URI\"; password_file = \"$pw\"; };")" status
	: >"$WORK/empty-pw"
	chmod 0600 "$WORK/empty-pw"
	expect 78 "is empty" \
		-c "$(conf pw3.conf "database: { uri = \"$TL_DB_URI\"; password_file = \"$WORK/empty-pw\"; };")" status
}

test_05_connection_strings() {
	local port
	port=$(tl_free_port)
	CHECKPOINT_DB_URI="postgresql://[::1" expect 78 "is not one libpq accepts" -c "$CONF" status
	CHECKPOINT_DB_URI="$TL_DB_URI?frobnicate=1" expect 78 "frobnicate" -c "$CONF" status
	CHECKPOINT_DB_URI="host=127.0.0.1 port=" expect 69 "cannot connect" -c "$CONF" status
	# A port no TCP port can be is a bad value in the string: a config error, as libpq says before dialling.
	CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:99999/$TL_APP_DB" expect 78 "99999" -c "$CONF" status
	CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$port/$TL_APP_DB" expect 69 "Connection refused" -c "$CONF" status
	CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/nosuchdb" \
		expect 69 "database \"nosuchdb\" does not exist" -c "$CONF" status
	printf 'Wr0ng-%s\n' "$RANDOM" >"$WORK/wrong-pw"
	chmod 0600 "$WORK/wrong-pw"
	expect 69 "password authentication failed" \
		-c "$(conf wrongpw.conf "database: { uri = \"$TL_DB_URI\"; password_file = \"$WORK/wrong-pw\"; };")" status
	CHECKPOINT_DB_URI="postgresql://nosuchrole@127.0.0.1:$TL_PGPORT/$TL_APP_DB" \
		expect 69 "nosuchrole" -c "$CONF" status
	expect 77 "permission denied" -c "$WORK/norights.conf" status
	expect 77 "permission denied" -c "$WORK/norights.conf" verify
	expect 70 "permission denied" -c "$WORK/norights.conf" migrate
	expect 2 "CRITICAL" -c "$WORK/norights.conf" check
}

test_06_environment() {
	CHECKPOINT_DB_URI="" PGPASSFILE=$TL_PGPASSFILE expect 0 "set langgraph" -c "$CONF" status
	CHECKPOINT_DB_URI="this is = not a uri" expect 78 "is not one libpq accepts" -c "$CONF" status
	JOURNAL_STREAM="garbage" expect 64 "checkpoint-agent: unknown command" -c "$CONF" frobnicate
	PGOPTIONS="-c default_transaction_read_only=on" expect 2 "read-only transaction" -c "$CONF" check
	expect 3 "cannot quote" -c "$(conf quote.conf "database: { uri = \"$TL_DB_URI\"; password_file = \"$TL_PASSWORD_FILE\"; };
migrations: { agent_schema = \"bad\\xff\"; };")" check
}

test_99_counts() {
	tl_log "bad inputs under ASan/UBSan: $CASES cases, $REPORTS sanitizer reports"
	assertTrue "at least 40 bad inputs were tried ($CASES)" "[ $CASES -ge 40 ]"
	assertEquals "no sanitizer report" 0 "$REPORTS"
}

tl_run
