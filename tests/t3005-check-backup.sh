#!/bin/bash
# t3005-check-backup: the `backup` check against a real pgBackRest repository
# of a throwaway cluster (WAL archiving through pgBackRest, real full and
# differential backups, `pgbackrest info --output=json` as the backup units
# write it): OK with a fresh backup; WARNING and CRITICAL as the backup ages
# against backup.interval_hours; CRITICAL without a backup, with no stanza and
# with a missing info file; CRITICAL when archive_command fails (failures
# since the last success), OK again once it works; WARNING when the
# repository is on the data's file system; the drill's result (OK, failed:
# CRITICAL, too old: WARNING); "not configured" said plainly (OK); the three
# formats, promtool included.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/pgbackrest.sh
. "$TL_ROOT/tests/lib/pgbackrest.sh"

suite_setup() {
	tl_pg_start || return 1
	tb_setup cpatest || return 1
	DIR=$(tl_tmpdir) || return 1
	CONF=$DIR/agent.conf
	INFO=$DIR/info.json
	DRILL=$DIR/drill.json
	# The repository's folder, on another file system than the data when
	# the machine has one (/dev/shm), for the OK case.
	OTHER_FS_REPO=/dev/shm
	write_conf "" ""
	tl_agent -c "$CONF" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
	tb_backup full || return 1
	tb_info_file "$INFO" || return 1
}

# write_conf BACKUP CHECKS: the config, BACKUP inside its backup group and
# CHECKS inside its checks group.
write_conf() {
	cat >"$CONF" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		service: { state_file = ""; data_directory = "$TL_PGDATA"; };
		backup: { $1 };
		checks: { $2 };
	CONF
}

configured() {
	printf 'info_file = "%s"; stanza = "%s"; repo_path = "%s"; %s' "${INFO_FILE:-$INFO}" "$TB_STANZA" \
		"${REPO:-$OTHER_FS_REPO}" "$1"
}

status_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name { print $1 }'
}

backup_line() {
	printf '%s\n' "$TL_OUT" | grep ' backup: '
}

check_with() {
	write_conf "$@"
	tl_agent -c "$CONF" check
}

# age_info SECONDS: the info file with every backup's times moved SECONDS into the past.
age_info() {
	python3 - "$INFO" "$1" >"$DIR/aged.json" <<-'PY'
		import json, sys
		info = json.load(open(sys.argv[1]))
		for stanza in info:
		    for b in stanza["backup"]:
		        b["timestamp"]["start"] -= int(sys.argv[2])
		        b["timestamp"]["stop"] -= int(sys.argv[2])
		print(json.dumps(info))
	PY
}

test_01_not_configured_is_said_plainly_and_is_ok() {
	check_with "" ""
	assertEquals "out: $TL_OUT" OK "$(status_of backup)"
	assertContains "$(backup_line)" "backups are not configured"
	tl_agent -c "$CONF" check --format prometheus
	assertContains "$TL_OUT" 'checkpoint_agent_backup_configured 0'
}

test_02_a_fresh_backup_is_ok() {
	check_with "$(configured)" ""
	assertEquals "out: $TL_OUT" OK "$(status_of backup)"
	assertContains "$(backup_line)" "newest backup "
	assertContains "$(backup_line)" "F (full, "
	assertContains "$(backup_line)" "WAL archive: "
}

test_03_the_backup_age_against_the_schedule() {
	age_info $((37 * 3600))
	INFO_FILE=$DIR/aged.json check_with "$(INFO_FILE=$DIR/aged.json configured)" ""
	assertEquals "37 h with daily backups; out: $TL_OUT" WARNING "$(status_of backup)"
	assertContains "$(backup_line)" "warn past 36h, crit past 72h"
	age_info $((73 * 3600))
	check_with "$(INFO_FILE=$DIR/aged.json configured)" ""
	assertEquals "73 h; out: $TL_OUT" CRITICAL "$(status_of backup)"
	check_with "$(INFO_FILE=$DIR/aged.json configured 'interval_hours = 168;')" ""
	assertEquals "73 h with weekly backups; out: $TL_OUT" OK "$(status_of backup)"
	age_info $((25 * 3600))
	check_with "$(INFO_FILE=$DIR/aged.json configured)" "backup_age_warn_pct = 100; backup_age_crit_pct = 200;"
	assertEquals "thresholds from the config; out: $TL_OUT" WARNING "$(status_of backup)"
}

test_04_no_backup_no_stanza_no_file_are_critical() {
	runuser -u postgres -- env PGBACKREST_CONFIG="$TB_CONF" pgbackrest --stanza=nosuchstanza --output=json info >"$DIR/nostanza.json"
	check_with "info_file = \"$DIR/nostanza.json\"; stanza = \"nosuchstanza\";" ""
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of backup)"
	assertContains "$(backup_line)" "missing stanza path"
	check_with "info_file = \"$DIR/nonexistent.json\";" ""
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of backup)"
	assertContains "$(backup_line)" "has none run?"
	printf 'not json' >"$DIR/bad.json"
	check_with "info_file = \"$DIR/bad.json\";" ""
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of backup)"
	check_with "info_file = \"$INFO\"; stanza = \"other\";" ""
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of backup)"
	assertContains "$(backup_line)" 'has no stanza "other"'
}

test_05_archive_failures_since_the_last_success_are_critical() {
	local good
	good=$(tl_sql "SHOW archive_command")
	tl_sql "ALTER SYSTEM SET archive_command = 'false'" >/dev/null
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
	tl_sql "CREATE TABLE IF NOT EXISTS t3005 (i int); INSERT INTO t3005 VALUES (1); SELECT pg_switch_wal()" >/dev/null
	tl_wait_for 30 "SELECT failed_count > 0 FROM pg_stat_archiver" || fail "the archiver did not fail"
	check_with "$(configured)" ""
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of backup)"
	assertContains "$(backup_line)" "WAL archiving FAILS"
	tl_agent -c "$CONF" check --format json
	assertContains "$TL_OUT" '"wal_archive_failing"'
	tl_sql "ALTER SYSTEM RESET archive_command" >/dev/null
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	assertEquals "$good" "$(tl_sql "SHOW archive_command")"
	tl_wait_for 60 "SELECT last_archived_time > last_failed_time FROM pg_stat_archiver" ||
		fail "the archiver did not recover"
	check_with "$(configured)" ""
	assertEquals "archiving works again; out: $TL_OUT" OK "$(status_of backup)"
	assertContains "$(backup_line)" "none waiting"
}

test_06_archive_mode_off_is_critical() {
	tl_sql "ALTER SYSTEM SET archive_mode = off" >/dev/null
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_PGDATA" -m fast -w stop >/dev/null
	tl_pg_restart || fail "restart"
	check_with "$(configured)" ""
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of backup)"
	assertContains "$(backup_line)" "archive_mode is off"
	tl_sql "ALTER SYSTEM RESET archive_mode" >/dev/null
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_PGDATA" -m fast -w stop >/dev/null
	tl_pg_restart || fail "restart"
}

test_07_a_repository_on_the_data_filesystem_warns() {
	REPO=$TB_REPO check_with "$(REPO=$TB_REPO configured)" ""
	assertEquals "out: $TL_OUT" WARNING "$(status_of backup)"
	assertContains "$(backup_line)" "is on the data directory's file system"
	tl_agent -c "$CONF" check --format prometheus
	assertContains "$TL_OUT" 'checkpoint_agent_backup_repo_on_data_filesystem 1'
}

test_08_the_drill_result() {
	printf '{"result":"ok","finished_at":%s,"restore_seconds":4.2,"message":"restored in 4.2s"}\n' "$(date +%s)" >"$DRILL"
	check_with "$(configured "drill_file = \"$DRILL\";")" ""
	assertEquals "out: $TL_OUT" OK "$(status_of backup)"
	assertContains "$(backup_line)" "restore drill OK"
	printf '{"result":"ok","finished_at":%s,"restore_seconds":4.2,"message":"x"}\n' "$(($(date +%s) - 50 * 86400))" >"$DRILL"
	check_with "$(configured "drill_file = \"$DRILL\";")" ""
	assertEquals "50 days old; out: $TL_OUT" WARNING "$(status_of backup)"
	printf '{"result":"failed","finished_at":%s,"message":"checkpoint-agent verify of the restored copy exited 65"}\n' "$(date +%s)" >"$DRILL"
	check_with "$(configured "drill_file = \"$DRILL\";")" ""
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of backup)"
	assertContains "$(backup_line)" "restore drill FAILED"
	rm -f "$DRILL"
	check_with "$(configured "drill_file = \"$DRILL\";")" ""
	assertEquals "out: $TL_OUT" OK "$(status_of backup)"
	assertContains "$(backup_line)" "no restore drill has run yet"
}

test_09_a_differential_backup_becomes_the_newest_and_formats_agree() {
	tb_backup diff || fail "diff backup"
	tb_info_file "$INFO"
	check_with "$(configured)" ""
	assertEquals "out: $TL_OUT" OK "$(status_of backup)"
	assertContains "$(backup_line)" "D (diff, "
	tl_agent -c "$CONF" check --format json
	assertEquals "JSON: the backup check's status and backup count" "OK 2" "$(printf '%s' "$TL_OUT" | python3 -c '
import json, sys
c = [c for c in json.load(sys.stdin)["checks"] if c["name"] == "backup"][0]
print(c["status"], [m["value"] for m in c["metrics"] if m["name"] == "backup_count"][0])')"
	tl_agent -c "$CONF" check --format prometheus
	assertContains "$TL_OUT" 'checkpoint_agent_backup_count 2'
	assertContains "$TL_OUT" 'checkpoint_agent_backup_last_age_seconds '
	if command -v promtool >/dev/null; then
		printf '%s\n' "$TL_OUT" | promtool check metrics >/dev/null 2>"$DIR/promtool.err"
		assertEquals "promtool: $(cat "$DIR/promtool.err")" 0 $?
	fi
}

tl_run
