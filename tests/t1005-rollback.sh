#!/bin/bash
# t1005-rollback.sh: `rollback`.
#
# - rollback --to -1 removes the langgraph set; migrate brings it back to v9.
# - A table that holds rows is not dropped but moved into a quarantine schema
#   checkpoint_quarantine_<time>, rows intact; `status` lists it; the README's
#   procedure ("Restoring a quarantined table") puts it back; what later
#   versions had added to the table (v6's index) `verify` then lists, with
#   the statement that makes it.
# - --purge drops such a table instead.
# - Rolling back v4 (blob NOT NULL again) while a NULL blob exists is refused
#   (exit 70) with the reason, and nothing changes, even when later versions
#   come first: the rollback is rehearsed before it starts.
# - --dry-run prints the plan and changes nothing.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

V0_TO_9=0,1,2,3,4,5,6,7,8,9

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	tl_agent_conf "$WORK/agent.conf"
	agent migrate
	[ "$TL_RC" = 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

agent() {
	tl_agent -c "$WORK/agent.conf" "$@"
}

versions() {
	tl_sql "SELECT coalesce(string_agg(v::text, ',' ORDER BY v), '') FROM public.checkpoint_migrations"
}

# langgraph_tables: the set's tables in public, space-separated.
langgraph_tables() {
	tl_sql "SELECT coalesce(string_agg(relname, ' ' ORDER BY relname), '') FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
		AND relname IN ('checkpoint_migrations', 'checkpoints', 'checkpoint_blobs', 'checkpoint_writes')"
}

# quarantined: "schema.table" of every table in a quarantine schema.
quarantined() {
	tl_sql "SELECT coalesce(string_agg(n.nspname || '.' || c.relname, ' ' ORDER BY n.nspname, c.relname), '') FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname LIKE 'checkpoint\_quarantine\_%' AND c.relkind = 'r'"
}

add_checkpoints() {
	local i
	for i in "$@"; do
		tl_sql "INSERT INTO public.checkpoints (thread_id, checkpoint_id, checkpoint)
			VALUES ('thread-1', '$i', '{\"id\": \"$i\"}')" >/dev/null
	done
}

# snapshot: everything a dry run must leave alone.
snapshot() {
	tl_sql "SELECT (SELECT count(*) || '/' || coalesce(max(id), 0) FROM checkpoint_agent.ledger)
		|| ' versions=' || coalesce((SELECT string_agg(v::text, ',' ORDER BY v) FROM public.checkpoint_migrations), '')
		|| ' relations=' || (SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ',' ORDER BY n.nspname, c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast'))
		|| ' columns=' || (SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public')
		|| ' rows=' || (SELECT count(*) FROM public.checkpoints)
		|| ' blob_nullable=' || (SELECT is_nullable FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = 'checkpoint_blobs' AND column_name = 'blob')" ||
		{ fail "the snapshot query failed"; echo "failed-$RANDOM"; }
}

test_01_rollback_to_minus_1_removes_the_set() {
	agent rollback --to -1
	assertEquals "rollback --to -1 exits 0: $TL_ERR" 0 "$TL_RC"
	assertEquals "no langgraph table is left in public" "" "$(langgraph_tables)"
	assertEquals "empty tables are dropped, not quarantined" "" "$(quarantined)"
	assertEquals "the ledger records the down steps 9..0, in that order" "9,8,7,6,5,4,3,2,1,0" \
		"$(tl_sql "SELECT string_agg(version::text, ',' ORDER BY id) FROM checkpoint_agent.ledger
			WHERE set_name = 'langgraph' AND direction = 'down'")"
	agent status --exit-code
	assertEquals "status: everything pending (exit 1): $TL_OUT" 1 "$TL_RC"
}

test_02_migrate_after_rollback_returns_to_v9() {
	agent migrate
	assertEquals "migrate exits 0: $TL_ERR" 0 "$TL_RC"
	assertEquals "versions 0..9" "$V0_TO_9" "$(versions)"
	agent verify
	assertEquals "verify is clean: $TL_OUT $TL_ERR" 0 "$TL_RC"
}

test_10_table_holding_rows_is_quarantined() {
	add_checkpoints c1 c2 c3
	agent rollback --to 0
	assertEquals "rollback --to 0 exits 0: $TL_ERR" 0 "$TL_RC"
	assertEquals "public.checkpoints is gone from public" "checkpoint_migrations" "$(langgraph_tables)"
	QUARANTINE=$(tl_sql "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'checkpoint\_quarantine\_%'")
	assertContains "the quarantine schema is named with the time" "$QUARANTINE" "checkpoint_quarantine_$(date -u +%Y)"
	assertEquals "only the table that held rows is quarantined" "$QUARANTINE.checkpoints" "$(quarantined)"
	assertEquals "its rows are intact" "c1,c2,c3" \
		"$(tl_sql "SELECT string_agg(checkpoint_id || '', ',' ORDER BY checkpoint_id) FROM \"$QUARANTINE\".checkpoints
			WHERE checkpoint->>'id' = checkpoint_id")"
	assertContains "the agent says where the table went" "$TL_ERR" "moved to $QUARANTINE.checkpoints"
}

test_11_status_lists_the_quarantined_table() {
	agent status
	assertContains "status lists the quarantined table" "$TL_OUT" "$QUARANTINE.checkpoints"
	agent status --json
	assertContains "status --json lists it too" "$TL_OUT" "\"schema\":\"$QUARANTINE\",\"table\":\"checkpoints\""
}

# The README, "Restoring a quarantined table": stop the writers, then as the
# table's owner, in one transaction, drop the empty table migrate recreated
# and move the quarantined one back (its schema name typed unquoted).
test_12_readme_restore_procedure_brings_the_rows_back() {
	agent migrate
	assertEquals "migrate back to v9 exits 0: $TL_ERR" 0 "$TL_RC"
	assertEquals "migrate recreated an empty checkpoints table" 0 "$(tl_sql "SELECT count(*) FROM public.checkpoints")"
	tl_psql_app -d "$TL_APP_DB" <<-EOF
		BEGIN;
		DROP TABLE public.checkpoints;
		ALTER TABLE $QUARANTINE.checkpoints SET SCHEMA public;
		COMMIT;
	EOF
	assertEquals "the README's statements succeed as written, run by the table's owner" 0 $?
	assertEquals "the rows are back in public.checkpoints" "c1,c2,c3" \
		"$(tl_sql "SELECT string_agg(checkpoint_id, ',' ORDER BY checkpoint_id) FROM public.checkpoints")"
	agent status
	assertNotContains "status no longer lists it" "$TL_OUT" "$QUARANTINE.checkpoints"
}

# The quarantined table left v6's index behind (v6's down step dropped it
# before v1's moved the table): verify names it, with the statement to make it.
test_13_verify_after_restore_names_what_is_left_to_recreate() {
	local expected
	agent verify
	assertEquals "verify reports the index the restored table lacks (exit 65)" 65 "$TL_RC"
	assertContains "it names the index" "$TL_OUT" "index checkpoints_thread_id_idx of public.checkpoints is missing"
	expected=$(printf '%s\n' "$TL_OUT" | sed -n 's/.*(expected: \(CREATE INDEX .*\))$/\1/p')
	tl_sql "$expected" >/dev/null
	assertEquals "the statement verify shows can be run as is: $expected" 0 $?
	agent verify
	assertEquals "then verify is clean: $TL_OUT" 0 "$TL_RC"
}

test_20_purge_drops_instead_of_quarantining() {
	local before rows
	add_checkpoints p1 p2
	rows=$(tl_sql "SELECT count(*) FROM public.checkpoints")
	before=$(quarantined)
	agent rollback --to 0 --purge
	assertEquals "rollback --purge exits 0: $TL_ERR" 0 "$TL_RC"
	assertEquals "public.checkpoints is gone" "checkpoint_migrations" "$(langgraph_tables)"
	assertEquals "nothing new in quarantine" "$before" "$(quarantined)"
	assertContains "--purge warns what it dropped" "$TL_ERR" "dropping public.checkpoints and its $rows rows"
	agent migrate
	assertEquals "migrate back to v9: $TL_ERR" "$V0_TO_9" "$(versions)"
}

test_30_v4_down_is_refused_while_a_null_blob_exists() {
	local before
	agent rollback --to 4
	assertEquals "rollback --to 4 exits 0: $TL_ERR" 0 "$TL_RC"
	tl_sql "INSERT INTO checkpoint_blobs (thread_id, channel, version, type, blob)
		VALUES ('thread-1', 'messages', '1', 'empty', NULL)" >/dev/null
	before=$(snapshot)
	agent rollback --to 3
	assertEquals "the refused rollback exits 70" 70 "$TL_RC"
	assertContains "it says why" "$TL_ERR" "checkpoint_blobs holds 1 rows whose blob is NULL"
	assertContains "it says what to do" "$TL_ERR" "Stay at version 4 or later"
	assertEquals "nothing changed" "$before" "$(snapshot)"
	assertEquals "still at v4" "0,1,2,3,4" "$(versions)"
}

test_31_refusal_is_found_before_any_version_is_rolled_back() {
	local before
	agent migrate
	tl_sql "DELETE FROM checkpoint_blobs" >/dev/null
	tl_sql "INSERT INTO checkpoint_blobs (thread_id, channel, version, type, blob)
		VALUES ('thread-1', 'messages', '1', 'empty', NULL)" >/dev/null
	before=$(snapshot)
	agent rollback --to 3
	assertEquals "the refused rollback exits 70" 70 "$TL_RC"
	assertContains "it says nothing changed" "$TL_ERR" "rollback refused, nothing was changed: langgraph v4 down"
	assertEquals "v9 to v5 were not rolled back either" "$before" "$(snapshot)"
	assertEquals "still at v9" "$V0_TO_9" "$(versions)"
	tl_sql "DELETE FROM checkpoint_blobs" >/dev/null
}

test_32_dry_run_drops_the_version_table_without_quarantine() {
	agent rollback --to -1 --dry-run
	assertNotContains "the version table's rows are bookkeeping, not data" "$TL_OUT" \
		"checkpoint_migrations holds"
	assertContains "$TL_OUT" "DROP TABLE IF EXISTS \"public\".\"checkpoint_migrations\""
}

test_40_rollback_dry_run_prints_the_plan_and_changes_nothing() {
	local before
	agent migrate
	add_checkpoints d1
	before=$(snapshot)
	agent rollback --to -1 --dry-run
	assertEquals "dry run exits 0: $TL_ERR" 0 "$TL_RC"
	assertContains "the plan has v9's down step" "$TL_OUT" "ALTER TABLE checkpoint_writes DROP COLUMN IF EXISTS task_path"
	assertContains "the plan has v6's down step" "$TL_OUT" "DROP INDEX CONCURRENTLY IF EXISTS checkpoints_thread_id_idx"
	assertContains "the plan says checkpoints would be quarantined" "$TL_OUT" \
		"public.checkpoints holds 1 rows: it moves to schema checkpoint_quarantine_"
	assertEquals "nothing changed" "$before" "$(snapshot)"
}

test_41_migrate_dry_run_prints_the_plan_and_changes_nothing() {
	local before
	agent rollback --to 5
	assertEquals "rollback --to 5: $TL_ERR" 0 "$TL_RC"
	before=$(snapshot)
	agent migrate --dry-run
	assertEquals "dry run exits 0: $TL_ERR" 0 "$TL_RC"
	assertContains "the plan has v6" "$TL_OUT" "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_thread_id_idx"
	assertContains "the plan has v9" "$TL_OUT" "ADD COLUMN IF NOT EXISTS task_path"
	assertEquals "nothing changed" "$before" "$(snapshot)"
}

tl_run
