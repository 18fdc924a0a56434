#!/bin/bash
# t5006-restore-input: provision/restore.sh on the host, against a throwaway
# cluster with a real pgBackRest repository (tests/lib/pgbackrest.sh). The
# settings point at that cluster only: a Debian cluster name that does not
# exist, a config folder of the suite's own, so nothing of the machine's is
# read or touched.
#   - bad input exits 64 (usage, malformed or impossible time), 65 (before the
#     oldest backup, in the future) or 69 (no stanza, no backup, no
#     pgBackRest config) with a clear message, and changes nothing;
#   - --dry-run prints the plan and changes nothing;
#   - a drill restores into a scratch folder, starts it on a spare port,
#     runs `checkpoint-agent verify`, compares the row counts, writes
#     drill.json, removes the scratch folder, and leaves the live cluster
#     as it was; with --to-time T it brings back the rows of T.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/pgbackrest.sh
. "$TL_ROOT/tests/lib/pgbackrest.sh"

RESTORE=$TL_ROOT/provision/restore.sh

suite_setup() {
	tl_pg_start || return 1
	tb_setup cpatest || return 1
	W=$(tl_tmpdir) || return 1
	install -d -m 0755 "$W/etc" "$W/prefix/bin" "$W/state" "$W/scratch" || return 1
	install -d -m 0755 -o postgres -g postgres "$W/status" || return 1
	ln -s "$TL_AGENT" "$W/prefix/bin/checkpoint-agent" || return 1
	# The agent runs as postgres here (the suite has no agent user), and
	# logs in as the application's role (no role of its own: the drill's
	# verify takes that role from the config's uri): its password file must
	# be readable by that user.
	install -m 0600 -o postgres -g postgres "$TL_PASSWORD_FILE" "$W/etc/db-password" || return 1
	cat >"$W/etc/agent.conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$W/etc/db-password"; };
	CONF
	chmod 0644 "$W/etc/agent.conf"
	tl_agent -c "$W/etc/agent.conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
	tl_sql "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint, metadata)
		SELECT 'before-' || g, 'cp', '{}', '{}' FROM generate_series(1, 100) g" >/dev/null || return 1
	tb_backup full >/dev/null || return 1
	export CPA_PG_CLUSTER=cpa-t5006-none CPA_PG_PORT=$TL_PGPORT CPA_CONFIG_DIR=$W/etc \
		CPA_DATA_DIR=$TL_PGDATA CPA_DATA_ROOT=$W/scratch CPA_PREFIX=$W/prefix CPA_AGENT_USER=postgres \
		CPA_STATE_DIR=$W/state CPA_BACKUP_STATUS_DIR=$W/status CPA_BACKUP_STANZA=$TB_STANZA \
		CPA_BACKUP_REPO=$TB_REPO CPA_PGBACKREST_CONF=$TB_CONF CPA_PG_SOCKET_DIR=$TL_PGSOCK \
		CPA_DB_NAME=$TL_APP_DB CPA_LOCK_FILE=$W/provision.lock
}

# restore ARGS...: restore.sh; OUT, RC.
restore() {
	RC=0
	OUT=$("$RESTORE" "$@" 2>&1) || RC=$?
}

# live_state: what must not change: the postmaster's start and the rows.
live_state() {
	tl_sql "SELECT pg_postmaster_start_time(), (SELECT count(*) FROM checkpoints)"
	ls "$W/scratch" "$W/state"
}

test_01_bad_input_is_refused_and_changes_nothing() {
	local before
	before=$(live_state)
	restore
	assertEquals "no mode: $OUT" 64 "$RC"
	assertContains "$OUT" "give --drill, --to-time T or --latest"
	restore --latest --to-time "2026-01-01 00:00:00+00"
	assertEquals "--latest and --to-time: $OUT" 64 "$RC"
	restore --drill --latest
	assertEquals "--drill and --latest: $OUT" 64 "$RC"
	restore --to-time "yesterday noon" --yes
	assertEquals "a malformed time: $OUT" 64 "$RC"
	assertContains "$OUT" "is not a time of the form 'YYYY-MM-DD HH:MM:SS"
	restore --to-time "2026-13-01 00:00:00+00" --yes
	assertEquals "month 13: $OUT" 64 "$RC"
	assertContains "$OUT" "is not a valid date and time"
	restore --to-time "2001-01-01 00:00:00+00" --yes
	assertEquals "before the oldest backup: $OUT" 65 "$RC"
	assertContains "$OUT" "is before the end of the oldest backup"
	assertContains "$OUT" "Nothing was changed"
	restore --drill --to-time "2099-01-01 00:00:00+00"
	assertEquals "in the future: $OUT" 65 "$RC"
	restore --latest --yes --backup-stanza nosuchstanza
	assertEquals "no stanza: $OUT" 69 "$RC"
	assertContains "$OUT" "no pgBackRest stanza nosuchstanza"
	CPA_PGBACKREST_CONF=$W/none.conf restore --drill
	assertEquals "no pgBackRest config: $OUT" 69 "$RC"
	assertEquals "nothing changed" "$before" "$(live_state)"
}

test_02_a_stanza_without_a_backup_is_refused() {
	local json
	# The backups (the archive's newest segment may move on: archive_timeout).
	json=$(tb_pgbackrest --output=json info | grep -o '"label":"[^"]*"')
	tb_pgbackrest --repo1-path="$W/empty-repo" stanza-create >/dev/null 2>&1 ||
		{ install -d -o postgres -g postgres "$W/empty-repo"; tb_pgbackrest --repo1-path="$W/empty-repo" stanza-create >/dev/null; }
	PGBACKREST_REPO1_PATH=$W/empty-repo restore --drill
	assertEquals "no backup: $OUT" 69 "$RC"
	assertContains "$OUT" "has no backup to restore"
	assertEquals "the real repository's backups are unchanged" "$json" \
		"$(tb_pgbackrest --output=json info | grep -o '"label":"[^"]*"')"
}

test_03_dry_run_plans_and_changes_nothing() {
	local before
	before=$(live_state)
	restore --drill --dry-run
	assertEquals "drill dry run: $OUT" 0 "$RC"
	assertContains "$OUT" "would:"
	assertContains "$OUT" "into a scratch folder under $W/scratch"
	assertEquals "nothing changed" "$before" "$(live_state)"
	assertFalse "no drill result" "[ -e '$W/status/drill.json' ]"
}

test_04_a_drill_restores_verifies_counts_and_cleans_up() {
	local before
	before=$(live_state)
	restore --drill
	assertEquals "drill: $OUT" 0 "$RC"
	assertContains "$OUT" "checkpoint-agent verify: the restored schema is as it should be"
	assertContains "$OUT" "restore drill OK: restored "
	assertContains "the per-table figures" "$OUT" "public.checkpoints"
	assertContains "the result for the agent" "$(cat "$W/status/drill.json")" '"result":"ok"'
	assertEquals "the result's mode" 644 "$(stat -c %a "$W/status/drill.json")"
	assertEquals "the scratch folder is gone, the live cluster unchanged" "$before" "$(live_state)"
}

test_05_a_drill_to_a_time_brings_back_the_rows_of_that_time() {
	local t
	sleep 1
	t=$(tl_sql "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
	sleep 1
	tl_sql "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint, metadata)
		SELECT 'after-' || g, 'cp', '{}', '{}' FROM generate_series(1, 50) g" >/dev/null
	tb_pgbackrest check >/dev/null || fail "pgbackrest check (archives the segment past T)"
	restore --drill --to-time "$t"
	assertEquals "drill to T: $OUT" 0 "$RC"
	assertEquals "the rows at T, and the live cluster's now" "100 150" \
		"$(printf '%s\n' "$OUT" | awk '$1 == "public.checkpoints" { print $2, $3 }')"
	assertContains "the difference is explained" "$OUT" "row counts differ from the live cluster's in public.checkpoints"
}

tl_run
