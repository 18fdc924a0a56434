#!/bin/bash
# t5090-provision-no-systemd: provision.sh where systemd is not PID 1 (a
# container or CI job): the same Debian 12 root as t5500, run with
# systemd-nspawn without --boot, so the script itself is the container's
# first process and /run/systemd/system does not exist. The agent step must
# start PostgreSQL with pg_ctlcluster, run `checkpoint-agent migrate` and
# `check` itself, enable the unit for the next boot and say so. The
# PostgreSQL it leaves running must not hold the provisioning lock: a run
# right after it, in the same container, must not be refused.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$TL_ROOT/tests/lib/container.sh"

ROOT=
DATA=
BACKUP=
OUT=
MACHINE=cpa-t5090-$$

suite_setup() {
	local base dir
	base=$(tc_base_rootfs) || return 1
	dir=$(tl_tmpdir) || return 1
	ROOT=$dir/root
	DATA=$(tl_tmpdir) || return 1
	# The backup repository on another file system than the data's, as on a real server.
	BACKUP=$(mktemp -d /dev/shm/cpa-t5090.XXXXXX) || return 1
	TL_CLEANUP_DIRS+=("$BACKUP")
	OUT=$(tl_tmpdir) || return 1
	tc__lock shared || return 1
	if ! cp -a --reflink=auto "$base" "$ROOT"; then
		tc__unlock
		return 1
	fi
	tc__unlock
	mkdir -p "$ROOT/opt/checkpoint-agent" || return 1
	tar -C "$TL_ROOT" --exclude-vcs --exclude=./agent/checkpoint-agent --exclude=./agent/sql_embed.c \
		--exclude=./tests/unit/run-unit --exclude='*.o' --exclude=node_modules -cf - . |
		tar -C "$ROOT/opt/checkpoint-agent" --no-same-owner -xf - || return 1
}

# in_container NAME COMMAND: run a shell command as the container's PID 1;
# output in $OUT/NAME.log, exit code in RC.
in_container() {
	RC=0
	systemd-nspawn --register=no --keep-unit --quiet --private-network -D "$ROOT" --machine="$MACHINE" \
		--bind="$DATA:/mnt/data" --bind="$BACKUP:/mnt/backup" --pipe /bin/bash -c "$2" </dev/null >"$OUT/$1.log" 2>&1 || RC=$?
	# nspawn will not clean this where /run is not a tmpfs.
	rm -rf --one-file-system -- "/run/systemd/nspawn/propagate/$MACHINE"
	if [ "$RC" -ne 0 ]; then
		tail -n 40 "$OUT/$1.log" >&2
	fi
}

test_01_provisions_migrates_and_checks_without_systemd() {
	local log
	# shellcheck disable=SC2016 # expanded inside the container
	in_container first '[ ! -d /run/systemd/system ] || { echo "systemd runs here"; exit 99; }
		/opt/checkpoint-agent/provision/provision.sh || exit
		echo "data_directory=$(runuser -u postgres -- psql -X -At -c "SHOW data_directory")"
		echo "schema=$(runuser -u postgres -- psql -X -At -d langgraph_checkpoints -c "SELECT max(v) FROM checkpoint_migrations")"
		for p in $(pgrep -x postgres); do ls -l /proc/$p/fd | grep -q checkpoint-provision.lock && echo "LEAKED into pid $p"; done
		sleep 0.5
		flock -n /run/lock/checkpoint-provision.lock true && echo "lock free while PostgreSQL runs"
		/opt/checkpoint-agent/provision/provision.sh >/tmp/again.log 2>&1; echo "second run in the same container: exit $?"
		tail -n 1 /tmp/again.log'
	log=$(cat "$OUT/first.log")
	assertEquals "exit code" 0 "$RC"
	assertContains "$log" "systemd is not running (no /run/systemd/system): migrating and checking directly"
	assertContains "$log" "applied the pending migrations (checkpoint-agent migrate)"
	assertContains "$log" "health check OK"
	assertContains "it says so plainly" "$log" "checkpoint-agent.service is not running now: it starts at the next boot"
	assertContains "$log" "data_directory=/mnt/data/postgresql/15/main"
	assertContains "$log" "schema=9"
	assertNotContains "no PostgreSQL process holds the lock: $log" "$log" "LEAKED"
	assertContains "$log" "lock free while PostgreSQL runs"
	assertContains "$log" "second run in the same container: exit 0"
	assertContains "$log" "Nothing changed"
	assertTrue "the unit is enabled for the next boot" \
		"[ -L '$ROOT/etc/systemd/system/multi-user.target.wants/checkpoint-agent.service' ]"
	assertContains "backups without systemd: the first backup" "$log" "took the first full backup"
	assertTrue "the backup timers are enabled for the next boot" \
		"[ -L '$ROOT/etc/systemd/system/timers.target.wants/checkpoint-backup-diff.timer' ]"
}

test_02_a_second_run_only_starts_postgresql_again() {
	local changes
	in_container second /opt/checkpoint-agent/provision/provision.sh
	assertEquals "exit code" 0 "$RC"
	# The first run's PostgreSQL ended with its container; starting it is
	# the one change, and the schema is already there.
	changes=$(grep '\] changed:' "$OUT/second.log")
	assertEquals "only PostgreSQL was started" "[role-db] changed:  started PostgreSQL 15/main" "$changes"
	assertContains "$(cat "$OUT/second.log")" "schema up to date"
}

tl_run
