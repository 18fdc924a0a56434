#!/bin/bash
# t1008-messages-and-status: what a new user reads.
#   - a failed connection ends with the hint that fits libpq's reason: a
#     wrong password names the file it came from, a missing one lists where
#     the agent looked, a refused connection names host and port, a missing
#     database says how to create it;
#   - a connection string libpq cannot parse, an unknown parameter or a bad
#     value is a configuration error (78), naming where the string came from;
#   - PGHOST, PGPORT, PGUSER and PGDATABASE count when no uri is configured,
#     and not when one is;
#   - every line of a multi-line libpq message keeps the agent's prefix;
#   - status: each version with when and by whom it was applied, in aligned
#     columns; "none" rather than -1; drift with a hint, as fields in JSON;
#     exit 0 unless --exit-code.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	CONF=$WORK/agent.conf
	tl_agent_conf "$CONF"
	tl_agent -c "$CONF" migrate
	[ "$TL_RC" = 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
	tl_psql_super -d postgres -c "CREATE DATABASE fresh OWNER $TL_APP_ROLE" >/dev/null || return 1
	# An empty home: no ~/.pgpass unless a test writes one.
	EMPTY_HOME=$(tl_tmpdir) || return 1
}

# conf_with NAME TEXT: a config file WORK/NAME holding TEXT; prints its path.
conf_with() {
	printf '%s\n' "$2" >"$WORK/$1"
	printf '%s\n' "$WORK/$1"
}

# agent_env VAR=VALUE... -- ARGS: the agent with a clean libpq environment plus VARs.
agent_env() {
	local -a vars=()
	while [ "$1" != -- ]; do
		vars+=("$1")
		shift
	done
	shift
	local out err
	out=$(mktemp) err=$(mktemp)
	env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGPASSFILE -u PGPASSWORD -u CHECKPOINT_DB_URI \
		HOME="$EMPTY_HOME" "${vars[@]}" "$TL_AGENT" "$@" >"$out" 2>"$err"
	TL_RC=$?
	TL_OUT=$(cat "$out")
	TL_ERR=$(cat "$err")
	rm -f "$out" "$err"
}

test_01_wrong_password_names_the_file_it_came_from() {
	local pw=$WORK/wrong-password conf
	printf 'not-the-password\n' >"$pw"
	chmod 0600 "$pw"
	conf=$(conf_with wrong.conf "database: { uri = \"$TL_DB_URI\"; password_file = \"$pw\"; };")
	agent_env -- -c "$conf" status
	assertEquals "exit code: $TL_ERR" 69 "$TL_RC"
	assertContains "libpq's reason" "$TL_ERR" "password authentication failed"
	assertContains "the hint names the file" "$TL_ERR" \
		"hint: the server refused the password of role $TL_APP_ROLE: it came from the first line of database.password_file ($pw)"
}

test_02_wrong_password_in_pgpass_names_pgpass() {
	local pgpass=$WORK/wrong-pgpass conf
	printf '127.0.0.1:%s:*:%s:not-the-password\n' "$TL_PGPORT" "$TL_APP_ROLE" >"$pgpass"
	chmod 0600 "$pgpass"
	conf=$(conf_with nopw.conf "database: { uri = \"$TL_DB_URI\"; };")
	agent_env PGPASSFILE="$pgpass" -- -c "$conf" migrate
	assertEquals "exit code: $TL_ERR" 69 "$TL_RC"
	assertContains "the hint names libpq's password file" "$TL_ERR" "the matching line of libpq's password file $pgpass"
}

test_03_no_password_lists_where_the_agent_looked() {
	local conf
	conf=$(conf_with nopw.conf "database: { uri = \"$TL_DB_URI\"; };")
	agent_env -- -c "$conf" status
	assertEquals "exit code: $TL_ERR" 69 "$TL_RC"
	assertContains "libpq's reason" "$TL_ERR" "no password supplied"
	assertContains "where it looked" "$TL_ERR" \
		"It looked at database.password_file (not set), PGPASSWORD (not set) and libpq's password file: $EMPTY_HOME/.pgpass does not exist"
	assertContains "the line to add" "$TL_ERR" "127.0.0.1:$TL_PGPORT:$TL_APP_DB:$TL_APP_ROLE:PASSWORD to $EMPTY_HOME/.pgpass"
	# A password file others can read is ignored by libpq: the hint says so.
	cp "$TL_PGPASSFILE" "$EMPTY_HOME/.pgpass"
	chmod 0644 "$EMPTY_HOME/.pgpass"
	agent_env -- -c "$conf" status
	rm -f "$EMPTY_HOME/.pgpass"
	assertEquals "exit code: $TL_ERR" 69 "$TL_RC"
	assertContains "why libpq ignored it" "$TL_ERR" \
		"$EMPTY_HOME/.pgpass can be read by others, so libpq ignores it: chmod 0600 $EMPTY_HOME/.pgpass"
}

test_04_refused_connection_names_host_and_port() {
	local port
	port=$(tl_free_port)
	agent_env CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$port/$TL_APP_DB" -- -c "$CONF" status
	assertEquals "exit code: $TL_ERR" 69 "$TL_RC"
	assertContains "the hint" "$TL_ERR" "hint: nothing accepts connections at 127.0.0.1 port $port"
	assertContains "and where the address came from" "$TL_ERR" "(from CHECKPOINT_DB_URI)"
}

test_05_missing_database_says_how_to_create_it() {
	agent_env CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/no_such_db" \
		PGPASSFILE="$TL_PGPASSFILE" -- -c "$CONF" status
	assertEquals "exit code: $TL_ERR" 69 "$TL_RC"
	assertContains "the hint" "$TL_ERR" "database no_such_db does not exist on this server: create it (createdb -O $TL_APP_ROLE no_such_db"
}

test_06_a_connection_string_libpq_refuses_is_a_config_error() {
	local uri conf
	for uri in "postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/$TL_APP_DB?no_such_parameter=1" \
		"host=127.0.0.1 port=$TL_PGPORT sslmode=sometimes" "postgresql://$TL_APP_ROLE@[::1/$TL_APP_DB" \
		"host=127.0.0.1 'port=5432"; do
		agent_env CHECKPOINT_DB_URI="$uri" -- -c "$CONF" status
		assertEquals "exit code for $uri: $TL_ERR" 78 "$TL_RC"
		assertContains "$uri: named as a configuration error" "$TL_ERR" \
			"the connection string from CHECKPOINT_DB_URI is not one libpq accepts"
	done
	conf=$(conf_with badparam.conf "database: { uri = \"$TL_DB_URI?frobnicate=yes\"; };")
	agent_env -- -c "$conf" check
	assertEquals "check: a config problem is UNKNOWN, not CRITICAL: $TL_OUT" 3 "$TL_RC"
	agent_env -- -c "$conf" migrate
	assertEquals "migrate: $TL_ERR" 78 "$TL_RC"
	assertContains "the file is named" "$TL_ERR" "the connection string from database.uri in $conf is not one libpq accepts"
	assertContains "and libpq's reason" "$TL_ERR" "frobnicate"
}

test_07_pg_environment_counts_when_no_uri_is_configured() {
	local conf
	conf=$(conf_with nouri.conf "database: { password_file = \"$TL_PASSWORD_FILE\"; };")
	agent_env PGHOST=127.0.0.1 PGPORT="$TL_PGPORT" PGUSER="$TL_APP_ROLE" PGDATABASE=fresh -- -c "$conf" migrate
	assertEquals "migrate into PGDATABASE: $TL_ERR" 0 "$TL_RC"
	assertEquals "the tables went into PGDATABASE" 10 \
		"$(tl_psql_super -d fresh -c 'SELECT count(*) FROM checkpoint_migrations')"
	# The parts not set keep the defaults (role ai_agent, database langgraph_checkpoints).
	agent_env PGHOST=127.0.0.1 PGPORT="$TL_PGPORT" -- -c "$conf" status --exit-code
	assertEquals "defaults for the rest: $TL_ERR" 0 "$TL_RC"
	# A configured uri wins over them, as it names every part.
	agent_env PGPORT=1 PGDATABASE=nowhere -- -c "$CONF" status
	assertEquals "database.uri wins: $TL_ERR" 0 "$TL_RC"
	# The messages say where the address came from.
	agent_env PGHOST=127.0.0.1 PGPORT="$(tl_free_port)" -- -c "$conf" status
	assertEquals "exit code: $TL_ERR" 69 "$TL_RC"
	assertContains "the origin" "$TL_ERR" "the built-in default (no database.uri, no CHECKPOINT_DB_URI; PGHOST, PGPORT"
}

test_08_every_line_of_a_multi_line_message_keeps_the_prefix() {
	local p1 p2 lines
	p1=$(tl_free_port)
	p2=$(tl_free_port)
	agent_env CHECKPOINT_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$p1,127.0.0.1:$p2/$TL_APP_DB" -- -c "$CONF" status
	assertEquals "exit code" 69 "$TL_RC"
	lines=$(printf '%s\n' "$TL_ERR" | wc -l)
	assertTrue "libpq's message spans lines ($lines): $TL_ERR" "[ $lines -ge 4 ]"
	assertEquals "lines without the prefix" "" "$(printf '%s\n' "$TL_ERR" | grep -v '^checkpoint-agent: ')"
	assertContains "both hosts are there" "$TL_ERR" "port $p2 failed"
}

test_10_status_shows_each_version_with_when_and_by_whom_aligned() {
	local rows offsets host
	host=$(hostname)
	tl_agent -c "$CONF" status
	assertEquals "exit code: $TL_ERR" 0 "$TL_RC"
	rows=$(printf '%s\n' "$TL_OUT" | sed -n '/^set langgraph /,/^$/p' | grep -E '^  [0-9]+ ')
	assertEquals "a row per version" 10 "$(printf '%s\n' "$rows" | wc -l)"
	assertEquals "rows without a time (UTC) and the agent and host that applied them" "" \
		"$(printf '%s\n' "$rows" | grep -Ev "^  [0-9]+ +[a-z_]+ +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}  checkpoint-agent [0-9.]+ on $host\$")"
	assertContains "v9's name" "$rows" "writes_task_path"
	offsets=$(printf '%s\n' "$rows" | awk '{ print index($0, " 20") }' | sort -u | wc -l)
	assertEquals "the time column starts at one offset on every row" 1 "$offsets"
}

test_11_status_says_none_and_pending_but_exits_0() {
	local conf
	conf=$(conf_with fresh.conf "database: { uri = \"postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/fresh\"; password_file = \"$TL_PASSWORD_FILE\"; };
migrations: { sets = [ \"langgraph\", \"langgraph-store\" ]; };")
	tl_agent -c "$conf" status
	assertEquals "plain status exits 0 with versions pending: $TL_ERR" 0 "$TL_RC"
	assertContains "none, not -1" "$TL_OUT" "version:  none of 3 (nothing applied yet)"
	assertNotContains "no -1 as a version" "$TL_OUT" "version:  -1"
	tl_agent -c "$conf" status --exit-code
	assertEquals "--exit-code: 1 while pending" 1 "$TL_RC"
	tl_agent -c "$conf" status --json
	assertEquals "JSON: null for none" "None 3 [0, 1, 2, 3]" "$(printf '%s' "$TL_OUT" | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin)["sets"] if x["name"] == "langgraph-store"][0]
print(s["version"], s["latest"], s["pending"])')"
}

test_12_drift_comes_with_a_hint_and_fields_in_json() {
	local id old summary
	id=$(tl_sql "SELECT max(id) FROM checkpoint_agent.ledger WHERE set_name = 'langgraph' AND version = 3 AND direction = 'up'")
	old=$(tl_sql "SELECT checksum FROM checkpoint_agent.ledger WHERE id = $id")
	tl_sql "UPDATE checkpoint_agent.ledger SET checksum = repeat('0', 64) WHERE id = $id" >/dev/null
	tl_agent -c "$CONF" status
	assertEquals "plain status: 0" 0 "$TL_RC"
	assertContains "the hint" "$TL_OUT" "hint: the SQL of langgraph v3 changed after checkpoint-agent"
	tl_agent -c "$CONF" status --exit-code
	assertEquals "--exit-code: 2 on drift" 2 "$TL_RC"
	tl_agent -c "$CONF" status --json --exit-code
	tl_sql "UPDATE checkpoint_agent.ledger SET checksum = '$old' WHERE id = $id" >/dev/null
	assertEquals "--json --exit-code: 2" 2 "$TL_RC"
	summary=$(printf '%s' "$TL_OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = [x for x in d["sets"] if x["name"] == "langgraph"][0]
dr = s["drift"][0]
v3 = [v for v in s["versions"] if v["version"] == 3][0]
print(d["drift"], dr["version"], dr["file"], dr["ledger_sha256"] == "0" * 64, len(dr["agent_sha256"]),
      dr["applied_by"].startswith("checkpoint-agent "), "verify" in dr["hint"], v3["drift"], v3["state"])')
	assertEquals "drift as fields" "True 3 0003_checkpoint_writes.up.sql True 64 True True True applied" "$summary"
}

tl_run
