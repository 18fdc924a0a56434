#!/bin/bash
# t1006-drift-verify.sh: `status` (drift, versions applied externally) and
# `verify` (the live catalog against the recorded version: a dropped or
# changed column, an INVALID or extra index), for the langgraph set and for
# the langgraph-store and agentos sets. An INVALID index of a recorded
# version is rebuilt by `migrate`, as verify's message says.
#
# Databases, all owned by the application role:
#   langgraph_checkpoints  migrated by the agent (langgraph set)
#   external_checkpoints   v0-4 set up by hand with psql, the way LangGraph's
#                          own setup() does it, before the agent sees it
#   all_sets               sets = ["langgraph", "langgraph-store", "agentos"]

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

DB_EXTERNAL=external_checkpoints
DB_ALL=all_sets

suite_setup() {
	local db
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	for db in "$DB_EXTERNAL" "$DB_ALL"; do
		tl_psql_super -d postgres -c "CREATE DATABASE $db OWNER $TL_APP_ROLE" >/dev/null || return 1
	done
	tl_agent_conf "$WORK/agent.conf"
	TL_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/$DB_EXTERNAL" tl_agent_conf "$WORK/external.conf"
	TL_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/$DB_ALL" \
		tl_agent_conf "$WORK/all.conf" 'sets = ["langgraph", "langgraph-store", "agentos"];'
	agent migrate
	[ "$TL_RC" = 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

suite_teardown() {
	tl_session_close
}

agent() {
	tl_agent -c "$WORK/agent.conf" "$@"
}

# last_up_row SET VERSION: the id of the ledger row status reads for it.
last_up_row() {
	tl_sql "SELECT max(id) FROM checkpoint_agent.ledger WHERE set_name = '$1' AND version = $2 AND direction = 'up'"
}

test_01_status_exits_0_when_nothing_is_pending_and_no_drift() {
	agent status
	assertEquals "status on a fresh v9: $TL_OUT $TL_ERR" 0 "$TL_RC"
	assertContains "no drift" "$TL_OUT" "drift:    none"
}

test_02_changed_ledger_checksum_is_drift_exit_2() {
	local id old
	id=$(last_up_row langgraph 3)
	old=$(tl_sql "SELECT checksum FROM checkpoint_agent.ledger WHERE id = $id")
	tl_sql "UPDATE checkpoint_agent.ledger SET checksum = repeat('0', 64) WHERE id = $id" >/dev/null
	agent status --json --exit-code
	JSON_RC=$TL_RC JSON_OUT=$TL_OUT
	agent status --exit-code
	tl_sql "UPDATE checkpoint_agent.ledger SET checksum = '$old' WHERE id = $id" >/dev/null
	assertEquals "status exits 2 on drift: $TL_OUT" 2 "$TL_RC"
	assertContains "it names the version and both checksums" "$TL_OUT" \
		"drift:    v3: the ledger has sha256 $(printf '0%.0s' $(seq 64)), this agent's SQL has $old"
	assertEquals "status --json exits 2 as well" 2 "$JSON_RC"
	assertContains "status --json says drift" "$JSON_OUT" '"drift":true}'
	agent status --exit-code
	assertEquals "status is 0 again once the checksum is back" 0 "$TL_RC"
}

test_03_drift_wins_over_pending() {
	local id old
	agent rollback --to 8
	id=$(last_up_row langgraph 2)
	old=$(tl_sql "SELECT checksum FROM checkpoint_agent.ledger WHERE id = $id")
	tl_sql "UPDATE checkpoint_agent.ledger SET checksum = 'changed' WHERE id = $id" >/dev/null
	agent status --exit-code
	tl_sql "UPDATE checkpoint_agent.ledger SET checksum = '$old' WHERE id = $id" >/dev/null
	assertEquals "drift (2) is reported even with v9 pending: $TL_OUT" 2 "$TL_RC"
	agent migrate
	assertEquals "back to v9: $TL_ERR" 0 "$TL_RC"
}

# apply_by_hand DB VERSIONS...: the up files run with psql as the application
# role, and their rows written, without the agent: LangGraph's own setup().
apply_by_hand() {
	local db=$1 v file
	shift
	for v in "$@"; do
		file=$(ls "$TL_ROOT/sql/langgraph/$(printf '%04d' "$v")"_*.up.sql)
		tl_psql_app -d "$db" -f "$file" >/dev/null || return 1
		tl_psql_app -d "$db" -c "INSERT INTO checkpoint_migrations (v) VALUES ($v)" >/dev/null || return 1
	done
}

test_10_versions_applied_by_setup_show_as_applied_externally() {
	apply_by_hand "$DB_EXTERNAL" 0 1 2 3 4
	assertEquals "v0-4 set up by hand" 0 $?
	tl_agent -c "$WORK/external.conf" status --exit-code
	assertEquals "status: pending (1), not drift: $TL_OUT $TL_ERR" 1 "$TL_RC"
	assertContains "v0-4 are applied externally" "$TL_OUT" \
		"applied externally (by the application's setup(), not by this agent): 0 1 2 3 4"
	assertContains "v5-9 are pending" "$TL_OUT" "pending:  5 6 7 8 9"
}

test_11_agent_completes_an_externally_set_up_schema() {
	tl_agent -c "$WORK/external.conf" migrate
	assertEquals "migrate exits 0: $TL_ERR" 0 "$TL_RC"
	assertNotContains "it does not apply v0-4 again" "$TL_ERR" "applying langgraph v4"
	tl_agent -c "$WORK/external.conf" status --exit-code
	assertEquals "status: nothing pending, no drift (0): $TL_OUT" 0 "$TL_RC"
	assertContains "v0-4 still show as applied externally" "$TL_OUT" "applied externally"
	tl_agent -c "$WORK/external.conf" verify
	assertEquals "verify is clean: $TL_OUT $TL_ERR" 0 "$TL_RC"
}

test_20_verify_exits_0_on_a_clean_v9() {
	agent verify
	assertEquals "verify: $TL_OUT $TL_ERR" 0 "$TL_RC"
	assertContains "it says so" "$TL_OUT" "the schema matches the recorded version"
}

test_21_verify_spots_a_dropped_column() {
	tl_sql "ALTER TABLE public.checkpoint_writes DROP COLUMN task_path" >/dev/null
	agent verify
	tl_sql "ALTER TABLE public.checkpoint_writes ADD COLUMN task_path TEXT NOT NULL DEFAULT ''" >/dev/null
	assertEquals "verify exits 65" 65 "$TL_RC"
	assertContains "it names the column, its table and its expected type" "$TL_OUT" \
		"column task_path of public.checkpoint_writes is missing (expected: text NOT NULL DEFAULT ''::text)"
	assertContains "stderr sums it up" "$TL_ERR" "the schema differs from its recorded version in 1 place"
}

test_22_verify_spots_a_changed_column() {
	tl_sql "ALTER TABLE public.checkpoints ALTER COLUMN metadata DROP NOT NULL" >/dev/null
	agent verify
	tl_sql "ALTER TABLE public.checkpoints ALTER COLUMN metadata SET NOT NULL" >/dev/null
	assertEquals "verify exits 65" 65 "$TL_RC"
	assertContains "it names the column and the difference" "$TL_OUT" \
		"column metadata of public.checkpoints differs: expected \"jsonb NOT NULL DEFAULT '{}'::jsonb\", found \"jsonb NULL DEFAULT '{}'::jsonb\""
}

# make_invalid_index: v6's index, dropped and built again concurrently by
# hand, while the application holds a transaction open on the table; the
# build gives up (lock_timeout) and leaves the index INVALID.
make_invalid_index() {
	tl_sql "DROP INDEX public.checkpoints_thread_id_idx" >/dev/null
	tl_session_open t1006-blocker
	tl_session_sql "BEGIN; INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint) VALUES ('t', 'c', '{}');"
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE application_name = 't1006-blocker' AND state = 'idle in transaction')" ||
		fail "the blocking transaction did not open"
	tl_psql_super -c "SET lock_timeout = '1s'" \
		-c "CREATE INDEX CONCURRENTLY checkpoints_thread_id_idx ON public.checkpoints (thread_id)" \
		>/dev/null 2>&1
	tl_session_close
}

test_23_verify_spots_an_invalid_index() {
	make_invalid_index
	assertEquals "the index is there and INVALID" f "$(index_validity)"
	agent verify
	assertEquals "verify exits 65: $TL_OUT" 65 "$TL_RC"
	assertContains "it names the INVALID index" "$TL_OUT" \
		"index checkpoints_thread_id_idx of public.checkpoints is INVALID"
	assertContains "it says what to do" "$TL_OUT" "run checkpoint-agent migrate to rebuild it"
}

index_validity() {
	tl_sql "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.checkpoints_thread_id_idx'::regclass"
}

test_24_migrate_dry_run_plans_the_rebuild_and_changes_nothing() {
	agent migrate --dry-run
	assertEquals "dry run exits 0: $TL_ERR" 0 "$TL_RC"
	assertContains "the plan names the version" "$TL_OUT" "langgraph v6 is recorded, but its index is INVALID"
	assertContains "the plan rebuilds it with v6's statement" "$TL_OUT" \
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_thread_id_idx ON checkpoints(thread_id)"
	assertEquals "the index is still INVALID" f "$(index_validity)"
}

test_25_migrate_rebuilds_an_invalid_index_of_a_recorded_version() {
	agent migrate
	assertEquals "migrate exits 0: $TL_ERR" 0 "$TL_RC"
	assertContains "it says what it rebuilds" "$TL_ERR" "langgraph v6 is recorded, but its index public.checkpoints_thread_id_idx is INVALID"
	assertEquals "the index is valid" t "$(index_validity)"
	agent verify
	assertEquals "verify is clean again: $TL_OUT" 0 "$TL_RC"
	agent migrate
	assertNotContains "a second migrate has nothing to rebuild" "$TL_ERR" "INVALID"
}

test_26_verify_spots_an_extra_index() {
	tl_sql "CREATE INDEX extra_idx ON public.checkpoint_blobs (channel)" >/dev/null
	agent verify
	tl_sql "DROP INDEX public.extra_idx" >/dev/null
	assertEquals "verify exits 65: $TL_OUT" 65 "$TL_RC"
	assertContains "it names the index that is not part of the schema" "$TL_OUT" \
		"index extra_idx of public.checkpoint_blobs is not part of the schema"
}

test_30_all_sets_migrate() {
	tl_agent -c "$WORK/all.conf" migrate
	assertEquals "migrate of three sets exits 0: $TL_ERR" 0 "$TL_RC"
	assertEquals "store_migrations: 0..3" "0,1,2,3" \
		"$(tl_psql_super -d "$DB_ALL" -c "SELECT string_agg(v::text, ',' ORDER BY v) FROM public.store_migrations")"
	assertEquals "agentos_migrations: 0..1, in schema agentos" "0,1" \
		"$(tl_psql_super -d "$DB_ALL" -c "SELECT string_agg(v::text, ',' ORDER BY v) FROM agentos.agentos_migrations")"
	assertEquals "checkpoint_migrations: 0..9" "0,1,2,3,4,5,6,7,8,9" \
		"$(tl_psql_super -d "$DB_ALL" -c "SELECT string_agg(v::text, ',' ORDER BY v) FROM public.checkpoint_migrations")"
	assertEquals "the tables of each set" "agentos.checkpoints public.checkpoints public.store" \
		"$(tl_psql_super -d "$DB_ALL" -c "SELECT string_agg(schemaname || '.' || tablename, ' ' ORDER BY schemaname, tablename)
			FROM pg_tables WHERE tablename IN ('store', 'checkpoints')")"
}

test_31_all_sets_verify_clean() {
	tl_agent -c "$WORK/all.conf" verify
	assertEquals "verify of three sets: $TL_OUT $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$WORK/all.conf" status --exit-code
	assertEquals "status of three sets: $TL_OUT $TL_ERR" 0 "$TL_RC"
	assertContains "status shows the store set" "$TL_OUT" "set langgraph-store (schema public, versions in store_migrations)"
	assertContains "status shows the agentos set" "$TL_OUT" "set agentos (schema agentos, versions in agentos_migrations)"
}

test_32_verify_spots_a_difference_in_the_store_set() {
	tl_psql_super -d "$DB_ALL" -c "ALTER TABLE public.store DROP COLUMN ttl_minutes" >/dev/null
	tl_agent -c "$WORK/all.conf" verify
	tl_psql_super -d "$DB_ALL" -c "ALTER TABLE public.store ADD COLUMN ttl_minutes INT" >/dev/null
	assertEquals "verify exits 65" 65 "$TL_RC"
	assertContains "it names the set and the column" "$TL_OUT" \
		"langgraph-store v3: column ttl_minutes of public.store is missing"
}

test_33_store_and_agentos_roll_back_and_forward() {
	tl_agent -c "$WORK/all.conf" rollback --set langgraph-store --to -1
	assertEquals "rollback of langgraph-store: $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$WORK/all.conf" rollback --set agentos --to -1
	assertEquals "rollback of agentos: $TL_ERR" 0 "$TL_RC"
	assertEquals "store, store_migrations, agentos.checkpoints and agentos_migrations are gone; langgraph stays" \
		"public.checkpoints" \
		"$(tl_psql_super -d "$DB_ALL" -c "SELECT string_agg(schemaname || '.' || tablename, ' ' ORDER BY schemaname, tablename)
			FROM pg_tables WHERE tablename IN ('store', 'store_migrations', 'checkpoints', 'agentos_migrations')")"
	tl_agent -c "$WORK/all.conf" status --exit-code
	assertEquals "status: pending (1): $TL_OUT" 1 "$TL_RC"
	tl_agent -c "$WORK/all.conf" migrate
	assertEquals "migrate brings them back: $TL_ERR" 0 "$TL_RC"
	tl_agent -c "$WORK/all.conf" verify
	assertEquals "verify is clean: $TL_OUT $TL_ERR" 0 "$TL_RC"
}

tl_run
