#!/bin/bash
# 70-table-tuning.sh: step "table-tuning". Per-table autovacuum settings for
# the checkpoint tables (templates/checkpoint-autovacuum.sql.j2), which exist
# once the agent has applied the schema. The statements are first run in a
# transaction that is rolled back, to see the storage parameters they would
# leave; they are applied only when those differ from the current ones, so a
# re-run does not touch the catalog. Skipped (exit 0) when CPA_SETS does not
# include langgraph: those tables then never exist.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

TABLES="'checkpoints', 'checkpoint_blobs', 'checkpoint_writes'"

# storage_parameters: one line per table, its and its TOAST table's options.
storage_parameters_query() {
	cat <<-EOF
		SELECT c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), '-')
		       || ' toast=' || coalesce(array_to_string(t.reloptions, ','), '-')
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
		WHERE n.nspname = '$CPA_DB_SCHEMA' AND c.relname IN ($TABLES)
		ORDER BY c.relname;
	EOF
}

main() {
	local sql current desired count
	cpa_init_step table-tuning "$@"
	case " $CPA_SETS " in
	*" langgraph "*) ;;
	*)
		cpa_unchanged "skipped: the checkpoint tables belong to the langgraph set, which is not among the sets ($CPA_SETS)"
		return 0
		;;
	esac
	sql=$(cpa_render "$CPA_TEMPLATES_DIR/checkpoint-autovacuum.sql.j2" cpa_db_schema="$CPA_DB_SCHEMA") || exit "$?"
	if [ "$CPA_DRY_RUN" = 1 ] && [ "$(cpa_cluster_status)" != online ]; then
		cpa_changed "set per-table autovacuum on $CPA_DB_SCHEMA.checkpoints, checkpoint_blobs, checkpoint_writes (once they exist)"
		return 0
	fi
	count=$(cpa_psql -d "$CPA_DB_NAME" -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = '$CPA_DB_SCHEMA' AND c.relname IN ($TABLES)" 2>/dev/null || echo 0)
	if [ "$count" != 3 ]; then
		if [ "$CPA_DRY_RUN" = 1 ]; then
			cpa_changed "set per-table autovacuum on the checkpoint tables once the agent has created them"
			return 0
		fi
		cpa_die "$CPA_EX_FAILED" "the checkpoint tables are not in $CPA_DB_NAME.$CPA_DB_SCHEMA ($count of 3 found)" \
			"The agent applies the schema: run the agent step first (provision.sh --from agent)."
	fi
	current=$(storage_parameters_query | cpa_psql -d "$CPA_DB_NAME")
	desired=$(printf '%s\n' 'BEGIN;' "$sql" "$(storage_parameters_query)" 'ROLLBACK;' | cpa_psql -d "$CPA_DB_NAME")
	if [ "$current" = "$desired" ]; then
		cpa_unchanged "per-table autovacuum settings on checkpoints, checkpoint_blobs, checkpoint_writes"
		return 0
	fi
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "per-table autovacuum settings:"
		diff <(printf '%s\n' "$current") <(printf '%s\n' "$desired") | sed -n 's/^[<>]/      &/p' || true
		return 0
	fi
	printf '%s\n' "$sql" | cpa_psql -d "$CPA_DB_NAME" --single-transaction
	cpa_changed "per-table autovacuum settings on checkpoints, checkpoint_blobs, checkpoint_writes"
}

main "$@"
