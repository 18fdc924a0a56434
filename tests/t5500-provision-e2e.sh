#!/bin/bash
# t5500-provision-e2e: provision/provision.sh end to end, in a booted Debian 12
# container (systemd as PID 1, tests/lib/container.sh) with a host folder
# bound at /mnt/data, a /dev/shm folder bound at /mnt/backup (backups on
# another file system) and a private network (its own loopback). In order:
#   - --dry-run on the bare container changes nothing (stale apt lists: it
#     plans an apt-get update);
#   - provision.sh: data_directory under /mnt/data, the agent active, schema
#     v9, its own role (pg_monitor) over TLS, the application's role without
#     pg_read_all_stats; the stale lists' update tried (offline: a warning);
#     archiving and the first backup, the timers, the agent's backup check;
#   - provision.sh again: nothing changes (not even a reload or restart);
#   - a reload or restart an interrupted run did not make is made by the
#     next one; a tuning file PostgreSQL rejects is put back;
#   - a foreign target is refused (73) and nothing moves;
#   - a move cut short by a hang-up: PostgreSQL back on the old directory,
#     the copy removed;
#   - checkpoint rows loaded, the cluster (now holding data) relocated and
#     flushed before the switch: every table's checksum matches; a target
#     newer than the current directory is refused;
#   - rollback.sh datadir: the rows are intact;
#   - the container restarts: PostgreSQL on /mnt/data, the agent ready;
#   - no password is in a process command line, a /proc/*/environ of a
#     non-root process, a log, or a world-readable file;
#   - the application connects with the password; not without it, and not
#     from an address pg_hba does not allow (until --allow-cidr allows it,
#     over TLS only, with app-remote.env; verify-full with a given CA);
#   - --password-file replaces the password in the role and every file;
#   - rollback.sh schema --to 8 runs the agent's rollback;
#   - backups and point-in-time recovery (provisioned with --backup-cipher
#     throughout): the passphrase is 0600 and in no command line,
#     environment, log or readable file; the real LangGraph JS client writes
#     threads, the differential backup unit runs, more threads, the time T is
#     noted with the fingerprint of every checkpoint table (row count, md5 of
#     the ordered rows), more threads, DROP TABLE checkpoint_writes;
#     restore.sh --to-time T brings back exactly the rows of T and the JS
#     client reads the threads of before T back (not those after); the drill
#     unit leaves the live fingerprint and postmaster unchanged and the agent
#     (logged in as its own role) reports it; restore.sh's bad input exits
#     64/65/69 and changes nothing;
#   - a server of the older layout (the agent as the application's role,
#     which read every session) is brought to the new one.
# The tests share one container and run in order.

#
# suite-timeout: 1800 (tests/run.sh: it provisions a whole server, several times)
# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$TL_ROOT/tests/lib/container.sh"

PROVISION=/opt/checkpoint-agent/provision/provision.sh
RESTORE=/usr/local/lib/checkpoint-agent/restore.sh
CIPHER_CONF=/etc/pgbackrest/conf.d/checkpoint-cipher.conf
JS_CLIENT=$TL_ROOT/tests/js/langgraph-client.cjs
BACKUP=
ROLLBACK=/opt/checkpoint-agent/provision/rollback.sh
DATA=
OUT=
# A documentation address (RFC 5737), only ever on the container's own loopback.
OTHER_ADDR=192.0.2.10

suite_setup() {
	DATA=$(tl_tmpdir) || return 1
	OUT=$(tl_tmpdir) || return 1
	# The backup disk: another file system than the data's, kept across reboots.
	BACKUP=$(mktemp -d /dev/shm/cpa-t5500.XXXXXX) || return 1
	TL_CLEANUP_DIRS+=("$BACKUP")
	NODE_PATH=$("$TL_ROOT/tests/js/install.sh") || return 1
	JS_NODE=$("$TL_ROOT/tests/js/install.sh" --node) || return 1
	export NODE_PATH JS_NODE
	tc_boot provision-e2e --bind="$DATA:/mnt/data" --bind="$BACKUP:/mnt/backup" --private-network || return 1
}

suite_teardown() {
	tc_cleanup
}

# run_provision NAME ARGS...: provision.sh inside; output in $OUT/NAME.log,
# exit code in RC, seconds in SECONDS_TAKEN.
run_provision() {
	local name=$1 start
	shift
	start=$(date +%s.%N)
	RC=0
	# An encrypted repository throughout (the setting, so that resume commands show only "$@").
	tc_exec env CPA_BACKUP_CIPHER=1 "$PROVISION" "$@" >"$OUT/$name.log" 2>&1 || RC=$?
	SECONDS_TAKEN=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	tl_log "provision.sh $* ($name): exit $RC in ${SECONDS_TAKEN}s"
	if [ "$RC" -ne 0 ]; then
		tail -n 40 "$OUT/$name.log" >&2
	fi
}

psql_super() {
	tc_exec runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 "$@"
}

db_sql() {
	psql_super -d langgraph_checkpoints -c "$1"
}

# table_checksums: the test's own checksum of every checkpoint table (md5 of
# the rows in key order), independent of provisioning's.
table_checksums() {
	db_sql "SELECT 'checkpoints ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY thread_id, checkpoint_ns, checkpoint_id), '')) FROM checkpoints t
		UNION ALL SELECT 'checkpoint_blobs ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY thread_id, checkpoint_ns, channel, version), '')) FROM checkpoint_blobs t
		UNION ALL SELECT 'checkpoint_writes ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY thread_id, checkpoint_ns, checkpoint_id, task_id, idx), '')) FROM checkpoint_writes t"
}

# app_psql [psql args]: psql as the application role over TCP, the password
# from a 0600 pgpass file made from the credentials file (never a command line).
app_psql() {
	tc_exec sh -c 'umask 077; sed -n "s/^password=\(.*\)/*:*:*:ai_agent:\1/p" /etc/checkpoint-agent/credentials >/root/.pgpass'
	tc_exec env PGPASSFILE=/root/.pgpass psql -X -At -w -U ai_agent -d langgraph_checkpoints "$@" 2>&1
}

test_01_dry_run_on_the_bare_container_changes_nothing() {
	local before after
	# apt's lists as a server that has not updated them for days has them
	tc_exec find /var/lib/apt/lists -maxdepth 1 -type f -exec touch -d '3 days ago' {} +
	before=$(tc_exec sh -c 'dpkg -l | wc -l; ls /etc /var/lib | md5sum')
	run_provision dry-run --dry-run
	assertEquals "dry run exit code" 0 "$RC"
	assertContains "$(cat "$OUT/dry-run.log")" "would:    install packages: postgresql"
	assertContains "stale lists are refreshed first" "$(cat "$OUT/dry-run.log")" \
		"would:    apt-get update: the package lists are older than 24 h"
	assertContains "$(cat "$OUT/dry-run.log")" "nothing was changed"
	assertContains "the plan announces the one restart" "$(cat "$OUT/dry-run.log")" "RESTART PostgreSQL once: archive_mode = on needs it"
	assertContains "$(cat "$OUT/dry-run.log")" "stanza-create (if missing), check, and a first full backup"
	after=$(tc_exec sh -c 'dpkg -l | wc -l; ls /etc /var/lib | md5sum')
	assertEquals "no package, no file in /etc or /var/lib" "$before" "$after"
	assertFalse "no folder on the data disk" "[ -e '$DATA/postgresql' ]"
}

test_02_provision_places_the_data_on_the_disk_and_starts_the_agent() {
	run_provision first
	assertEquals "first run exit code" 0 "$RC"
	assertEquals "/mnt/data/postgresql/15/main" "$(psql_super -c 'SHOW data_directory')"
	assertTrue "the data is in the host folder" "[ -f '$DATA/postgresql/15/main/PG_VERSION' ]"
	assertEquals active "$(tc_exec systemctl is-active checkpoint-agent.service)"
	assertEquals "schema at v9" 9 "$(db_sql 'SELECT max(v) FROM checkpoint_migrations')"
	assertContains "the unit requires the mount" \
		" $(tc_exec systemctl show -p RequiresMountsFor --value postgresql@15-main.service) " " /mnt/data "
	assertEquals "listen_addresses" localhost "$(psql_super -c 'SHOW listen_addresses')"
	assertEquals "lz4 TOAST" lz4 "$(psql_super -c 'SHOW default_toast_compression')"
	assertEquals "no trust in pg_hba" 0 "$(psql_super -c "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'")"
	assertEquals "per-table autovacuum" 1 "$(db_sql "SELECT count(*) FROM pg_class WHERE relname = 'checkpoint_blobs' AND 'autovacuum_vacuum_scale_factor=0.02' = ANY (reloptions)")"
	assertEquals "credentials file" "600 root:root" "$(tc_exec stat -c '%a %U:%G' /etc/checkpoint-agent/credentials)"
	assertEquals "env file" "640 root:checkpoint-app" "$(tc_exec stat -c '%a %U:%G' /etc/checkpoint-agent/app.env)"
	assertEquals "agent password file" "640 root:checkpoint-agent" "$(tc_exec stat -c '%a %U:%G' /etc/checkpoint-agent/db-password)"
	assertContains "the summary masks the password" "$(cat "$OUT/first.log")" \
		"postgresql://ai_agent:****@localhost:5432/langgraph_checkpoints"
	assertContains "$(cat "$OUT/first.log")" "schema version    langgraph v9"
#   - backups and point-in-time recovery (provisioned with --backup-cipher
#     throughout): the passphrase is 0600 and in no command line,
#     environment, log or readable file; the real LangGraph JS client writes
#     threads, the differential backup unit runs, more threads, the time T is
#     noted with the fingerprint of every checkpoint table (row count, md5 of
#     the ordered rows), more threads, DROP TABLE checkpoint_writes;
#     restore.sh --to-time T brings back exactly the rows of T and the JS
#     client reads the threads of before T back (not those after); the drill
#     unit leaves the live fingerprint and postmaster unchanged and the agent
#     (its own role) reports it; restore.sh's bad input exits 64/65/69 and
#     changes nothing;
#   - a server of the older layout (the agent as the application's role,
#     which read every session) is brought to the new one.
}

test_03_a_second_run_changes_nothing() {
	local pm_before agent_before
	pm_before=$(psql_super -c 'SELECT pg_postmaster_start_time()')
	agent_before=$(tc_exec systemctl show -p ActiveEnterTimestampMonotonic --value checkpoint-agent.service)
	run_provision second
	assertEquals "second run exit code" 0 "$RC"
	assertContains "$(cat "$OUT/second.log")" "Nothing changed"
	assertEquals "no changed: line" "" "$(grep '\] changed:' "$OUT/second.log")"
	assertEquals "PostgreSQL was not restarted" "$pm_before" "$(psql_super -c 'SELECT pg_postmaster_start_time()')"
	assertEquals "the agent was not restarted" "$agent_before" \
		"$(tc_exec systemctl show -p ActiveEnterTimestampMonotonic --value checkpoint-agent.service)"
	tl_log "no-change re-run: ${SECONDS_TAKEN}s"
	run_provision dry-run-again --dry-run
	assertEquals 0 "$RC"
	assertContains "a dry run on a provisioned server plans nothing" "$(cat "$OUT/dry-run-again.log")" \
		"0 change(s) would be made"
}

# render_tuning POOL_SIZE: the tuning file the tune step writes for this pool
# size (tune-values.sh and the template, as the step renders them).
render_tuning() {
	# shellcheck disable=SC2016 # expanded inside the container
	tc_exec bash -c '. /opt/checkpoint-agent/provision/lib/common.sh
		mapfile -t v < <(/opt/checkpoint-agent/provision/tune-values.sh --pool-size "$1" --instances 1)
		cpa_render /opt/checkpoint-agent/provision/templates/postgresql-tuning.conf.j2 "${v[@]}"' bash "$1"
}

test_03b_a_reload_or_restart_an_interrupted_run_did_not_make_is_made_by_the_next() {
	local conf=/etc/postgresql/15/main/conf.d/50-checkpoint-tuning.conf
	assertEquals "max_connections for pools of 20" 35 "$(psql_super -c 'SHOW max_connections')"
	# A run with --pool-size 30 cut short after its reload: the file is in
	# place and loaded, the restart max_connections needs was never made.
	render_tuning 30 >"$OUT/tuning-30" || fail "rendering failed"
	cp "$OUT/tuning-30" "$TC_ROOT$conf"
	tc_exec pg_ctlcluster 15 main reload
	sleep 1
	assertEquals "the restart waits" t "$(psql_super -c "SELECT pending_restart FROM pg_settings WHERE name = 'max_connections'")"
	run_provision lost-restart --pool-size 30
	assertEquals 0 "$RC"
	# The first step that looks (role-db) makes it.
	assertContains "$(cat "$OUT/lost-restart.log")" "max_connections need a restart"
	assertEquals "the next run made the restart" 45 "$(psql_super -c 'SHOW max_connections')"
	# A run cut short after writing the file and before its reload.
	render_tuning 20 >"$OUT/tuning-20" || fail "rendering failed"
	cp "$OUT/tuning-20" "$TC_ROOT$conf"
	run_provision lost-reload
	assertEquals 0 "$RC"
	assertContains "$(cat "$OUT/lost-reload.log")" "changed by an earlier run that did not finish: $conf"
	assertEquals "the next run reloaded and restarted" 35 "$(psql_super -c 'SHOW max_connections')"
	run_provision settled
	assertContains "and then nothing is left to do" "$(cat "$OUT/settled.log")" "Nothing changed"
}

test_03c_a_tuning_file_postgresql_rejects_is_put_back() {
	local conf=/etc/postgresql/15/main/conf.d/50-checkpoint-tuning.conf before
	before=$(md5sum <"$TC_ROOT$conf")
	# 1,250,000 connections: beyond what PostgreSQL accepts (262143).
	run_provision rejected --step tune --pool-size 100000 --pool-instances 10
	assertEquals "the step fails" 70 "$RC"
	assertContains "$(cat "$OUT/rejected.log")" "PostgreSQL rejects settings"
	assertContains "$(cat "$OUT/rejected.log")" "the previous one, back"
	assertEquals "the previous tuning file is back" "$before" "$(md5sum <"$TC_ROOT$conf")"
	assertEquals "the server runs on as it was" 35 "$(psql_super -c 'SHOW max_connections')"
	assertEquals "nothing left for a later reload to load" "" \
		"$(psql_super -c "SELECT name FROM pg_file_settings WHERE error IS NOT NULL AND error <> 'setting could not be applied'")"
}

test_04_a_foreign_target_is_refused_and_nothing_moves() {
	mkdir -p "$DATA/foreign" && echo "someone else's" >"$DATA/foreign/README"
	run_provision foreign --data-dir /mnt/data/foreign
	assertEquals "refused" 73 "$RC"
	assertContains "$(cat "$OUT/foreign.log")" "is not empty and does not hold this cluster's data"
	assertContains "the resume command" "$(cat "$OUT/foreign.log")" "--from datadir --data-dir /mnt/data/foreign"
	assertEquals "/mnt/data/postgresql/15/main" "$(psql_super -c 'SHOW data_directory')"
	assertEquals "the foreign file is untouched" "someone else's" "$(cat "$DATA/foreign/README")"
	rm -rf "$DATA/foreign"
}

test_04b_a_move_cut_short_by_a_hangup_puts_postgresql_back_on_the_old_directory() {
	local before pid i log
	db_sql "CREATE TABLE IF NOT EXISTS hangup_probe AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g" >/dev/null
	before=$(db_sql "SELECT count(*) || ' ' || md5(string_agg(h, '' ORDER BY g)) FROM hangup_probe")
	# An SSH session that drops: provision.sh leads a session of its own,
	# and the whole session is hung up once the cluster is stopped for the move.
	pid=$(tc_exec sh -c 'setsid /opt/checkpoint-agent/provision/provision.sh --data-dir /mnt/data/postgresql/15/cut \
		</dev/null >/root/cut.log 2>&1 & echo $!')
	for i in $(seq 1 600); do
		grep -q "stopped PostgreSQL for the move" "$TC_ROOT/root/cut.log" 2>/dev/null && break
		sleep 0.1
	done
	assertContains "the move began" "$(cat "$TC_ROOT/root/cut.log")" "stopped PostgreSQL for the move"
	tc_exec kill -HUP -- "-$pid"
	for i in $(seq 1 600); do
		tc_exec kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	assertFalse "provision.sh has ended" "tc_exec kill -0 $pid 2>/dev/null"
	log=$(cat "$TC_ROOT/var/lib/checkpoint-provision/interrupted.log" 2>/dev/null)
	assertContains "the step says what it did, in the log a hang-up leaves: $log" "$log" "interrupted by SIGHUP"
	assertContains "$log" "PostgreSQL runs again on /mnt/data/postgresql/15/main"
	assertEquals "PostgreSQL is back on the old directory" "/mnt/data/postgresql/15/main" "$(psql_super -c 'SHOW data_directory')"
	assertEquals "its configuration names it" "/mnt/data/postgresql/15/main" \
		"$(tc_exec pg_conftool -s 15 main show data_directory)"
	assertEquals "the rows are intact" "$before" "$(db_sql "SELECT count(*) || ' ' || md5(string_agg(h, '' ORDER BY g)) FROM hangup_probe")"
	assertEquals "the unfinished copy is gone" "" "$(ls -A "$DATA/postgresql/15/cut" 2>/dev/null)"
	assertTrue "the lock is free" "tc_exec flock -n /run/lock/checkpoint-provision.lock true"
	db_sql "DROP TABLE hangup_probe" >/dev/null
	tc_exec rm -f /var/lib/checkpoint-provision/interrupted.log
}

test_05_a_cluster_with_data_is_relocated_and_every_checksum_matches() {
	local before after
	db_sql "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint, metadata)
			SELECT 'thread-' || g, 'cp-' || g, jsonb_build_object('v', g, 'channel_values', repeat(md5(g::text), 100)), '{\"step\": 1}'
			FROM generate_series(1, 2000) g;
		INSERT INTO checkpoint_blobs (thread_id, channel, version, type, blob)
			SELECT 'thread-' || g, 'messages', '1', 'bytes', convert_to(repeat(md5(g::text), 300), 'UTF8')
			FROM generate_series(1, 2000) g;
		INSERT INTO checkpoint_writes (thread_id, checkpoint_id, task_id, idx, channel, type, blob)
			SELECT 'thread-' || g, 'cp-' || g, 'task', 0, 'messages', 'bytes', '\\x00ff'::bytea
			FROM generate_series(1, 2000) g" >/dev/null || fail "loading rows failed"
	before=$(table_checksums)
	assertContains "$before" "checkpoints 2000 "
	run_provision relocate --data-dir /mnt/data/postgresql/15/relocated
	assertEquals "relocation exit code" 0 "$RC"
	assertContains "$(cat "$OUT/relocate.log")" "row counts and checksums match"
	assertEquals "/mnt/data/postgresql/15/relocated" "$(psql_super -c 'SHOW data_directory')"
	after=$(table_checksums)
	assertEquals "every table's checksum matches" "$before" "$after"
	assertTrue "the old directory is kept" "[ -f '$DATA/postgresql/15/main/PG_VERSION' ]"
	assertEquals active "$(tc_exec systemctl is-active checkpoint-agent.service)"
	printf '%s\n' "$before" >"$OUT/checksums"
	# The copy reached the disk before the configuration named it.
	assertEquals "flushed, then switched" "flushed switched" "$(sed -n \
		-e 's/.*flushed the copy on \/mnt\/data\/postgresql\/15\/relocated to the disk.*/flushed/p' \
		-e "s/.*data_directory = '\/mnt\/data\/postgresql\/15\/relocated'.*/switched/p" "$OUT/relocate.log" |
		awk '!seen[$0]++' | paste -sd ' ')"
}

test_05b_a_target_newer_than_the_current_directory_is_refused() {
	# The configuration pointed back by hand at the old directory, which is
	# older than the relocated one: moving "back" onto the newer one must
	# not remove it.
	tc_exec systemctl stop checkpoint-agent.service
	tc_exec pg_ctlcluster 15 main stop
	tc_exec pg_conftool 15 main set data_directory /mnt/data/postgresql/15/main
	run_provision newer --step datadir --data-dir /mnt/data/postgresql/15/relocated
	assertEquals "refused" 73 "$RC"
	assertContains "$(cat "$OUT/newer.log")" "not provably older"
	assertContains "$(cat "$OUT/newer.log")" "is later than the cluster's"
	assertTrue "the newer directory is untouched" "[ -f '$DATA/postgresql/15/relocated/PG_VERSION' ]"
	tc_exec pg_conftool 15 main set data_directory /mnt/data/postgresql/15/relocated
	tc_exec pg_ctlcluster 15 main start
	tc_exec systemctl start checkpoint-agent.service
	assertEquals "the rows are intact" "$(cat "$OUT/checksums")" "$(table_checksums)"
}

test_06_rollback_datadir_keeps_the_rows_and_remove_old_removes_the_copy() {
	local rc=0
	tc_exec "$ROLLBACK" datadir --remove-old >"$OUT/rollback.log" 2>&1 || rc=$?
	[ "$rc" = 0 ] || tail -n 30 "$OUT/rollback.log" >&2
	assertEquals "rollback exit code" 0 "$rc"
	assertEquals "/mnt/data/postgresql/15/main" "$(psql_super -c 'SHOW data_directory')"
	assertEquals "the rows are intact" "$(cat "$OUT/checksums")" "$(table_checksums)"
	assertFalse "--remove-old removed the relocated copy" "[ -e '$DATA/postgresql/15/relocated' ]"
	assertEquals "the agent watches the data directory it is on" 1 \
		"$(tc_exec grep -c 'data_directory = "/mnt/data/postgresql/15/main"' /etc/checkpoint-agent/agent.conf)"
	rc=0
	tc_exec "$ROLLBACK" datadir >"$OUT/rollback2.log" 2>&1 || rc=$?
	assertEquals 0 "$rc"
	assertContains "a second rollback has nothing to do" "$(cat "$OUT/rollback2.log")" "already"
}

test_07_after_a_restart_postgresql_is_on_the_disk_and_the_agent_ready() {
	tc_reboot || fail "the container did not come back"
	assertEquals "/mnt/data/postgresql/15/main" "$(psql_super -c 'SHOW data_directory')"
	assertEquals active "$(tc_exec systemctl is-active checkpoint-agent.service)"
	# Type=notify: active means the agent sent READY=1 (schema applied, checks passed).
	assertEquals "health check OK" 0 "$(tc_exec runuser -u checkpoint-agent -- checkpoint-agent check >/dev/null 2>&1; echo $?)"
	assertEquals "the rows survived" "$(cat "$OUT/checksums")" "$(table_checksums)"
}

test_08_the_password_is_nowhere_it_should_not_be() {
	local found pw
	# The passwords themselves are the pattern (grep -f): the application's
	# and the agent's role's, one a line; they are on no command line here either.
	pw=/root/passwords
	tc_exec sh -c "umask 077; sed -n 's/^\(agent_\)\{0,1\}password=//p' /etc/checkpoint-agent/credentials >$pw"
	assertEquals "there are two passwords" 2 "$(tc_exec grep -c . $pw)"
	found=$(tc_exec sh -c "grep -lsF -f $pw /proc/[0-9]*/cmdline")
	assertEquals "command lines" "" "$found"
	found=$(tc_exec sh -c "for p in /proc/[0-9]*; do [ \"\$(stat -c %u \$p)\" != 0 ] && grep -lsF -f $pw \$p/environ; done; true")
	assertEquals "environments of non-root processes" "" "$found"
	found=$(tc_exec sh -c "journalctl --no-pager -o cat | grep -cF -f $pw; grep -rlsF -f $pw /var/log")
	assertEquals "journal and /var/log" "0" "$found"
	found=$(tc_exec sh -c "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -type f -perm -0004 -print0 | xargs -0 grep -lsF -f $pw")
	assertEquals "world-readable files" "" "$found"
	found=$(grep -rlsF -f "$TC_ROOT$pw" "$OUT")
	assertEquals "provisioning's own output" "" "$found"
	assertTrue "the scan finds it where it is (the env file)" "tc_exec grep -qF -f $pw /etc/checkpoint-agent/app.env"
	tc_exec rm -f "$pw"
	# The repository passphrase, after a backup ran through its unit.
	tc_exec systemctl start checkpoint-backup-diff.service || fail "a differential backup through its unit"
	tc_exec sh -c "umask 077; sed -n 's/^repo1-cipher-pass=//p' $CIPHER_CONF >/root/pattern"
	assertTrue "there is a passphrase" "tc_exec test -s /root/pattern"
	found=$(tc_exec sh -c "grep -lsF -f /root/pattern /proc/[0-9]*/cmdline /proc/[0-9]*/environ; journalctl --no-pager -o cat | grep -cF -f /root/pattern; grep -rlsF -f /root/pattern /var/log /var/lib/checkpoint-backup /mnt/backup")
	assertEquals "passphrase: command lines, environments, journal, logs, the repository" "0" "$found"
	found=$(tc_exec sh -c "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -type f -perm -0004 -print0 | xargs -0 grep -lsF -f /root/pattern")
	assertEquals "passphrase: world-readable files" "" "$found"
	found=$(grep -rlsF -f "$TC_ROOT/root/pattern" "$OUT")
	assertEquals "passphrase: provisioning's output" "" "$found"
	tc_exec rm -f /root/pattern
}

test_09_the_application_connects_with_the_password_only_from_allowed_addresses() {
	local out
	out=$(app_psql -h localhost -c 'SELECT current_user')
	assertEquals "with the password" ai_agent "$out"
	out=$(tc_exec env PGPASSFILE=/nonexistent psql -X -At -w -h localhost -U ai_agent -d langgraph_checkpoints -c 'SELECT 1' 2>&1)
	assertContains "without it" "$out" "no password supplied"
	out=$(app_psql -h localhost -d postgres -c 'SELECT 1')
	assertContains "not another database" "$out" "no pg_hba.conf entry"
	# An address of the container's own (private) loopback, which pg_hba
	# does not allow: PostgreSQL listens there, but refuses the role.
	nsenter -t "$TC_PID" -n ip addr add "$OTHER_ADDR/32" dev lo || fail "cannot add $OTHER_ADDR"
	run_provision listen --listen "localhost,$OTHER_ADDR"
	assertEquals 0 "$RC"
	out=$(app_psql -h "$OTHER_ADDR" -c 'SELECT 1')
	assertContains "from a non-allowed address" "$out" "no pg_hba.conf entry for host \"$OTHER_ADDR\""
	run_provision allow --listen "localhost,$OTHER_ADDR" --allow-cidr "$OTHER_ADDR/32" --public-host "$OTHER_ADDR"
	assertEquals 0 "$RC"
	assertContains "pg_hba changes need only a reload" "$(cat "$OUT/allow.log")" "reloaded PostgreSQL for pg_hba.conf"
	out=$(app_psql -h "$OTHER_ADDR" -c 'SELECT current_user')
	assertEquals "once allowed" ai_agent "$out"
	out=$(app_psql -d "dbname=langgraph_checkpoints host=$OTHER_ADDR sslmode=disable" -c 'SELECT 1')
	assertContains "but never without TLS" "$out" "no pg_hba.conf entry for host \"$OTHER_ADDR\""
	assertContains "$out" "no encryption"
	# The remote clients' env file: the public host, TLS required.
	assertEquals "app-remote.env" "640 root:checkpoint-app" "$(tc_exec stat -c '%a %U:%G' /etc/checkpoint-agent/app-remote.env)"
	assertContains "$(tc_exec grep '^CHECKPOINT_DB_URI=' /etc/checkpoint-agent/app-remote.env)" "@$OTHER_ADDR:5432/langgraph_checkpoints?sslmode=require"
	out=$(remote_uri_psql -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	assertEquals "the remote URI connects over TLS" t "$out"
	tc_exec rm -f /root/.pgpass
}

# remote_uri_psql [psql args]: psql with the URI of app-remote.env, as the
# application on another host would use it (the URI read by psql from a
# 0600 file's variable, not put on a command line).
remote_uri_psql() {
	# shellcheck disable=SC2016 # expanded inside the container
	tc_exec sh -c 'umask 077; sed -n "s/^CHECKPOINT_DB_URI=//p" /etc/checkpoint-agent/app-remote.env >/root/remote-uri
		psql -X -At -w "$(cat /root/remote-uri)" "$@"; rc=$?; rm -f /root/remote-uri; exit $rc' sh "$@" 2>&1
}

test_09b_a_given_certificate_and_ca_make_remote_clients_verify_the_server() {
	local out
	# A CA of the test's own and a server certificate for the public address.
	tc_exec sh -c "set -e; umask 077; mkdir -p /root/ca; cd /root/ca
		openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=test-ca -keyout ca.key -out ca.crt 2>/dev/null
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=$OTHER_ADDR -keyout server.key -out server.csr 2>/dev/null
		printf 'subjectAltName=IP:$OTHER_ADDR\n' >ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile ext -out server.crt 2>/dev/null" ||
		fail "no test CA"
	run_provision given-cert --listen "localhost,$OTHER_ADDR" --allow-cidr "$OTHER_ADDR/32" --public-host "$OTHER_ADDR" \
		--tls-cert /root/ca/server.crt --tls-key /root/ca/server.key --tls-ca /root/ca/ca.crt
	assertEquals 0 "$RC"
	assertContains "$(tc_exec grep '^CHECKPOINT_DB_URI=' /etc/checkpoint-agent/app-remote.env)" \
		"?sslmode=verify-full&sslrootcert=/etc/checkpoint-agent/tls-ca.crt"
	out=$(remote_uri_psql -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	assertEquals "verify-full against the given CA" t "$out"
	# The same URI against a server whose certificate that CA did not sign.
	tc_exec cp /etc/checkpoint-agent/tls-ca.crt /root/ca/given-ca.crt
	tc_exec sh -c 'openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=other -keyout /dev/null -out /etc/checkpoint-agent/tls-ca.crt 2>/dev/null'
	out=$(remote_uri_psql -c 'SELECT 1')
	assertContains "another CA: refused" "$out" "certificate verify failed"
	tc_exec cp /root/ca/given-ca.crt /etc/checkpoint-agent/tls-ca.crt
	run_provision bad-key --tls-cert /root/ca/server.crt --tls-key /root/ca/ca.key --tls-ca /root/ca/ca.crt --step role-db
	assertEquals "a key that is not the certificate's" 78 "$RC"
	assertContains "$(cat "$OUT/bad-key.log")" "is not the private key of /root/ca/server.crt"
	# Back to a self-signed certificate, local clients only.
	run_provision local-again
	assertEquals 0 "$RC"
	assertContains "$(cat "$OUT/local-again.log")" "generated a self-signed TLS certificate"
	assertFalse "no other host: no remote env file" "tc_exec test -e /etc/checkpoint-agent/app-remote.env"
}

test_10_a_password_given_by_file_replaces_the_stored_one_everywhere() {
	local out agent_before agent_pw_before
	agent_before=$(tc_exec systemctl show -p ActiveEnterTimestampMonotonic --value checkpoint-agent.service)
	agent_pw_before=$(md5sum <"$TC_ROOT/etc/checkpoint-agent/db-password")
	tc_exec sh -c 'umask 077; tr -dc A-Za-z0-9 </dev/urandom | head -c 24 >/root/new-password; echo >>/root/new-password'
	run_provision new-password --password-file /root/new-password
	assertEquals 0 "$RC"
	assertContains "$(cat "$OUT/new-password.log")" "set the password of role ai_agent"
	assertEquals "the credentials file has it" "$(cat "$TC_ROOT/root/new-password")" \
		"$(sed -n 's/^password=//p' "$TC_ROOT/etc/checkpoint-agent/credentials")"
	assertTrue "the env file has it" "grep -qF -f '$TC_ROOT/root/new-password' '$TC_ROOT/etc/checkpoint-agent/app.env'"
	# The agent logs in as its own role: its password and the service stay.
	assertEquals "the agent's own password is untouched" "$agent_pw_before" "$(md5sum <"$TC_ROOT/etc/checkpoint-agent/db-password")"
	assertEquals "the agent was not restarted" "$agent_before" \
		"$(tc_exec systemctl show -p ActiveEnterTimestampMonotonic --value checkpoint-agent.service)"
	assertEquals "its check still passes" 0 "$(tc_exec runuser -u checkpoint-agent -- checkpoint-agent check >/dev/null 2>&1; echo $?)"
	out=$(app_psql -h localhost -c 'SELECT current_user')
	assertEquals "the application connects with the new password" ai_agent "$out"
	run_provision new-password-again --password-file /root/new-password
	assertContains "the same file again changes nothing" "$(cat "$OUT/new-password-again.log")" "Nothing changed"
	tc_exec rm -f /root/new-password /root/.pgpass
}

test_11_rollback_schema_calls_the_agent_and_the_service_migrates_forward_again() {
	local rc=0
	tc_exec "$ROLLBACK" schema --to 8 --dry-run >"$OUT/rollback-schema-plan.log" 2>&1 || rc=$?
	assertEquals "dry run" 0 "$rc"
	assertEquals "the dry run changes nothing" 9 "$(db_sql 'SELECT max(v) FROM checkpoint_migrations')"
	rc=0
	tc_exec "$ROLLBACK" schema --to 8 >"$OUT/rollback-schema.log" 2>&1 || rc=$?
	[ "$rc" = 0 ] || cat "$OUT/rollback-schema.log" >&2
	assertEquals "rollback exit code" 0 "$rc"
	assertEquals "at v8" 8 "$(db_sql 'SELECT max(v) FROM checkpoint_migrations')"
	assertContains "it warns about the service" "$(cat "$OUT/rollback-schema.log")" "applies pending migrations when it starts"
	assertContains "it points at the last resort" "$(cat "$OUT/rollback-schema.log")" "restore.sh --to-time"
	tc_exec systemctl restart checkpoint-agent.service || fail "the agent did not restart"
	assertEquals "the service migrated forward again" 9 "$(db_sql 'SELECT max(v) FROM checkpoint_migrations')"
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

test_12_restore_to_a_time_brings_back_exactly_its_rows() {
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

test_13_a_drill_leaves_the_live_cluster_untouched() {
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

test_14_restore_bad_input_exits_64_65_69_and_changes_nothing() {
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

test_15_a_server_of_the_older_layout_is_brought_to_the_new_one() {
	local pw out
	# The layout before the agent had a role of its own: it logged in as the
	# application's role, which was a member of pg_read_all_stats.
	tc_exec systemctl stop checkpoint-agent.service
	psql_super -c "GRANT pg_read_all_stats TO ai_agent" >/dev/null
	psql_super -c "DROP ROLE checkpoint_monitor" >/dev/null
	psql_super -c "DROP ROLE checkpoint_monitor_as_owner" >/dev/null
	tc_exec sed -i -e 's|postgresql://checkpoint_monitor@|postgresql://ai_agent@|' -e '/owner_role/d' /etc/checkpoint-agent/agent.conf
	tc_exec sed -i '/^agent_/d' /etc/checkpoint-agent/credentials
	tc_exec sh -c 'sed -n "s/^password=//p" /etc/checkpoint-agent/credentials >/etc/checkpoint-agent/db-password'
	tc_exec systemctl start checkpoint-agent.service || fail "the older layout's agent did not start"
	run_provision upgrade
	assertEquals "upgrade exit code" 0 "$RC"
	out=$(cat "$OUT/upgrade.log")
	assertContains "$out" "changed:  role ai_agent is not a member of pg_read_all_stats"
	assertContains "$out" "changed:  role checkpoint_monitor exists"
	assertContains "$out" "agent password file"
	assertEquals "the application's role reads no other session" f \
		"$(psql_super -c "SELECT pg_has_role('ai_agent', 'pg_read_all_stats', 'MEMBER')")"
	pw=$(sed -n 's/^password=//p' "$TC_ROOT/etc/checkpoint-agent/credentials")
	assertNotEquals "the agent's password file no longer holds the application's password" "$pw" \
		"$(cat "$TC_ROOT/etc/checkpoint-agent/db-password")"
	assertEquals active "$(tc_exec systemctl is-active checkpoint-agent.service)"
	assertContains "the agent checks as its own role" \
		"$(tc_exec runuser -u checkpoint-agent -- checkpoint-agent check 2>&1 | grep ' connect:')" "connected as checkpoint_monitor@"
	assertEquals "the agent's session is its own role's" checkpoint_monitor \
		"$(psql_super -c "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE application_name = 'checkpoint-agent'")"
	run_provision upgrade-again
	assertContains "a second run changes nothing" "$(cat "$OUT/upgrade-again.log")" "Nothing changed"
}

tl_run
