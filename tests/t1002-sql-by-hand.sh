#!/bin/bash
# t1002: the files in sql/ applied by hand with psql give the same schema as
# the agent, and the agent's verify accepts it.
# shellcheck source=lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start
	tl_psql_super -d postgres -c "CREATE DATABASE by_hand OWNER $TL_APP_ROLE"
}

# The schema of DB's public schema, as pg_dump prints it.
schema_dump() {
	runuser -u postgres -- "$TL_PGBIN/pg_dump" -h "$TL_PGSOCK" -p "$TL_PGPORT" --schema-only \
		--schema=public --no-owner "$1" | grep -v -e '^--' -e '^$' -e '^\\restrict' -e '^\\unrestrict'
}

apply_by_hand() {
	local f v
	for f in "$TL_ROOT"/sql/langgraph/*.up.sql; do
		v=$(basename "$f" | sed 's/_.*//; s/^0*\([0-9]\)/\1/')
		tl_psql_app -d by_hand -f "$f" >/dev/null || return 1
		tl_psql_app -d by_hand -c "INSERT INTO checkpoint_migrations (v) VALUES ($v)" || return 1
	done
}

test_01_psql_and_agent_build_the_same_schema() {
	local conf
	conf=$(tl_tmpdir)/agent.conf
	tl_agent_conf "$conf"
	tl_agent -c "$conf" migrate
	assertEquals "agent migrate; stderr: $TL_ERR" 0 "$TL_RC"
	apply_by_hand
	assertEquals "psql applied every file" 0 $?
	assertEquals "pg_dump of both" "$(schema_dump "$TL_APP_DB")" "$(schema_dump by_hand)"
}

test_02_verify_accepts_the_hand_applied_schema() {
	local conf
	conf=$(tl_tmpdir)/agent.conf
	TL_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/by_hand" tl_agent_conf "$conf"
	tl_agent -c "$conf" verify
	assertEquals "verify; out: $TL_OUT err: $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$conf" status
	assertContains "versions applied by hand show as applied externally" "$TL_OUT" \
		"applied externally (by the application's setup(), not by this agent): 0 1 2 3 4 5 6 7 8 9"
}

tl_run
