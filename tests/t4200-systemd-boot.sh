#!/bin/bash
# t4200-systemd-boot: checkpoint-agent.service under a real systemd, in a
# booted Debian 12 container (tests/lib/container.sh) with PostgreSQL from
# Debian and the agent built from this tree.
#
# The container has its own network namespace (--private-network): its
# PostgreSQL on 5432 cannot clash with the host's or another container's,
# and apt installs from the base root's warm cache only.
#
# The tests run in order and build on each other: the first start, the gated
# application, reload, PostgreSQL going away or hanging, then a reboot.
#
# The shipped unit is used as is, plus one test drop-in that shortens
# WatchdogSec= (30 s) to WATCHDOG_SEC, so that an agent that stops feeding the
# watchdog while the database is down or hung is killed, and seen to be,
# within the suite's time (t4100 checks the shipped value).

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$(dirname "$0")/lib/container.sh"

PG_CLUSTER=15-main
CONF=/etc/checkpoint-agent/agent.conf
AGENT=/usr/local/bin/checkpoint-agent
WATCHDOG_SEC=6
SUITE_START=

suite_setup() {
	local t
	SUITE_START=$(date +%s)
	tc_boot t4200 --private-network || return 1
	t=$(date +%s)
	install_packages || return 1
	tl_log "packages installed in $(($(date +%s) - t))s"
	t=$(date +%s)
	build_and_install_agent || return 1
	tl_log "agent built and installed in $(($(date +%s) - t))s"
	make_role_database_and_config || return 1
	install_units || return 1
	tl_log "suite set-up took $(($(date +%s) - SUITE_START))s"
}

suite_teardown() {
	[ -n "$SUITE_START" ] && tl_log "suite wall time: $(($(date +%s) - SUITE_START))s"
	return 0
}

# install_packages: PostgreSQL and the agent's build dependencies, from the
# base root's apt cache (no apt-get update: the cached lists match it).
install_packages() {
	if ! tc_exec env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		postgresql postgresql-contrib build-essential pkg-config libpq-dev libconfig-dev libsystemd-dev libmicrohttpd-dev libjson-c-dev \
		>"$TC_DIR/apt.log" 2>&1; then
		tl_log "apt-get install failed inside the container; last lines of $TC_DIR/apt.log:"
		tail -n 20 "$TC_DIR/apt.log" >&2
		return 1
	fi
	tc_exec systemctl is-active --quiet "postgresql@$PG_CLUSTER" || {
		tl_log "postgresql@$PG_CLUSTER is not active after the install"
		tc_exec systemctl status --no-pager "postgresql@$PG_CLUSTER" >&2
		return 1
	}
}

build_and_install_agent() {
	if ! tc_exec make -C /opt/checkpoint-agent -j2 install PREFIX=/usr/local >"$TC_DIR/make.log" 2>&1; then
		tl_log "building the agent inside the container failed; last lines of $TC_DIR/make.log:"
		tail -n 30 "$TC_DIR/make.log" >&2
		return 1
	fi
}

# make_role_database_and_config: what provisioning does, done here the
# plain way: system user, role and database with a random password that is
# on no command line, the agent's config, an application env file.
make_role_database_and_config() {
	tc_exec bash -s <<-'EOF'
		set -euo pipefail
		useradd --system --user-group --home-dir /var/lib/checkpoint-agent \
			--shell /usr/sbin/nologin checkpoint-agent
		install -d -m 0755 /etc/checkpoint-agent
		umask 0027
		head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >/etc/checkpoint-agent/db-password
		chgrp checkpoint-agent /etc/checkpoint-agent/db-password
		chmod 0640 /etc/checkpoint-agent/db-password
		pw=$(cat /etc/checkpoint-agent/db-password)
		# printf is a shell builtin: the password goes to psql's stdin only.
		printf "SET password_encryption = 'scram-sha-256';
			CREATE ROLE ai_agent LOGIN PASSWORD '%s';
			CREATE DATABASE langgraph_checkpoints OWNER ai_agent;\n" "$pw" |
			runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres
		# The application reads its URI from the env file and its password
		# from a pgpass file: neither is on a command line.
		printf 'localhost:5432:langgraph_checkpoints:ai_agent:%s\n' "$pw" >/etc/checkpoint-agent/app.pgpass
		chmod 0600 /etc/checkpoint-agent/app.pgpass
		cat >/etc/checkpoint-agent/app.env <<-ENV
			CHECKPOINT_DB_URI=postgresql://ai_agent@localhost:5432/langgraph_checkpoints
			PGPASSFILE=/etc/checkpoint-agent/app.pgpass
		ENV
		cat >/etc/checkpoint-agent/agent.conf <<-CONF
			database: {
			  uri = "postgresql://ai_agent@localhost:5432/langgraph_checkpoints";
			  password_file = "/etc/checkpoint-agent/db-password";
			};
			service: {
			  interval = 2;
			  data_directory = "/var/lib/postgresql/15/main";
			};
		CONF
		chgrp checkpoint-agent /etc/checkpoint-agent/agent.conf
		cp /etc/checkpoint-agent/agent.conf /etc/checkpoint-agent/agent.conf.good
	EOF
}

# install_units: the layout systemd/README.md documents, plus an example
# application that gates on the agent through the shipped drop-in.
install_units() {
	tc_exec bash -s "$WATCHDOG_SEC" <<-'EOF'
		set -euo pipefail
		src=/opt/checkpoint-agent/systemd
		dst=/etc/systemd/system
		install -m 0644 "$src/checkpoint-agent.service" "$src/checkpoint-agent-migrate.service" "$dst/"
		install -D -m 0644 "$src/checkpoint-agent.service.d/postgresql-cluster.conf" \
			"$dst/checkpoint-agent.service.d/postgresql-cluster.conf"
		install -D -m 0644 "$src/postgresql@.service.d/require-data-mount.conf" \
			"$dst/postgresql@.service.d/require-data-mount.conf"
		install -D -m 0644 "$src/examples/app.service.d/checkpoint-agent.conf" \
			"$dst/app.service.d/checkpoint-agent.conf"
		# The application records the schema version it finds at start.
		cat >"$dst/app.service" <<-UNIT
			[Unit]
			Description=Example application using the checkpoint database
			[Service]
			ExecStart=/bin/sh -c 'psql -X -A -t -d "\$\$CHECKPOINT_DB_URI" -c "SELECT max(v) FROM checkpoint_migrations" >/run/app-schema-version && exec sleep infinity'
			[Install]
			WantedBy=multi-user.target
		UNIT
		printf '[Service]\nWatchdogSec=%ss\n' "$1" >"$dst/checkpoint-agent.service.d/zz-test-watchdog.conf"
		mkdir -p /mnt/data
		systemctl daemon-reload
		systemctl enable --quiet checkpoint-agent.service app.service
	EOF
}

# unit_prop UNIT PROPERTY: one property's value.
unit_prop() {
	tc_exec systemctl show -P "$2" "$1"
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_for() {
	local what=$1 secs=$2 deadline
	shift 2
	deadline=$(($(date +%s) + secs))
	until "$@"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			tl_log "timed out after ${secs}s waiting for $what"
			return 1
		fi
		sleep 0.5
	done
}

unit_is() {
	[ "$(unit_prop "$1" ActiveState)" = "$2" ]
}

agent_has_main_pid() {
	[ "$(unit_prop checkpoint-agent MainPID)" != 0 ]
}

status_mentions_degraded() {
	unit_prop checkpoint-agent StatusText | grep -qi degraded
}

status_does_not_mention_degraded() {
	! status_mentions_degraded
}

app_recorded_schema() {
	tc_exec test -s /run/app-schema-version
}

# app_schema_version: what the application's first query returned (it runs
# just after the application's start, so wait for it to be written).
app_schema_version() {
	wait_for "the application to record the schema version" 15 app_recorded_schema &&
		tc_exec cat /run/app-schema-version
}

# pending_status: the agent's `status --exit-code` exit code (0 = nothing pending).
pending_status() {
	tc_exec "$AGENT" -c "$CONF" status --exit-code >/dev/null 2>&1
	echo "$?"
}

test_01_units_verify_inside_container() {
	local out
	out=$(tc_exec systemd-analyze verify checkpoint-agent.service checkpoint-agent-migrate.service \
		"postgresql@$PG_CLUSTER.service" app.service 2>&1)
	assertEquals "systemd-analyze verify, with the real agent installed: $out" "" "$out"
}

test_02_start_returns_only_once_ready() {
	local start_pid rc state
	tc_exec systemctl stop checkpoint-agent app
	# Keep PostgreSQL down (masked, so the agent's Wants= cannot start it):
	# the start job must stay pending while the agent waits for it.
	tc_exec systemctl stop "postgresql@$PG_CLUSTER"
	tc_exec systemctl mask --runtime --quiet "postgresql@$PG_CLUSTER"
	tc_exec timeout 300 systemctl start checkpoint-agent &
	start_pid=$!
	wait_for "the agent to be running and waiting" 30 agent_has_main_pid
	sleep 3
	state=$(unit_prop checkpoint-agent ActiveState)
	assertEquals "while the database is down the unit is (status: $(unit_prop checkpoint-agent StatusText))" \
		activating "$state"
	assertTrue "systemctl start returned before the agent was ready" "kill -0 $start_pid"
	tc_exec systemctl unmask --runtime --quiet "postgresql@$PG_CLUSTER"
	tc_exec systemctl start "postgresql@$PG_CLUSTER"
	wait "$start_pid"
	rc=$?
	# Right after systemctl start returns: active, and the schema migrated.
	state=$(unit_prop checkpoint-agent ActiveState)
	assertEquals "systemctl start checkpoint-agent" 0 "$rc"
	assertEquals "state right after start returned" active "$state"
	assertEquals "checkpoint-agent status right after start (0 = nothing pending)" 0 "$(pending_status)"
	[ "$state" = active ] || tc_journal -u checkpoint-agent -n 30 >&2
}

test_03_application_starts_after_agent() {
	local agent_ready app_started
	tc_exec systemctl stop app checkpoint-agent
	tc_exec rm -f /run/app-schema-version
	# Starting the application alone pulls in the agent and waits for it.
	tc_exec systemctl start app
	assertEquals "systemctl start app" 0 "$?"
	assertEquals active "$(unit_prop checkpoint-agent ActiveState)"
	assertEquals active "$(unit_prop app ActiveState)"
	agent_ready=$(unit_prop checkpoint-agent ActiveEnterTimestampMonotonic)
	app_started=$(unit_prop app ExecMainStartTimestampMonotonic)
	assertTrue "app started at $app_started, before the agent was ready at $agent_ready" \
		"[ '$app_started' -ge '$agent_ready' ]"
	assertEquals "the schema version the application saw at its start" 9 "$(app_schema_version)"
}

test_04_application_not_started_when_agent_fails() {
	local rc
	tc_exec systemctl stop app checkpoint-agent
	tc_exec sh -c "echo 'this is not libconfig {' >$CONF"
	tc_exec systemctl start app 2>/dev/null
	rc=$?
	assertNotEquals "systemctl start app must fail when the agent cannot start" 0 "$rc"
	assertNotEquals "the application must not be running" active "$(unit_prop app ActiveState)"
	tc_exec cp /etc/checkpoint-agent/agent.conf.good "$CONF"
	tc_exec systemctl reset-failed checkpoint-agent app
	tc_exec systemctl start app
	assertEquals "systemctl start app after the config is fixed" 0 "$?"
}

test_05_reload_keeps_the_process() {
	local pid since
	pid=$(unit_prop checkpoint-agent MainPID)
	since=$(tc_exec date '+%Y-%m-%d %H:%M:%S')
	tc_exec systemctl reload checkpoint-agent
	assertEquals "systemctl reload checkpoint-agent" 0 "$?"
	wait_for "the agent to be active again after the reload" 15 unit_is checkpoint-agent active
	assertEquals "MainPID after reload" "$pid" "$(unit_prop checkpoint-agent MainPID)"
	assertEquals "restarts" 0 "$(unit_prop checkpoint-agent NRestarts)"
	assertContains "journal after the reload" \
		"$(tc_journal -u checkpoint-agent --since "$since")" "Reloaded"
}

test_06_bad_config_reload_keeps_the_old_one() {
	local pid
	pid=$(unit_prop checkpoint-agent MainPID)
	tc_exec sh -c "echo 'service: { interval = \"x\" ' >$CONF"
	tc_exec systemctl reload checkpoint-agent
	sleep 3
	tc_exec cp /etc/checkpoint-agent/agent.conf.good "$CONF"
	assertEquals "state after a bad-config reload" active "$(unit_prop checkpoint-agent ActiveState)"
	assertEquals "MainPID after a bad-config reload" "$pid" "$(unit_prop checkpoint-agent MainPID)"
	assertEquals "the old config still reaches the database (0 = nothing pending)" 0 "$(pending_status)"
}

test_07_postgresql_stop_degrades_without_killing() {
	local pid
	pid=$(unit_prop checkpoint-agent MainPID)
	tc_exec systemctl stop "postgresql@$PG_CLUSTER"
	wait_for "STATUS= to report degraded" 30 status_mentions_degraded
	# Two watchdog periods down: the agent must keep sending WATCHDOG=1.
	sleep $((2 * WATCHDOG_SEC + 1))
	assertEquals "agent state with PostgreSQL stopped" active "$(unit_prop checkpoint-agent ActiveState)"
	assertEquals "agent MainPID with PostgreSQL stopped" "$pid" "$(unit_prop checkpoint-agent MainPID)"
	assertEquals "the application keeps running" active "$(unit_prop app ActiveState)"
	tc_exec systemctl start "postgresql@$PG_CLUSTER"
	wait_for "STATUS= to report the recovery" 30 status_does_not_mention_degraded
	assertEquals "agent MainPID after PostgreSQL is back" "$pid" "$(unit_prop checkpoint-agent MainPID)"
	assertEquals "restarts" 0 "$(unit_prop checkpoint-agent NRestarts)"
}

test_08_hung_database_does_not_starve_watchdog() {
	local pid
	pid=$(unit_prop checkpoint-agent MainPID)
	assertEquals "the test watchdog is in force" "${WATCHDOG_SEC}s" "$(unit_prop checkpoint-agent WatchdogUSec)"
	# Every PostgreSQL process stopped (the postmaster and the agent's own
	# backend): queries and connections hang instead of failing.
	tc_exec pkill -STOP -u postgres
	tc_exec timeout 3 runuser -u postgres -- psql -X -At -c 'SELECT 1' >/dev/null 2>&1
	assertEquals "a query while PostgreSQL is stopped must hang (timeout's 124)" 124 "$?"
	sleep $((2 * WATCHDOG_SEC + 1))
	tc_exec pkill -CONT -u postgres
	assertEquals "agent state after the database hung" active "$(unit_prop checkpoint-agent ActiveState)"
	assertEquals "agent MainPID after the database hung" "$pid" "$(unit_prop checkpoint-agent MainPID)"
	assertEquals "restarts" 0 "$(unit_prop checkpoint-agent NRestarts)"
	assertEquals "checkpoint-agent status once the database answers again" 0 "$(pending_status)"
}

test_09_reboot_brings_everything_back() {
	local before after out rc
	before=$(tc_exec runuser -u postgres -- psql -X -At -d langgraph_checkpoints \
		-c 'SELECT string_agg(v::text, $$,$$ ORDER BY v) FROM checkpoint_migrations')
	assertNotNull "no migration recorded before the reboot" "$before"
	# tc_reboot must run in this shell (not inside assertTrue's subshell).
	tc_reboot
	assertEquals "tc_reboot" 0 "$?"
	assertEquals "postgresql@$PG_CLUSTER after the reboot" active "$(unit_prop "postgresql@$PG_CLUSTER" ActiveState)"
	assertEquals "checkpoint-agent after the reboot" active "$(unit_prop checkpoint-agent ActiveState)"
	assertEquals "app after the reboot" active "$(unit_prop app ActiveState)"
	assertEquals "the schema version the application saw at its start after the reboot" 9 \
		"$(app_schema_version)"
	after=$(tc_exec runuser -u postgres -- psql -X -At -d langgraph_checkpoints \
		-c 'SELECT string_agg(v::text, $$,$$ ORDER BY v) FROM checkpoint_migrations')
	assertEquals "migrations recorded before and after the reboot" "$before" "$after"
	assertEquals "checkpoint-agent status after the reboot" 0 "$(pending_status)"
	out=$(tc_exec "$AGENT" -c "$CONF" verify 2>&1)
	rc=$?
	assertEquals "checkpoint-agent verify after the reboot: $out" 0 "$rc"
}

tl_run
