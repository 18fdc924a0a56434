#!/bin/bash
# t5005-provision-datadir: the checks and the verification of the data
# directory move (provision/lib/datadir.sh), on temporary folders, tmpfs
# mounts and throwaway clusters; never on the machine's own clusters (the
# move itself, with postgresql-common's tools, runs in t5500's container).
# Refusals: a foreign or non-empty target, a copy with a postmaster.pid, WAL
# or tablespaces outside the directory, too little space, a target that
# cannot be 0700 postgres; the mount point warning and --require-mount; the
# same directory through a symlink or bind mount; the per-table checksums
# that prove a copy; content written only through the destination folder.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=provision/lib/common.sh
. "$TL_ROOT/provision/lib/common.sh"
# shellcheck source=provision/lib/datadir.sh
. "$TL_ROOT/provision/lib/datadir.sh"

MOUNTS=()

suite_setup() {
	tl_pg_start || return 1
	export PGHOST=$TL_PGSOCK
	CPA_PG_PORT=$TL_PGPORT
	CPA_PG_BIN=$TL_PGBIN
	CPA_SPACE_MARGIN_PERCENT=20
	CPA_REQUIRE_MOUNT=0
	CPA_DRY_RUN=0
	SYSID=$(cpa_datadir_sysid "$TL_PGDATA")
}

suite_teardown() {
	local m
	for m in "${MOUNTS[@]}"; do
		umount "$m" 2>/dev/null
	done
}

# tmpfs_at DIR SIZE: a small file system of its own.
tmpfs_at() {
	mkdir -p "$1" && mount -t tmpfs -o "size=$2,mode=0755" cpa-test "$1" || return 1
	MOUNTS+=("$1")
}

# clean_copy DEST: a copy of the throwaway cluster as a move leaves the old
# directory: taken while it is cleanly shut down. The cluster then runs on.
clean_copy() {
	tl_pg_stop_clean || return 1
	cp -a "$TL_PGDATA" "$1" || return 1
	tl_pg_restart
}

tl_pg_stop_clean() {
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_PGDATA" -m fast -w stop >/dev/null 2>&1
}

# in_subshell CMD...: run a function that may exit (cpa_die); print its
# output and return its exit code.
in_subshell() {
	(
		CPA_STEP=datadir-test
		"$@"
	) 2>&1
}

test_01_empty_means_absent_or_nothing_but_lost_and_found() {
	local d
	d=$(tl_tmpdir)
	assertTrue "absent" "cpa_dir_is_empty '$d/none'"
	assertTrue "empty" "cpa_dir_is_empty '$d'"
	mkdir "$d/lost+found"
	assertTrue "lost+found only" "cpa_dir_is_empty '$d'"
	touch "$d/.hidden"
	assertFalse "a dot file counts" "cpa_dir_is_empty '$d'"
}

test_02_the_target_is_told_apart_by_its_system_identifier() {
	local d copy
	d=$(tl_tmpdir)
	assertNotNull "the throwaway cluster has a system identifier" "$SYSID"
	assertEquals empty "$(cpa_target_state "$d/new" "$SYSID" "$TL_PGDATA")"
	copy=$d/copy
	clean_copy "$copy" || fail "no copy"
	assertEquals "an older copy of this cluster" ours "$(cpa_target_state "$copy" "$SYSID" "$TL_PGDATA")"
	assertEquals "another cluster's data" foreign "$(cpa_target_state "$copy" 1234567890 "$TL_PGDATA")"
	mkdir "$d/files" && echo x >"$d/files/notes.txt"
	assertEquals "other files" foreign "$(cpa_target_state "$d/files" "$SYSID" "$TL_PGDATA")"
}

test_02b_a_copy_is_removable_only_when_provably_older() {
	local d port out
	d=$(tl_tmpdir)
	chown postgres: "$d"
	clean_copy "$d/old" || fail "no copy"
	tl_sql "CREATE TABLE IF NOT EXISTS t02b (x int); INSERT INTO t02b VALUES (1); CHECKPOINT" >/dev/null
	assertEquals "the cluster went on: the copy is older" ours "$(cpa_target_state "$d/old" "$SYSID" "$TL_PGDATA")"
	# The copy, started by hand (a configuration pointed back at it) and
	# written to: now it is newer than the cluster.
	cp -a "$d/old" "$d/newer"
	port=$(tl_free_port)
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d/newer" -o "-p $port -k $d -c listen_addresses=''" -l "$d/log" -w start >/dev/null ||
		fail "the copy did not start"
	TL_CLUSTERS+=("$d/newer")
	PGHOST=$d CPA_PG_PORT=$port cpa_psql -d "$TL_APP_DB" -c "CREATE TABLE only_in_the_copy AS SELECT generate_series(1, 50000) AS x; CHECKPOINT" >/dev/null
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d/newer" -m fast -w stop >/dev/null
	assertEquals "a newer copy is never removed" not-older "$(cpa_target_state "$d/newer" "$SYSID" "$TL_PGDATA")"
	out=$(cpa_older_copy_problem "$d/newer" "$TL_PGDATA")
	assertContains "$out" "is later than the cluster's"
	# A copy a server crashed on (state "in production"): cp -a of a live directory.
	cp -a "$TL_PGDATA" "$d/live"
	rm -f "$d/live/postmaster.pid"
	assertEquals "a copy taken from a running server" not-older "$(cpa_target_state "$d/live" "$SYSID" "$TL_PGDATA")"
	assertContains "$(cpa_older_copy_problem "$d/live" "$TL_PGDATA")" "'in production', not 'shut down'"
	# A stopped standby: "shut down in recovery".
	cp -a "$d/old" "$d/standby"
	touch "$d/standby/standby.signal"
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d/standby" -o "-p $port -k $d -c listen_addresses=''" -l "$d/log2" -w start >/dev/null ||
		fail "the standby did not start"
	TL_CLUSTERS+=("$d/standby")
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d/standby" -m fast -w stop >/dev/null
	assertEquals "a stopped standby" not-older "$(cpa_target_state "$d/standby" "$SYSID" "$TL_PGDATA")"
	assertContains "$(cpa_older_copy_problem "$d/standby" "$TL_PGDATA")" "'shut down in recovery'"
	assertEquals "without the current directory nothing is provably older" not-older "$(cpa_target_state "$d/old" "$SYSID")"
}

test_03_space_needed_is_the_data_plus_margin_plus_64_mb() {
	assertEquals $((1000 * 120 / 100 + 65536)) "$(cpa_space_needed_kb 1000 20)"
	assertEquals $((2048000 + 65536)) "$(cpa_space_needed_kb 2048000 0)"
}

test_04_too_little_space_is_refused_with_73() {
	local d out rc=0
	d=$(tl_tmpdir)
	tmpfs_at "$d/small" 16m || fail "no tmpfs"
	out=$(in_subshell cpa_check_space "$TL_PGDATA" "$d/small/postgresql/15/main") || rc=$?
	assertEquals 73 "$rc"
	assertContains "$out" "not enough free space"
	assertContains "$out" "resume with"
	tmpfs_at "$d/big" 2g || fail "no tmpfs"
	rc=0
	out=$(in_subshell cpa_check_space "$TL_PGDATA" "$d/big/postgresql/15/main") || rc=$?
	assertEquals "room enough: $out" 0 "$rc"
}

test_05_not_a_mount_point_warns_and_require_mount_refuses() {
	local d out rc=0
	d=$(tl_tmpdir)
	out=$(in_subshell cpa_check_mount "$d")
	assertContains "$out" "WARNING:"
	assertContains "$out" "not a separate mount point"
	out=$(CPA_REQUIRE_MOUNT=1 in_subshell cpa_check_mount "$d") || rc=$?
	assertEquals 73 "$rc"
	assertContains "$out" "--require-mount"
	tmpfs_at "$d/disk" 16m || fail "no tmpfs"
	rc=0
	out=$(CPA_REQUIRE_MOUNT=1 in_subshell cpa_check_mount "$d/disk") || rc=$?
	assertEquals "a mount point passes: $out" 0 "$rc"
}

test_06_the_target_is_made_0700_for_postgres() {
	local d
	d=$(tl_tmpdir)
	in_subshell cpa_prepare_target "$d/root/postgresql/15/main" >/dev/null || fail "prepare failed"
	assertEquals "700 postgres:postgres" "$(stat -c '%a %U:%G' "$d/root/postgresql/15/main")"
	assertEquals "parents it made belong to postgres" "755 postgres:postgres" "$(stat -c '%a %U:%G' "$d/root/postgresql")"
	chmod 0755 "$d/root/postgresql/15/main"
	in_subshell cpa_prepare_target "$d/root/postgresql/15/main" >/dev/null || fail "prepare failed"
	assertEquals "a loose mode is tightened" 700 "$(stat -c '%a' "$d/root/postgresql/15/main")"
}

test_07_a_target_that_cannot_be_0700_for_postgres_is_refused() {
	local d out rc=0
	d=$(tl_tmpdir)
	mkdir -p "$d/ro/target"
	mount --bind "$d/ro" "$d/ro" || fail "no bind mount"
	MOUNTS+=("$d/ro")
	mount -o remount,bind,ro "$d/ro" || fail "no read-only remount"
	out=$(in_subshell cpa_prepare_target "$d/ro/target") || rc=$?
	assertEquals "read-only file system: $out" 73 "$rc"
	assertContains "$out" "cannot be made 0700"
	mkdir -p "$d/closed/x"
	chmod 0700 "$d/closed"
	rc=0
	out=$(in_subshell cpa_prepare_target "$d/closed/x/target") || rc=$?
	assertEquals "a parent postgres cannot pass: $out" 73 "$rc"
	assertContains "$out" "the postgres user cannot use"
}

test_08_checksums_match_on_a_copy_and_see_a_changed_row() {
	local d before after port
	tl_sql "CREATE TABLE t1 (id int PRIMARY KEY, doc jsonb, b bytea);
		INSERT INTO t1 SELECT g, jsonb_build_object('n', g), decode(md5(g::text), 'hex') FROM generate_series(1, 2000) g;
		CREATE SCHEMA s2; CREATE TABLE s2.empty (x int);" >/dev/null
	before=$(cpa_table_checksums)
	assertContains "$before" "$TL_APP_DB public.t1 2000 "
	assertContains "$before" "$TL_APP_DB s2.empty 0 0"
	# A copy, started as a second server: the same checksums.
	d=$(tl_tmpdir)
	chown postgres: "$d"
	tl_pg_stop
	cp -a "$TL_PGDATA" "$d/data"
	tl_pg_restart || fail "restart failed"
	port=$(tl_free_port)
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d/data" -o "-p $port -k $d" -l "$d/log" -w start >/dev/null ||
		fail "the copy did not start"
	TL_CLUSTERS+=("$d/data")
	after=$(PGHOST=$d CPA_PG_PORT=$port cpa_table_checksums)
	assertEquals "the copy has the same rows" "$before" "$after"
	PGHOST=$d CPA_PG_PORT=$port cpa_psql -d "$TL_APP_DB" -c "UPDATE t1 SET doc = '{\"n\": 0}' WHERE id = 7" >/dev/null
	after=$(PGHOST=$d CPA_PG_PORT=$port cpa_table_checksums)
	assertNotEquals "one changed row changes the checksum" "$before" "$after"
	assertContains "the row count alone would not show it" "$after" "$TL_APP_DB public.t1 2000 "
}

test_09b_functions_extensions_settings_and_schemas_are_user_data_too() {
	local d port report
	d=$(tl_tmpdir)
	chown postgres: "$d"
	runuser -u postgres -- "$TL_PGBIN/initdb" -D "$d/data" -U postgres --auth-local=peer >/dev/null 2>&1 || fail "initdb"
	port=$(tl_free_port)
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d/data" -o "-p $port -k $d -c listen_addresses=''" -l "$d/log" -w start >/dev/null ||
		fail "the fresh cluster did not start"
	TL_CLUSTERS+=("$d/data")
	assertEquals "fresh" "" "$(PGHOST=$d CPA_PG_PORT=$port cpa_user_data_report)"
	# Each alone would be lost if the cluster were dropped and recreated.
	PGHOST=$d CPA_PG_PORT=$port cpa_psql -d postgres -c "ALTER SYSTEM SET work_mem = '32MB'" >/dev/null
	assertContains "ALTER SYSTEM" "$(PGHOST=$d CPA_PG_PORT=$port cpa_user_data_report)" \
		"setting in postgresql.auto.conf: work_mem"
	PGHOST=$d CPA_PG_PORT=$port cpa_psql -d template1 -c "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'" >/dev/null
	PGHOST=$d CPA_PG_PORT=$port cpa_psql -d postgres -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
		CREATE SCHEMA empty_one; CREATE TYPE mood AS ENUM ('ok'); ALTER DATABASE postgres SET statement_timeout = '1min'" >/dev/null
	report=$(PGHOST=$d CPA_PG_PORT=$port cpa_user_data_report)
	assertContains "$report" "functions in database template1: 1"
	assertContains "$report" "extensions in database postgres: pg_stat_statements"
	assertContains "$report" "schemas in database postgres: empty_one"
	assertContains "$report" "types in database postgres: 1"
	assertContains "$report" "per-database or per-role settings: 1"
}

test_09_user_data_is_found_in_databases_roles_and_tables() {
	local d port report
	report=$(cpa_user_data_report)
	assertContains "$report" "database $TL_APP_DB"
	assertContains "$report" "role $TL_APP_ROLE"
	# A fresh initdb has none.
	d=$(tl_tmpdir)
	chown postgres: "$d"
	runuser -u postgres -- "$TL_PGBIN/initdb" -D "$d/data" -U postgres --auth-local=peer >/dev/null 2>&1 || fail "initdb"
	port=$(tl_free_port)
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d/data" -o "-p $port -k $d -c listen_addresses=''" -l "$d/log" -w start >/dev/null ||
		fail "the fresh cluster did not start"
	TL_CLUSTERS+=("$d/data")
	assertEquals "a fresh cluster holds no user data" "" "$(PGHOST=$d CPA_PG_PORT=$port cpa_user_data_report)"
	PGHOST=$d CPA_PG_PORT=$port cpa_psql -d postgres -c "CREATE TABLE notes (x int)" >/dev/null
	assertContains "$(PGHOST=$d CPA_PG_PORT=$port cpa_user_data_report)" "relations in database postgres: 1"
}

test_10_the_live_directory_by_another_path_is_the_same_not_an_old_copy() {
	local d
	d=$(tl_tmpdir)
	mkdir -p "$d/mnt/data/postgresql/15" "$d/var/lib"
	cp -a "$TL_PGDATA" "$d/mnt/data/postgresql/15/main"
	rm -f "$d/mnt/data/postgresql/15/main/postmaster.pid"
	# /var/lib/postgresql -> /mnt/data/postgresql: the data directory named
	# through the link, the target by its real path.
	ln -s "$d/mnt/data/postgresql" "$d/var/lib/postgresql"
	assertEquals "through a symlink" same \
		"$(cpa_target_state "$d/mnt/data/postgresql/15/main" "$SYSID" "$d/var/lib/postgresql/15/main")"
	# A bind mount of the same folder.
	mkdir -p "$d/bind"
	mount --bind "$d/mnt/data/postgresql" "$d/bind" || fail "no bind mount"
	MOUNTS+=("$d/bind")
	assertEquals "through a bind mount" same \
		"$(cpa_target_state "$d/mnt/data/postgresql/15/main" "$SYSID" "$d/bind/15/main")"
	assertEquals "a real copy elsewhere is not the same directory" not-older \
		"$(cpa_target_state "$d/mnt/data/postgresql/15/main" "$SYSID" "$TL_PGDATA")"
}

test_11_a_copy_with_a_postmaster_pid_is_never_an_old_copy() {
	local d
	d=$(tl_tmpdir)
	cp -a "$TL_PGDATA" "$d/copy"
	# The running throwaway cluster's pid file came along.
	assertTrue "the copy has a postmaster.pid" "[ -f '$d/copy/postmaster.pid' ]"
	assertEquals running "$(cpa_target_state "$d/copy" "$SYSID" "$TL_PGDATA")"
	rm -f "$d/copy/postmaster.pid"
	assertEquals "without it: a copy of a live server, not provably older" not-older \
		"$(cpa_target_state "$d/copy" "$SYSID" "$TL_PGDATA")"
}

test_12_wal_or_tablespaces_outside_the_directory_are_refused_with_73() {
	local d out rc=0
	d=$(tl_tmpdir)
	cp -a "$TL_PGDATA" "$d/plain"
	out=$(in_subshell cpa_check_self_contained "$d/plain") || rc=$?
	assertEquals "a self-contained directory passes: $out" 0 "$rc"
	# initdb --waldir: pg_wal is a symlink.
	cp -a "$TL_PGDATA" "$d/waldir"
	mv "$d/waldir/pg_wal" "$d/wal"
	ln -s "$d/wal" "$d/waldir/pg_wal"
	rc=0
	out=$(in_subshell cpa_check_self_contained "$d/waldir") || rc=$?
	assertEquals "pg_wal a symlink: $out" 73 "$rc"
	assertContains "$out" "pg_wal is a symlink"
	assertContains "$out" "Nothing was changed"
	# A tablespace: a link in pg_tblspc.
	cp -a "$TL_PGDATA" "$d/tblspc"
	mkdir "$d/space"
	ln -s "$d/space" "$d/tblspc/pg_tblspc/16500"
	rc=0
	out=$(in_subshell cpa_check_self_contained "$d/tblspc") || rc=$?
	assertEquals "a tablespace: $out" 73 "$rc"
	assertContains "$out" "tablespaces"
}

test_13_written_content_goes_through_the_destination_folder_only() {
	local d rc=0
	d=$(tl_tmpdir)
	mkdir "$d/tmp" "$d/etc"
	printf 'secret\n\n' | TMPDIR=$d/tmp in_subshell cpa_install_content "$d/etc/pw" 0600 root root "password file" --secret >/dev/null ||
		rc=$?
	assertEquals "it changed something" 0 "$rc"
	assertEquals "trailing newlines kept" "$(printf 'secret\n\nx')" "$(cat "$d/etc/pw" && printf x)"
	assertEquals "nothing in TMPDIR" "" "$(ls -A "$d/tmp")"
	assertEquals "nothing else in the folder" pw "$(ls -A "$d/etc")"
	rc=0
	printf 'secret\n\n' | TMPDIR=$d/tmp in_subshell cpa_install_content "$d/etc/pw" 0600 root root "password file" --secret >/dev/null ||
		rc=$?
	assertEquals "the same content again: unchanged" 1 "$rc"
	rc=0
	printf 'other\n' | CPA_DRY_RUN=1 TMPDIR=$d/tmp in_subshell cpa_install_content "$d/new/pw" 0600 root root "password file" --secret >/dev/null ||
		rc=$?
	assertEquals "dry run: would change" 0 "$rc"
	assertFalse "dry run writes nothing" "[ -e '$d/new' ]"
	assertEquals "nothing in TMPDIR" "" "$(ls -A "$d/tmp")"
}

test_14_an_unexpected_failure_runs_the_put_back_hook_once_then_exits_70() {
	local d out rc=0
	d=$(tl_tmpdir)
	# A process of its own: in $(...) || the ERR trap and errexit are off.
	# shellcheck disable=SC2016 # expanded by the inner bash
	out=$(HOOK_FILE=$d/hook bash -c '
		set -euo pipefail
		. "$1/provision/lib/common.sh"
		. "$1/provision/lib/datadir.sh"
		put_back() { echo "put back" >>"$HOOK_FILE"; }
		CPA_STEP=datadir-test
		cpa_enable_error_trap
		CPA_ON_FAILURE=put_back
		false
		echo "not reached"
	' bash "$TL_ROOT" 2>&1) || rc=$?
	assertEquals "exit code: $out" 70 "$rc"
	assertContains "$out" "command failed"
	assertNotContains "$out" "not reached"
	assertEquals "the hook ran once" "put back" "$(cat "$d/hook")"
	# With nothing to put back (no copy in progress) the restore is a no-op.
	rc=0
	out=$(CPA_COPY_FROM='' in_subshell cpa_restore_after_failure) || rc=$?
	assertEquals "no copy: $out" 0 "$rc"
	assertEquals "" "$out"
}

test_15_the_flush_is_a_syncfs_of_the_copys_file_system() {
	local d log
	d=$(tl_tmpdir)
	log=$d/strace
	mkdir "$d/copy" && echo data >"$d/copy/f"
	# shellcheck disable=SC2016 # expanded by the inner bash
	strace -f -e trace=syncfs -o "$log" bash -c '. "$1/provision/lib/common.sh"; . "$1/provision/lib/datadir.sh"; cpa_flush_directory "$2"' \
		bash "$TL_ROOT" "$d/copy" || fail "the flush failed"
	assertContains "syncfs(2) was called: $(cat "$log")" "$(cat "$log")" "syncfs("
	assertContains "and succeeded" "$(grep 'syncfs(' "$log")" "= 0"
}

# signal_bash SIGNAL SCRIPT: a bash that sources the library and runs SCRIPT
# with the traps of a step; SIGNAL is sent once it is in the middle of
# SCRIPT (it touches $d/ready). Prints its output; returns its exit code.
signal_bash() {
	local sig=$1 script=$2 d=$3 pid rc=0
	# shellcheck disable=SC2016 # expanded by the inner bash
	# env --default-signal: an asynchronous command of a script starts with
	# SIGINT ignored, which bash could not trap; at a terminal it is not.
	HOOK_FILE=$d/hook CPA_STATE_DIR=$d/state env --default-signal=INT bash -c '
		set -euo pipefail
		. "$1/provision/lib/common.sh"
		CPA_STEP=signal-test
		put_back() { echo "put back" >>"$HOOK_FILE"; cpa_info "put things back"; }
		cpa_enable_error_trap
		'"$script" bash "$TL_ROOT" >"$d/out" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		[ -e "$d/ready" ] && break
		sleep 0.05
	done
	[ -z "$sig" ] || kill -s "$sig" "$pid"
	wait "$pid" || rc=$?
	cat "$d/out"
	return "$rc"
}

# shellcheck disable=SC2016 # the scripts are expanded by the inner bash
test_16_a_signal_or_an_exit_during_a_copy_puts_things_back_first() {
	local d out rc
	for sig in TERM INT HUP; do
		d=$(tl_tmpdir)
		rc=0
		out=$(signal_bash "$sig" 'CPA_ON_FAILURE=put_back; touch "$(dirname "$HOOK_FILE")/ready"; sleep 20 & wait $!; echo "not reached"' "$d") || rc=$?
		case "$sig" in TERM) assertEquals "SIGTERM: $out" 143 "$rc" ;; INT) assertEquals "SIGINT: $out" 130 "$rc" ;;
		HUP) assertEquals "SIGHUP: $out" 129 "$rc" ;; esac
		assertEquals "SIG$sig: the put-back ran once" "put back" "$(cat "$d/hook" 2>/dev/null)"
		assertNotContains "$out" "not reached"
		if [ "$sig" = HUP ]; then
			assertContains "after a hang-up the output goes to a log" "$(cat "$d/state/interrupted.log" 2>/dev/null)" "interrupted by SIGHUP"
			assertContains "$(cat "$d/state/interrupted.log" 2>/dev/null)" "put things back"
		else
			assertContains "$out" "interrupted by SIG$sig"
		fi
	done
	# An exit (cpa_die) while the put-back is set runs it too.
	d=$(tl_tmpdir)
	rc=0
	out=$(signal_bash "" 'CPA_ON_FAILURE=put_back; touch "$(dirname "$HOOK_FILE")/ready"; cpa_die 73 "refused mid-way"' "$d") || rc=$?
	assertEquals "exit: $out" 73 "$rc"
	assertEquals "exit: the put-back ran once" "put back" "$(cat "$d/hook" 2>/dev/null)"
	# Without a put-back, a signal just stops the step.
	d=$(tl_tmpdir)
	rc=0
	out=$(signal_bash TERM 'touch "$(dirname "$HOOK_FILE")/ready"; sleep 20 & wait $!' "$d") || rc=$?
	assertEquals "nothing to put back: $out" 143 "$rc"
	assertFalse "no hook ran" "[ -e '$d/hook' ]"
}

test_17_a_secret_that_cannot_be_written_fails_and_keeps_the_old_file() {
	local d out rc
	d=$(tl_tmpdir)
	mkdir "$d/etc"
	printf 'old secret\n' >"$d/etc/pw"
	chmod 0600 "$d/etc/pw"
	# The rename fails: the file is immutable (as a full or read-only disk
	# would make another step fail).
	chattr +i "$d/etc/pw" || fail "chattr +i is not supported here"
	rc=0
	# shellcheck disable=SC2016 # expanded by the inner bash
	out=$(bash -c 'set -euo pipefail
		. "$1/provision/lib/common.sh"
		CPA_STEP=secret-test
		printf "new secret\n" | cpa_install_content "$2" 0600 root root "credentials" --secret || cpa_installed "$?"
		echo "not reached"' bash "$TL_ROOT" "$d/etc/pw" 2>&1) || rc=$?
	chattr -i "$d/etc/pw"
	assertEquals "the step fails: $out" 70 "$rc"
	assertNotContains "no 'changed:' line for a write that failed" "$out" "changed:"
	assertNotContains "$out" "not reached"
	assertContains "$out" "could not write credentials $d/etc/pw"
	assertEquals "the old file is in place" "old secret" "$(cat "$d/etc/pw")"
	assertEquals "no temporary file is left" pw "$(ls -A "$d/etc")"
	# A folder that cannot take a file (read-only): the same.
	mkdir -p "$d/ro"
	printf 'old\n' >"$d/ro/env"
	mount --bind "$d/ro" "$d/ro" || fail "no bind mount"
	MOUNTS+=("$d/ro")
	mount -o remount,bind,ro "$d/ro" || fail "no read-only remount"
	rc=0
	out=$(printf 'new\n' | in_subshell cpa_install_content "$d/ro/env" 0640 root root "env file" --secret) || rc=$?
	assertEquals "read-only: $out" 70 "$rc"
	assertEquals "old" "$(cat "$d/ro/env")"
	assertNotContains "$out" "changed:"
}

tl_run
