#!/bin/bash
# t3011-owner-role-tls: the agent's own role and TLS, on a throwaway cluster
# laid out the way the provisioning lays it out (provision/lib/roles.sh run
# on it, after the older layout's grant), with TLS on (a certificate from
# provision/tls-selfsigned.sh):
#   - the upgrade revokes pg_read_all_stats from the application's role; a
#     second run changes nothing;
#   - the agent's role sees every session but holds none of the owner's
#     rights until it says SET ROLE; the application's role sees no other
#     session's SQL;
#   - migrate, status, verify and rollback as the agent's role with
#     database.owner_role: the tables belong to the application's role;
#   - the write probe runs as the application's role (it fails when that
#     role loses INSERT, although the agent's role could not write anyway);
#   - an owner role the login role cannot become: exit 78, check UNKNOWN;
#   - check reports TLS (text, JSON, Prometheus), and its absence;
#   - prune, usage and run's TTL sweeps as the agent's role delete as the
#     owner (and without owner_role, the agent's role may delete nothing).

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=provision/lib/common.sh
. "$TL_ROOT/provision/lib/common.sh"
# shellcheck source=provision/lib/roles.sh
. "$TL_ROOT/provision/lib/roles.sh"

AGENT_ROLE=checkpoint_monitor

suite_setup() {
	tl_pg_start || return 1
	export PGHOST=$TL_PGSOCK
	CPA_PG_PORT=$TL_PGPORT
	CPA_PG_BIN=$TL_PGBIN
	CPA_DRY_RUN=0
	WORK=$(tl_tmpdir) || return 1
	# The older layout: the application's role read every session's activity.
	tl_sql "GRANT pg_read_all_stats TO $TL_APP_ROLE" >/dev/null || return 1
	{
		cpa_ensure_owner_role_only_owns "$TL_APP_ROLE"
		cpa_ensure_agent_role "$TL_APP_ROLE" "$AGENT_ROLE"
	} >"$WORK/roles-first.log" 2>&1 || { cat "$WORK/roles-first.log" >&2; return 1; }
	AGENT_PASSWORD_FILE=$WORK/agent-password
	head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$AGENT_PASSWORD_FILE"
	chmod 0644 "$AGENT_PASSWORD_FILE"
	tl_psql_super -d postgres >/dev/null <<-EOF || return 1
		\\set pw \`cat $AGENT_PASSWORD_FILE\`
		SET password_encryption = 'scram-sha-256';
		ALTER ROLE $AGENT_ROLE PASSWORD :'pw';
	EOF
	chmod 0600 "$AGENT_PASSWORD_FILE"
	AGENT_PGPASS=$WORK/agent-pgpass
	printf '127.0.0.1:%s:*:%s:%s\n' "$TL_PGPORT" "$AGENT_ROLE" "$(cat "$AGENT_PASSWORD_FILE")" >"$AGENT_PGPASS"
	chmod 0600 "$AGENT_PGPASS"
	start_tls || return 1
	CONF=$WORK/agent.conf
	write_conf "$TL_APP_ROLE"
}

# start_tls: a self-signed certificate, ssl = on, TLSv1.2 at least.
start_tls() {
	local tls=$TL_PGDIR/tls
	mkdir -p "$tls" && chown postgres: "$tls" && chmod 0750 "$tls" || return 1
	"$TL_ROOT/provision/tls-selfsigned.sh" "$tls/server.crt" "$tls/server.key" localhost || return 1
	chown postgres: "$tls/server.crt" "$tls/server.key" || return 1
	tl_psql_super -d postgres >/dev/null <<-EOF || return 1
		ALTER SYSTEM SET ssl = on;
		ALTER SYSTEM SET ssl_cert_file = '$tls/server.crt';
		ALTER SYSTEM SET ssl_key_file = '$tls/server.key';
		ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.2';
		SELECT pg_reload_conf();
	EOF
	sleep 0.5
}

# write_conf OWNER [URI] [RETENTION]: the agent's config: its own role, acting
# as OWNER; RETENTION is the text of its retention group.
write_conf() {
	cat >"$CONF" <<-EOF
		database: {
		  uri = "${2:-postgresql://$AGENT_ROLE@127.0.0.1:$TL_PGPORT/$TL_APP_DB}";
		  password_file = "$AGENT_PASSWORD_FILE";
		  owner_role = "$1";
		};
		service: { state_file = "$WORK/state"; };
		retention: { ${3:-} };
	EOF
}

# agent_psql [psql args]: psql as the agent's role over TCP.
agent_psql() {
	PGPASSFILE=$AGENT_PGPASS "$TL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
		-h 127.0.0.1 -p "$TL_PGPORT" -U "$AGENT_ROLE" -d "$TL_APP_DB" "$@" 2>&1
}

status_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name { print $1 }'
}

line_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name'
}

test_01_the_upgrade_revokes_the_application_roles_monitoring_and_a_rerun_changes_nothing() {
	local again
	assertContains "$(cat "$WORK/roles-first.log")" \
		"changed:  role $TL_APP_ROLE is not a member of pg_read_all_stats"
	assertEquals "the application's role reads no other session" f \
		"$(tl_sql "SELECT pg_has_role('$TL_APP_ROLE', 'pg_read_all_stats', 'MEMBER')")"
	again=$({
		cpa_ensure_owner_role_only_owns "$TL_APP_ROLE"
		cpa_ensure_agent_role "$TL_APP_ROLE" "$AGENT_ROLE"
	} 2>&1)
	assertNotContains "a second run changes nothing: $again" "$again" "changed:"
	assertContains "$again" "ok:       role $AGENT_ROLE is a member of pg_monitor"
}

test_02_the_agents_role_sees_every_session_but_writes_only_after_set_role() {
	local out
	tl_psql_app -c "CREATE TABLE IF NOT EXISTS owned_by_app (x int)" >/dev/null
	tl_session_open t3011-other tl_psql_super
	tl_session_sql "SELECT 't3011 marker' AS m, pg_sleep(3);"
	tl_wait_for 5 "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%t3011 marker%' AND usename = 'postgres'"
	out=$(agent_psql -c "SELECT query FROM pg_stat_activity WHERE usename = 'postgres' AND query LIKE '%t3011 marker%' AND pid <> pg_backend_pid()")
	assertContains "the agent's role reads another role's SQL (pg_monitor)" "$out" "t3011 marker"
	out=$(tl_psql_app -c "SELECT query FROM pg_stat_activity WHERE usename = 'postgres' AND application_name = 't3011-other'")
	assertEquals "the application's role does not" "<insufficient privilege>" "$out"
	tl_session_close
	out=$(agent_psql -c "INSERT INTO owned_by_app VALUES (1)")
	assertContains "without SET ROLE it holds none of the owner's rights" "$out" "permission denied"
	out=$(agent_psql -c "SET ROLE $TL_APP_ROLE; INSERT INTO owned_by_app VALUES (1); SELECT current_user")
	assertEquals "after SET ROLE it writes as the owner" "$TL_APP_ROLE" "$out"
}

test_03_migrate_status_verify_as_the_agents_role_leave_the_schema_to_the_owner() {
	tl_agent -c "$CONF" migrate
	assertEquals "migrate: $TL_ERR" 0 "$TL_RC"
	assertEquals "every table of the sets belongs to the application's role" "" \
		"$(tl_sql "SELECT schemaname || '.' || tablename || ' ' || tableowner FROM pg_tables
			WHERE schemaname IN ('public', 'checkpoint_agent') AND tableowner <> '$TL_APP_ROLE'")"
	assertEquals "the schema is there" 9 "$(tl_sql 'SELECT max(v) FROM public.checkpoint_migrations')"
	assertEquals "the ledger was written by the owner" "$TL_APP_ROLE" \
		"$(tl_sql "SELECT tableowner FROM pg_tables WHERE schemaname = 'checkpoint_agent' AND tablename = 'ledger'")"
	tl_agent -c "$CONF" status
	assertEquals "status: $TL_OUT $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$CONF" verify
	assertEquals "verify: $TL_OUT $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$CONF" rollback --to 8
	assertEquals "rollback: $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$CONF" migrate
	assertEquals "migrate again: $TL_ERR" 0 "$TL_RC"
	assertEquals "the application's role still uses its tables" 1 \
		"$(tl_psql_app -c "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint) VALUES ('t', 'c', '{}') RETURNING 1")"
}

test_04_check_probes_as_the_application_role_and_sees_every_session() {
	tl_agent -c "$CONF" migrate
	tl_session_open t3011-idle tl_psql_super
	tl_session_sql "BEGIN; SELECT 1;"
	tl_wait_for 5 "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 't3011-idle' AND state = 'idle in transaction'"
	sleep 1.2
	tl_agent -c "$CONF" check
	tl_session_close
	assertEquals "writable: $TL_OUT" OK "$(status_of writable)"
	assertContains "the probe runs as the application's role" "$(line_of writable)" "as $TL_APP_ROLE, probe INSERTs"
	assertContains "connected as the agent's own role" "$(line_of connect)" "connected as $AGENT_ROLE@"
	assertNotContains "it sees the superuser's idle transaction: $(line_of idle_in_transaction)" \
		"$(line_of idle_in_transaction)" "could not see"
	assertEquals "schema, as the owner: $TL_OUT" OK "$(status_of schema)"
	# The application's role loses INSERT on a checkpoint table: the probe,
	# made as that role, must fail, whatever the agent's own role may do.
	tl_psql_app -c "REVOKE INSERT ON public.checkpoint_writes FROM $TL_APP_ROLE" >/dev/null
	tl_agent -c "$CONF" check
	tl_psql_app -c "GRANT INSERT ON public.checkpoint_writes TO $TL_APP_ROLE" >/dev/null
	assertEquals "writable without INSERT: $TL_OUT" CRITICAL "$(status_of writable)"
	assertContains "$(line_of writable)" "as $TL_APP_ROLE, a probe INSERT into public.checkpoint_writes fails"
	assertEquals "the later checks run as the agent's role again" 0 \
		"$(agent_psql -c "SELECT count(*) FROM pg_stat_activity WHERE usename = '$AGENT_ROLE' AND backend_type = 'client backend' AND pid <> pg_backend_pid()")"
}

test_05_an_owner_role_the_login_role_cannot_become_is_a_config_error() {
	write_conf postgres
	tl_agent -c "$CONF" migrate
	assertEquals "migrate: $TL_ERR" 78 "$TL_RC"
	assertContains "$TL_ERR" "cannot act as the owner role postgres (database.owner_role)"
	tl_agent -c "$CONF" check
	assertEquals "writable: $TL_OUT" UNKNOWN "$(status_of writable)"
	assertContains "$(line_of writable)" "not run: as $AGENT_ROLE, cannot act as the owner role postgres"
	assertEquals "the other checks still run: $TL_OUT" OK "$(status_of pool_headroom)"
	write_conf "$TL_APP_ROLE"
}

test_06_check_reports_whether_its_connection_uses_tls() {
	local json prom
	tl_agent -c "$CONF" check
	assertContains "text: $(line_of connect)" "$(line_of connect)" ", over TLSv1."
	tl_agent -c "$CONF" check --format json
	json=$TL_OUT
	assertEquals "json" 1 "$(python3 -c 'import json, sys; d = json.load(sys.stdin)
print(int([m["value"] for c in d["checks"] for m in c["metrics"] if m["name"] == "connect_tls"][0]))' <<<"$json")"
	tl_agent -c "$CONF" check --format prometheus
	prom=$TL_OUT
	assertContains "prometheus" "$prom" "checkpoint_agent_connect_tls 1"
	assertContains "$prom" "# TYPE checkpoint_agent_connect_tls gauge"
	write_conf "$TL_APP_ROLE" "postgresql://$AGENT_ROLE@127.0.0.1:$TL_PGPORT/$TL_APP_DB?sslmode=disable"
	tl_agent -c "$CONF" check --format prometheus
	assertContains "sslmode=disable" "$TL_OUT" "checkpoint_agent_connect_tls 0"
	tl_agent -c "$CONF" check
	assertContains "$(line_of connect)" ", without TLS"
	write_conf "$TL_APP_ROLE"
}

old_threads() {
	tl_sql "SELECT count(DISTINCT thread_id) FROM public.checkpoints WHERE thread_id LIKE '$1%'"
}

test_07_prune_usage_and_sweeps_as_the_agents_role_delete_as_the_owner() {
	local agent_pid deadline
	tl_agent -c "$CONF" migrate
	tl_sql "TRUNCATE public.checkpoints, public.checkpoint_blobs, public.checkpoint_writes" >/dev/null
	tl_gen_threads old- 40 2 $((40 * 86400)) || fail "gen"
	tl_gen_threads new- 5 2 600 || fail "gen"
	# Without owner_role the agent's role is the login role, which may delete nothing.
	write_conf ""
	tl_agent -c "$CONF" prune --older-than 30d
	assertNotEquals "prune without owner_role: $TL_OUT" 0 "$TL_RC"
	assertContains "$TL_ERR" "permission denied"
	assertEquals "nothing was deleted" 40 "$(old_threads old-)"
	write_conf "$TL_APP_ROLE"
	tl_agent -c "$CONF" prune --older-than 30d
	assertEquals "prune as the owner: $TL_ERR" 0 "$TL_RC"
	assertEquals "the old threads are gone" 0 "$(old_threads old-)"
	assertEquals "the young ones stay" 5 "$(old_threads new-)"
	tl_agent -c "$CONF" usage
	assertEquals "usage: $TL_ERR" 0 "$TL_RC"
	assertContains "$TL_OUT" "public.checkpoints"
	# run's TTL sweep, as the agent's role acting as the owner.
	tl_gen_threads sweep- 30 2 $((40 * 86400)) || fail "gen"
	write_conf "$TL_APP_ROLE" "" 'ttl = "30d"; sweep_interval = "1h";'
	"$TL_AGENT" -c "$CONF" run --interval-ms 500 >"$WORK/run.log" 2>&1 &
	agent_pid=$!
	deadline=$((SECONDS + 30))
	while [ "$SECONDS" -lt "$deadline" ] && [ "$(old_threads sweep-)" != 0 ]; do sleep 0.3; done
	kill -TERM "$agent_pid" 2>/dev/null
	wait "$agent_pid" 2>/dev/null
	assertEquals "the sweep pruned them: $(tail -n 5 "$WORK/run.log")" 0 "$(old_threads sweep-)"
	assertTrue "the sweep's journal line: $(cat "$WORK/run.log")" \
		"grep -q 'retention sweep (delete, ttl 30d): 30 threads pruned' '$WORK/run.log'"
	assertEquals "the young ones stay" 5 "$(old_threads new-)"
	write_conf "$TL_APP_ROLE"
}

tl_run
