#!/bin/bash
# t1001: migrate applies the configured sets, once, in their schema.
# shellcheck source=lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start
}

setUp() {
	conf=$(tl_tmpdir)/agent.conf
	tl_agent_conf "$conf"
	tl_psql_super -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public AUTHORIZATION pg_database_owner;
		DROP SCHEMA IF EXISTS checkpoint_agent CASCADE; DROP SCHEMA IF EXISTS lg CASCADE;
		DROP SCHEMA IF EXISTS agentos CASCADE;"
}

test_01_fresh_database_reaches_v9() {
	tl_agent -c "$conf" migrate
	assertEquals "migrate exit code; stderr: $TL_ERR" 0 "$TL_RC"
	assertEquals "version rows" "0 1 2 3 4 5 6 7 8 9" \
		"$(tl_sql 'SELECT string_agg(v::text, $$ $$ ORDER BY v) FROM checkpoint_migrations')"
	assertEquals "tables" "checkpoint_blobs checkpoint_migrations checkpoint_writes checkpoints" \
		"$(tl_sql "SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")"
}

test_02_second_run_applies_nothing() {
	tl_agent -c "$conf" migrate
	local before
	before=$(tl_sql "SELECT count(*) FROM checkpoint_agent.ledger")
	tl_agent -c "$conf" migrate
	assertEquals "exit code; stderr: $TL_ERR" 0 "$TL_RC"
	assertContains "$TL_ERR" "langgraph is at version 9: nothing to apply"
	assertEquals "ledger rows unchanged" "$before" "$(tl_sql "SELECT count(*) FROM checkpoint_agent.ledger")"
}

test_03_dry_run_prints_the_plan_and_changes_nothing() {
	tl_agent -c "$conf" migrate --dry-run
	assertEquals "exit code; stderr: $TL_ERR" 0 "$TL_RC"
	assertContains "plan names v9" "$TL_OUT" "langgraph v9 writes_task_path"
	assertContains "plan shows the SQL" "$TL_OUT" "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_thread_id_idx"
	assertContains "plan says which steps run outside a transaction" "$TL_OUT" "outside a transaction"
	assertEquals "no table was created" 0 \
		"$(tl_sql "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'checkpoint_agent')")"
	assertEquals "no schema was created" 0 \
		"$(tl_sql "SELECT count(*) FROM pg_namespace WHERE nspname = 'checkpoint_agent'")"
}

test_04_to_stops_at_the_version_and_status_shows_pending() {
	tl_agent -c "$conf" migrate --to 4
	assertEquals "exit code; stderr: $TL_ERR" 0 "$TL_RC"
	assertEquals "highest version" 4 "$(tl_sql 'SELECT max(v) FROM checkpoint_migrations')"
	tl_agent -c "$conf" status --exit-code
	assertEquals "status --exit-code exits 1 while versions are pending" 1 "$TL_RC"
	assertContains "$TL_OUT" "pending:  5 6 7 8 9"
	tl_agent -c "$conf" migrate
	tl_agent -c "$conf" status --exit-code
	assertEquals "status --exit-code exits 0 once nothing is pending; out: $TL_OUT" 0 "$TL_RC"
}

test_05_custom_schema_holds_the_tables() {
	tl_agent_conf "$conf" 'schema = "lg";'
	tl_agent -c "$conf" migrate
	assertEquals "exit code; stderr: $TL_ERR" 0 "$TL_RC"
	assertEquals "tables in lg" 4 "$(tl_sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'lg'")"
	assertEquals "nothing in public" 0 "$(tl_sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")"
	assertEquals "versions in lg" 10 "$(tl_sql 'SELECT count(*) FROM lg.checkpoint_migrations')"
}

test_06_every_set_migrates() {
	tl_agent_conf "$conf" 'sets = [ "langgraph", "langgraph-store", "agentos" ];'
	tl_agent -c "$conf" migrate
	assertEquals "exit code; stderr: $TL_ERR" 0 "$TL_RC"
	assertEquals "store versions" "0 1 2 3" \
		"$(tl_sql 'SELECT string_agg(v::text, $$ $$ ORDER BY v) FROM store_migrations')"
	assertEquals "store has its TTL columns" 2 \
		"$(tl_sql "SELECT count(*) FROM information_schema.columns WHERE table_name = 'store' AND column_name IN ('expires_at', 'ttl_minutes')")"
	assertEquals "agentos table in its own schema" 12 \
		"$(tl_sql "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'agentos' AND table_name = 'checkpoints'")"
	assertEquals "agentos indexes" 6 \
		"$(tl_sql "SELECT count(*) FROM pg_indexes WHERE schemaname = 'agentos' AND tablename = 'checkpoints'")"
	tl_agent -c "$conf" verify
	assertEquals "verify is clean; out: $TL_OUT" 0 "$TL_RC"
}

test_07_only_one_set_with_set_option() {
	tl_agent_conf "$conf" 'sets = [ "langgraph", "agentos" ];'
	tl_agent -c "$conf" migrate --set agentos
	assertEquals "exit code; stderr: $TL_ERR" 0 "$TL_RC"
	assertEquals "agentos applied" 2 "$(tl_sql 'SELECT count(*) FROM agentos.agentos_migrations')"
	assertEquals "langgraph untouched" "" "$(tl_sql "SELECT to_regclass('public.checkpoint_migrations')")"
}

test_08_ledger_records_checksum_host_and_version() {
	tl_agent -c "$conf" migrate
	local want got
	want=$(sha256sum "$TL_ROOT/sql/langgraph/0009_writes_task_path.up.sql" | cut -d' ' -f1)
	got=$(tl_sql "SELECT checksum FROM checkpoint_agent.ledger WHERE set_name = 'langgraph' AND version = 9")
	assertEquals "checksum is the file's sha256" "$want" "$got"
	assertEquals "host" "$(hostname)" \
		"$(tl_sql "SELECT DISTINCT host FROM checkpoint_agent.ledger")"
	assertEquals "agent version" "$("$TL_AGENT" --version | awk '{print $2}')" \
		"$(tl_sql "SELECT DISTINCT agent_version FROM checkpoint_agent.ledger")"
	assertEquals "finish is not before start" 0 \
		"$(tl_sql "SELECT count(*) FROM checkpoint_agent.ledger WHERE finished_at < started_at")"
}

test_09_tables_belong_to_the_application_role() {
	tl_agent -c "$conf" migrate
	assertEquals "owner of every checkpoint table" "$TL_APP_ROLE" \
		"$(tl_sql "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'")"
}

tl_run
