#!/bin/bash
# t4100-systemd-units: static checks of the unit files in systemd/, on the
# host (systemd-analyze verify and security --offline need no systemd PID 1).
#
# The units are installed into a scratch root together with a copy of the
# host's own unit tree (sysinit.target, postgresql@.service, ...), so that
# `systemd-analyze verify --root` resolves every dependency. verify only
# checks that ExecStart= names an executable file; the scratch root has a copy
# of /bin/true at /usr/local/bin/checkpoint-agent for that, and t4200 verifies
# the units again inside a container where the real agent is installed.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

UNITS=$TL_ROOT/systemd
SCRATCH=
# The cluster unit the drop-ins are checked against (Debian 12's default).
CLUSTER_UNIT=postgresql@15-main.service

suite_setup() {
	local r
	command -v systemd-analyze >/dev/null || { tl_log "systemd-analyze is missing (package systemd)"; return 1; }
	[ -f /lib/systemd/system/postgresql@.service ] ||
		{ tl_log "postgresql@.service is missing on the host (package postgresql-common)"; return 1; }
	SCRATCH=$(tl_tmpdir) || return 1
	r=$SCRATCH/root
	mkdir -p "$r/usr/lib/systemd" "$r/usr/bin" "$r/usr/local/bin" "$r/etc/systemd/system" || return 1
	ln -s usr/lib "$r/lib" && ln -s usr/bin "$r/bin" || return 1
	cp -a /usr/lib/systemd/system "$r/usr/lib/systemd/" || return 1
	# Commands named by the units under test (verify checks they exist).
	cp /bin/true "$r/usr/local/bin/checkpoint-agent" &&
		cp /bin/kill /bin/true /bin/sleep /usr/bin/pg_ctlcluster "$r/usr/bin/" || return 1
	install_units_into "$r" || return 1
	# An application unit, to check the example drop-in on.
	printf '[Unit]\nDescription=Example application\n\n[Service]\nExecStart=/bin/sleep infinity\n' \
		>"$r/etc/systemd/system/app.service"
}

# install_units_into ROOT: the layout systemd/README.md documents.
install_units_into() {
	local r=$1/etc/systemd/system
	mkdir -p "$r/checkpoint-agent.service.d" "$r/checkpoint-agent-migrate.service.d" \
		"$r/postgresql@.service.d" "$r/app.service.d" || return 1
	cp "$UNITS/checkpoint-agent.service" "$UNITS/checkpoint-agent-migrate.service" "$r/" &&
		cp "$UNITS/checkpoint-agent.service.d/postgresql-cluster.conf" "$r/checkpoint-agent.service.d/" &&
		cp "$UNITS/checkpoint-agent.service.d/postgresql-cluster.conf" "$r/checkpoint-agent-migrate.service.d/" &&
		cp "$UNITS/postgresql@.service.d/require-data-mount.conf" "$r/postgresql@.service.d/" &&
		cp "$UNITS/examples/app.service.d/checkpoint-agent.conf" "$r/app.service.d/"
}

# exposure UNIT: the overall exposure level systemd-analyze gives UNIT.
exposure() {
	systemd-analyze security --offline=yes --root="$SCRATCH/root" "$1" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p'
}

# unit_setting FILE KEY: the values of KEY= in FILE, one per line.
unit_setting() {
	sed -n "s/^$2=//p" "$1"
}

test_01_verify_prints_nothing() {
	local out rc=0
	out=$(systemd-analyze verify --man=no --root="$SCRATCH/root" \
		checkpoint-agent.service checkpoint-agent-migrate.service "$CLUSTER_UNIT" app.service 2>&1) || rc=$?
	assertEquals "systemd-analyze verify output: $out" "" "$out"
	assertEquals "systemd-analyze verify exit code" 0 "$rc"
}

test_02_verify_catches_a_broken_unit() {
	# The check above can fail: a unit with a typo'd setting is reported.
	local r=$SCRATCH/root out
	sed 's/^WatchdogSec=/WatchdogSecs=/' "$UNITS/checkpoint-agent.service" \
		>"$r/etc/systemd/system/broken-agent.service"
	out=$(systemd-analyze verify --man=no --root="$r" broken-agent.service 2>&1)
	rm -f "$r/etc/systemd/system/broken-agent.service"
	assertContains "verify reports the unknown setting: $out" "$out" "WatchdogSecs"
}

test_03_agent_exposure_at_most_2() {
	local level
	level=$(exposure checkpoint-agent.service)
	tl_log "checkpoint-agent.service exposure: ${level:-unparsed}"
	assertNotNull "no 'Overall exposure level' line" "$level"
	assertTrue "exposure $level > 2.0" "awk -v l='$level' 'BEGIN { exit !(l <= 2.0) }'"
}

test_04_migrate_exposure_at_most_2() {
	local level
	level=$(exposure checkpoint-agent-migrate.service)
	tl_log "checkpoint-agent-migrate.service exposure: ${level:-unparsed}"
	assertNotNull "no 'Overall exposure level' line" "$level"
	assertTrue "exposure $level > 2.0" "awk -v l='$level' 'BEGIN { exit !(l <= 2.0) }'"
}

test_05_internet_and_unix_sockets_stay_allowed() {
	local out
	out=$(systemd-analyze security --offline=yes --root="$SCRATCH/root" checkpoint-agent.service 2>&1)
	# ✗ = the service may do it; ✓ = it may not.
	assertContains "AF_UNIX must stay allowed" "$out" "✗ RestrictAddressFamilies=~AF_UNIX"
	assertContains "AF_INET/AF_INET6 must stay allowed" "$out" "✗ RestrictAddressFamilies=~AF_(INET|INET6)"
	assertContains "other families must be denied" "$out" "✓ RestrictAddressFamilies=~AF_PACKET"
	assertEquals "AF_UNIX AF_INET AF_INET6" \
		"$(unit_setting "$UNITS/checkpoint-agent.service" RestrictAddressFamilies)"
}

test_06_agent_is_notify_with_watchdog_and_restart() {
	local f=$UNITS/checkpoint-agent.service
	assertEquals notify "$(unit_setting "$f" Type)"
	assertEquals main "$(unit_setting "$f" NotifyAccess)"
	assertEquals on-failure "$(unit_setting "$f" Restart)"
	assertNotNull "WatchdogSec= is missing" "$(unit_setting "$f" WatchdogSec)"
	assertEquals "/usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf run" \
		"$(unit_setting "$f" ExecStart)"
	assertEquals "/bin/kill -HUP \$MAINPID" "$(unit_setting "$f" ExecReload)"
}

test_07_start_timeout_covers_wait_and_lock() {
	# The agent waits up to startup_timeout (300 s) for the database, then up
	# to lock_timeout (60 s) for the migration lock.
	local t
	t=$(unit_setting "$UNITS/checkpoint-agent.service" TimeoutStartSec)
	assertTrue "TimeoutStartSec=$t is under 360 s" \
		"[ \"\$(systemd-analyze timespan '$t' 2>/dev/null | sed -n 's/.*μs: //p')\" -ge 360000000 ]"
}

test_08_runs_as_static_unprivileged_user() {
	local f=$UNITS/checkpoint-agent.service
	assertEquals checkpoint-agent "$(unit_setting "$f" User)"
	assertEquals checkpoint-agent "$(unit_setting "$f" Group)"
	assertNull "DynamicUser= cannot read the root:checkpoint-agent password file" \
		"$(unit_setting "$f" DynamicUser)"
	assertEquals checkpoint-agent "$(unit_setting "$f" StateDirectory)"
	assertEquals strict "$(unit_setting "$f" ProtectSystem)"
}

test_09_postgresql_wanted_not_bound() {
	local f
	for f in "$UNITS/checkpoint-agent.service" "$UNITS/checkpoint-agent-migrate.service" \
		"$UNITS/checkpoint-agent.service.d/postgresql-cluster.conf"; do
		assertNull "$f: stopping PostgreSQL must not stop the agent" \
			"$(grep -E '^(BindsTo|Requires|Requisite|PartOf)=.*postgresql' "$f")"
	done
	f=$UNITS/checkpoint-agent.service.d/postgresql-cluster.conf
	assertEquals "$CLUSTER_UNIT" "$(unit_setting "$f" Wants)"
	assertEquals "$CLUSTER_UNIT" "$(unit_setting "$f" After)"
	assertContains "$(unit_setting "$UNITS/checkpoint-agent.service" After)" postgresql.service
}

test_10_postgresql_requires_data_mount() {
	assertEquals /mnt/data \
		"$(unit_setting "$UNITS/postgresql@.service.d/require-data-mount.conf" RequiresMountsFor)"
}

test_11_app_example_gates_on_agent() {
	local f=$UNITS/examples/app.service.d/checkpoint-agent.conf
	assertEquals checkpoint-agent.service "$(unit_setting "$f" Requires)"
	assertEquals checkpoint-agent.service "$(unit_setting "$f" After)"
	assertEquals /etc/checkpoint-agent/app.env "$(unit_setting "$f" EnvironmentFile)"
}

test_12_migrate_unit_is_oneshot() {
	local f=$UNITS/checkpoint-agent-migrate.service
	assertEquals oneshot "$(unit_setting "$f" Type)"
	assertEquals "/usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf migrate" \
		"$(unit_setting "$f" ExecStart)"
}

tl_run
