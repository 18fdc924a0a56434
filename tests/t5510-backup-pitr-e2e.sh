#!/bin/bash
# t5510-backup-pitr-e2e: backups and point-in-time recovery end to end, in a
# booted Debian 12 container (systemd as PID 1) provisioned with an encrypted
# pgBackRest repository on another file system (a /dev/shm folder bound at
# /mnt/backup), the data disk bound at /mnt/data. In order, on one container:
#   - provisioning: stanza, first full backup, archive_mode on after one
#     restart, data checksums, timers, pgbackrest.conf 0640, the cipher
#     passphrase 0600 and in no command line, environment, log or readable file;
#   - the real LangGraph JS client writes threads; the differential backup
#     unit runs; more threads; the time T is noted with the fingerprint of
#     every checkpoint table (row count, md5 of the ordered rows); more
#     threads; DROP TABLE checkpoint_writes;
#   - restore.sh --to-time T brings back exactly the rows of T, and the JS
#     client reads the threads of before T back (and not those after);
#   - the drill unit on the same server leaves the live cluster's
#     fingerprint and postmaster unchanged, and the agent reports it;
#   - bad input (malformed time, before the oldest backup, no stanza) exits
#     64/65/69 and changes nothing.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$TL_ROOT/tests/lib/container.sh"

PROVISION=/opt/checkpoint-agent/provision/provision.sh
RESTORE=/usr/local/lib/checkpoint-agent/restore.sh
CIPHER_CONF=/etc/pgbackrest/conf.d/checkpoint-cipher.conf
DATA=
BACKUP=
OUT=
JS_CLIENT=$TL_ROOT/tests/js/langgraph-client.cjs

suite_setup() {
	DATA=$(tl_tmpdir) || return 1
	OUT=$(tl_tmpdir) || return 1
	# Another file system than the data's, kept across the container's life.
	BACKUP=$(mktemp -d /dev/shm/cpa-t5510.XXXXXX) || return 1
	TL_CLEANUP_DIRS+=("$BACKUP")
	NODE_PATH=$("$TL_ROOT/tests/js/install.sh") || return 1
	JS_NODE=$("$TL_ROOT/tests/js/install.sh" --node) || return 1
	export NODE_PATH JS_NODE
	tc_boot backup-e2e --bind="$DATA:/mnt/data" --bind="$BACKUP:/mnt/backup" --private-network || return 1
}

suite_teardown() {
	tc_cleanup
}

# run_in NAME CMD...: a command inside; output in $OUT/NAME.log, exit code in RC.
run_in() {
	local name=$1 start
	shift
	start=$(date +%s.%N)
	RC=0
	tc_exec "$@" >"$OUT/$name.log" 2>&1 || RC=$?
	tl_log "$name: exit $RC in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"
	if [ "$RC" -ne 0 ]; then
		tail -n 30 "$OUT/$name.log" >&2
	fi
}

psql_super() {
	tc_exec runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 "$@"
}

db_sql() {
	psql_super -d langgraph_checkpoints -c "$1"
}

# fingerprint: row count and md5 of the ordered rows of every checkpoint table.
fingerprint() {
	db_sql "SELECT 'checkpoints ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY thread_id, checkpoint_ns, checkpoint_id), '')) FROM checkpoints t
		UNION ALL SELECT 'checkpoint_blobs ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY thread_id, checkpoint_ns, channel, version), '')) FROM checkpoint_blobs t
		UNION ALL SELECT 'checkpoint_writes ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY thread_id, checkpoint_ns, checkpoint_id, task_id, idx), '')) FROM checkpoint_writes t
		UNION ALL SELECT 'checkpoint_migrations ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY v), '')) FROM checkpoint_migrations t"
}

# js ACTION LABEL: the LangGraph JS client, run on the host inside the
# container's network namespace (its own loopback); the password reaches it
# through a 0600 pgpass file made from the credentials file. JS_OUT, JS_RC.
js() {
	local pass=$OUT/pgpass
	( umask 077 && sed -n 's/^password=\(.*\)/127.0.0.1:5432:langgraph_checkpoints:ai_agent:\1/p' \
		"$TC_ROOT/etc/checkpoint-agent/credentials" >"$pass" )
	JS_RC=0
	JS_OUT=$(nsenter -t "$TC_PID" -n -- env PGPASSFILE="$pass" NODE_PATH="$NODE_PATH" "$JS_NODE" "$JS_CLIENT" \
		--action "$1" --label "$2" --uri postgresql://ai_agent@127.0.0.1:5432/langgraph_checkpoints 2>"$OUT/js.err") || JS_RC=$?
	rm -f "$pass"
	[ "$JS_RC" = 0 ] || tl_log "js $1 $2: exit $JS_RC: $JS_OUT $(cat "$OUT/js.err")"
}

json_field() {
	printf '%s' "$JS_OUT" | python3 -c "import json, sys; print(json.load(sys.stdin)$1)"
}

backup_check_line() {
	tc_exec runuser -u checkpoint-agent -- checkpoint-agent check 2>&1 | grep ' backup: '
}

test_01_provisioning_sets_up_encrypted_backups() {
	run_in provision "$PROVISION" --backup-cipher
	assertEquals "provision exit code" 0 "$RC"
	assertContains "the restart is announced" "$(cat "$OUT/provision.log")" "RESTART PostgreSQL once: archive_mode = on needs it"
	assertContains "the summary says it" "$(cat "$OUT/provision.log")" "PostgreSQL was restarted once for archive_mode"
	assertContains "$(cat "$OUT/provision.log")" "took the first full backup"
	assertNotContains "no warning about the repository's disk" "$(cat "$OUT/provision.log")" "NOT a dead disk"
	assertEquals archive_mode on "$(psql_super -c 'SHOW archive_mode')"
	assertEquals archive_timeout 1min "$(psql_super -c 'SHOW archive_timeout')"
	assertEquals "data checksums" on "$(psql_super -c 'SHOW data_checksums')"
	assertEquals "pgbackrest.conf" "640 postgres:postgres" "$(tc_exec stat -c '%a %U:%G' /etc/pgbackrest/pgbackrest.conf)"
	assertEquals "the passphrase file" "600 postgres:postgres" "$(tc_exec stat -c '%a %U:%G' "$CIPHER_CONF")"
	assertEquals "the repository is encrypted" 1 \
		"$(tc_exec runuser -u postgres -- pgbackrest --stanza=main --output=json info | grep -c '"cipher":"aes-256-cbc"')"
	assertEquals "one full backup" 1 \
		"$(tc_exec runuser -u postgres -- pgbackrest --stanza=main --output=json info | grep -o '"type":"full"' | wc -l)"
	local t
	for t in checkpoint-backup-full.timer checkpoint-backup-diff.timer checkpoint-restore-drill.timer; do
		assertEquals "$t" "enabled active yes" "$(tc_exec systemctl is-enabled "$t") $(tc_exec systemctl is-active "$t") $(tc_exec systemctl show -p Persistent --value "$t")"
	done
	assertEquals "the agent's check" OK "$(backup_check_line | awk '{ print $1 }')"
	run_in provision-again "$PROVISION" --backup-cipher
	assertContains "a second run changes nothing" "$(cat "$OUT/provision-again.log")" "Nothing changed"
}

test_02_the_passphrase_is_nowhere_it_should_not_be() {
	local pass=$OUT/passphrase found
	sed -n 's/^repo1-cipher-pass=//p' "$TC_ROOT$CIPHER_CONF" >"$pass"
	assertTrue "there is a passphrase" "[ -s '$pass' ]"
	tc_exec systemctl start checkpoint-backup-diff.service || fail "a differential backup through its unit"
	cp "$pass" "$TC_ROOT/root/pattern"
	found=$(tc_exec sh -c "grep -lsF -f /root/pattern /proc/[0-9]*/cmdline /proc/[0-9]*/environ; journalctl --no-pager -o cat | grep -cF -f /root/pattern; grep -rlsF -f /root/pattern /var/log /var/lib/checkpoint-backup /mnt/backup")
	assertEquals "command lines, environments, journal, logs, the repository" "0" "$found"
	found=$(tc_exec sh -c "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -type f -perm -0004 -print0 | xargs -0 grep -lsF -f /root/pattern")
	assertEquals "world-readable files" "" "$found"
	found=$(grep -rlsF -f "$pass" "$OUT" --exclude=passphrase)
	assertEquals "provisioning's output" "" "$found"
	rm -f "$TC_ROOT/root/pattern"
}

test_03_restore_to_a_time_brings_back_exactly_its_rows() {
	local at_t after
	js exercise before
	assertEquals "JS writes threads" 0 "$JS_RC"
	tc_exec systemctl start checkpoint-backup-diff.service || fail "differential backup"
	assertContains "the unit wrote the info for the agent" "$(tc_exec cat /var/lib/checkpoint-backup/info.json)" '"type":"diff"'
	js exercise mid
	assertEquals 0 "$JS_RC"
	sleep 1
	T=$(psql_super -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
	at_t=$(fingerprint)
	printf '%s\n' "$at_t" >"$OUT/fingerprint-at-t"
	sleep 1
	js exercise after
	assertEquals 0 "$JS_RC"
	db_sql "DROP TABLE checkpoint_writes"
	assertNotEquals "the damage is done" "$at_t" "$(fingerprint 2>&1)"
	run_in restore "$RESTORE" --to-time "$T" --yes
	assertEquals "restore exit code" 0 "$RC"
	assertEquals "exactly the rows of T: $(tail -n 5 "$OUT/restore.log")" "$at_t" "$(fingerprint)"
	assertContains "$(cat "$OUT/restore.log")" "To undo"
	assertTrue "the data from before is kept aside" "ls -d '$DATA'/postgresql/15/main.before-restore-* >/dev/null"
	assertEquals "the agent runs again" active "$(tc_exec systemctl is-active checkpoint-agent.service)"
	js read before
	assertEquals "JS reads back: $JS_OUT" "0 4" "$JS_RC $(json_field "['found']")"
	js read mid
	assertEquals "JS reads back: $JS_OUT" "0 4" "$JS_RC $(json_field "['found']")"
	js read after
	assertEquals "the threads after T are not there: $JS_OUT" "0 0" "$JS_RC $(json_field "['found']")"
	after=$(tc_exec runuser -u checkpoint-agent -- checkpoint-agent check 2>&1 | grep -c '^OK')
	assertTrue "the checks pass after the restore" "[ '$after' -ge 10 ]"
}

test_04_a_drill_leaves_the_live_cluster_untouched() {
	local before pm before_files
	before=$(fingerprint)
	pm=$(psql_super -c 'SELECT pg_postmaster_start_time()')
	before_files=$(tc_exec sh -c 'ls /mnt/data/postgresql/15')
	tc_exec systemctl start checkpoint-restore-drill.service
	assertEquals "the drill unit" 0 $?
	tc_journal -u checkpoint-restore-drill.service -o cat >"$OUT/drill.log"
	assertContains "$(cat "$OUT/drill.log")" "restore drill OK"
	assertEquals "the live fingerprint is unchanged" "$before" "$(fingerprint)"
	assertEquals "PostgreSQL was not restarted" "$pm" "$(psql_super -c 'SELECT pg_postmaster_start_time()')"
	assertEquals "no scratch copy is left" "$before_files" "$(tc_exec sh -c 'ls /mnt/data/postgresql/15')"
	assertEquals "no scratch folder is left" "" "$(tc_exec sh -c 'ls -d /mnt/data/.checkpoint-drill.* 2>/dev/null')"
	assertContains "the result for the agent" "$(tc_exec cat /var/lib/checkpoint-backup/drill.json)" '"result":"ok"'
	assertContains "the agent reports it" "$(backup_check_line)" "restore drill OK"
}

test_05_bad_input_exits_64_65_69_and_changes_nothing() {
	local pm before
	pm=$(psql_super -c 'SELECT pg_postmaster_start_time()')
	before=$(fingerprint)
	run_in bad-time "$RESTORE" --to-time "last tuesday" --yes
	assertEquals "a malformed time" 64 "$RC"
	assertContains "$(cat "$OUT/bad-time.log")" "is not a time of the form"
	run_in bad-date "$RESTORE" --to-time "2026-02-30 10:00:00+00" --yes
	assertEquals "an impossible date" 64 "$RC"
	run_in too-early "$RESTORE" --to-time "2001-01-01 00:00:00+00" --yes
	assertEquals "before the oldest backup" 65 "$RC"
	assertContains "$(cat "$OUT/too-early.log")" "is before the end of the oldest backup"
	run_in future "$RESTORE" --to-time "2099-01-01 00:00:00+00" --yes
	assertEquals "in the future" 65 "$RC"
	run_in no-stanza "$RESTORE" --latest --backup-stanza nosuchstanza --yes
	assertEquals "no stanza" 69 "$RC"
	assertContains "$(cat "$OUT/no-stanza.log")" "no pgBackRest stanza nosuchstanza"
	run_in dry-run "$RESTORE" --latest --dry-run
	assertEquals "--dry-run" 0 "$RC"
	assertContains "$(cat "$OUT/dry-run.log")" "would:"
	assertEquals "PostgreSQL was not restarted" "$pm" "$(psql_super -c 'SELECT pg_postmaster_start_time()')"
	assertEquals "nothing changed" "$before" "$(fingerprint)"
}

tl_run
