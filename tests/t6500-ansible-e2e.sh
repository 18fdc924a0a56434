#!/bin/bash
# t6500-ansible-e2e: ansible/site.yml against a real host: a booted Debian 12
# container (tests/lib/container.sh) with a host folder bound at /mnt/data,
# Ansible from Debian installed inside it and run against localhost with a
# local connection. The agent is built from the repository copy the
# container has at /opt/checkpoint-agent (checkpoint_agent_copy_source:
# false).
#
# The container has its own network namespace (--private-network): its
# PostgreSQL cannot clash with the host's, and apt installs from the base
# root's warm cache only (so the roles are told not to refresh apt's lists).
#
# Backups are on (role checkpoint_backup, the repository at /mnt/backup on
# the container's root file system, which here is the data's too).
#
# The tests run in order and build on each other: first run, second run,
# check mode, a tuning change, relocation of a second cluster that holds
# data, then the application's connection with the stored password.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$(dirname "$0")/lib/container.sh"

PLAYBOOK=/opt/checkpoint-agent/ansible/site.yml
WORK=/root/t6500
TUNING_FILE=/etc/postgresql/15/main/conf.d/50-checkpoint-tuning.conf
SUITE_START=
DATA_DIR_HOST=
# Set by run_playbook: the output file (host side), exit code, seconds, and
# the recap's counts.
PB_LOG=
PB_RC=
PB_SECONDS=
PB_CHANGED=
PB_FAILED=
RUN_NO=0

suite_setup() {
	local t
	SUITE_START=$(date +%s)
	# The data disk: a folder of this suite's own under the test cache (not
	# under /tmp), removed by suite_teardown.
	mkdir -p "$TC_CACHE_DIR" || return 1
	DATA_DIR_HOST=$(mktemp -d "$TC_CACHE_DIR/t6500-data.XXXXXX") || return 1
	# like a fresh disk's root: others (postgres) may pass
	chmod 0755 "$DATA_DIR_HOST" || return 1
	tc_boot t6500 --private-network --bind="$DATA_DIR_HOST:/mnt/data" || return 1
	t=$(date +%s)
	install_ansible || return 1
	tl_log "ansible installed in the container in $(($(date +%s) - t))s"
	write_inventory || return 1
	tl_log "suite set-up took $(($(date +%s) - SUITE_START))s"
}

suite_teardown() {
	[ -n "$SUITE_START" ] && tl_log "suite wall time: $(($(date +%s) - SUITE_START))s"
	# The container first (its PostgreSQL holds files in the folder).
	tc_cleanup
	if [ -n "$DATA_DIR_HOST" ] && [ -d "$DATA_DIR_HOST" ]; then
		rm -rf --one-file-system -- "$DATA_DIR_HOST"
	fi
	SUITE_START=
	DATA_DIR_HOST=
	return 0
}

# install_ansible: Ansible from Debian inside the container, with sudo
# (become_user: postgres uses it, as on a real server) and python3-apt (the
# apt module needs it). They come from the base root's warm apt cache; the
# packages that cache lacks (python3-apt, when tests/lib/container.sh does
# not download it) are fetched on the host with `apt-get download` into this
# suite's cache folder and copied into the container's apt cache.
install_ansible() {
	local packages=(ansible sudo python3-apt) missing deb_cache=$TC_CACHE_DIR/t6500-debs
	missing=$(tc_exec apt-get install -y --no-install-recommends --print-uris "${packages[@]}" 2>/dev/null |
		sed -n "s/^'[^']*' \([^ ]*\.deb\) .*/\1/p" |
		while read -r deb; do [ -f "$TC_ROOT/var/cache/apt/archives/$deb" ] || printf '%s\n' "$deb"; done)
	if [ -n "$missing" ]; then
		mkdir -p "$deb_cache" || return 1
		local deb name
		for deb in $missing; do
			if [ ! -f "$deb_cache/$deb" ]; then
				name=${deb%%_*}
				(cd "$deb_cache" && apt-get download -q "$name" >/dev/null 2>&1) || {
					tl_log "$deb is not in the container's apt cache, and apt-get download $name failed on the host"
					return 1
				}
			fi
			cp "$deb_cache/$deb" "$TC_ROOT/var/cache/apt/archives/" || {
				tl_log "the host's apt-get download gave another version than the container wants: $deb"
				return 1
			}
		done
		tl_log "added to the container's apt cache from $deb_cache: $(tr '\n' ' ' <<<"$missing")"
	fi
	if ! tc_exec env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${packages[@]}" >"$TC_DIR/apt-ansible.log" 2>&1; then
		tl_log "installing ${packages[*]} in the container failed; last lines of $TC_DIR/apt-ansible.log:"
		tail -n 20 "$TC_DIR/apt-ansible.log" >&2
		return 1
	fi
}

# write_inventory: the container itself as the one checkpoint database
# server, reached with the local connection; and the test's variables.
write_inventory() {
	mkdir -p "$TC_ROOT$WORK" || return 1
	cat >"$TC_ROOT$WORK/inventory.yml" <<-'EOF'
		---
		all:
		  children:
		    checkpoint_db_servers:
		      hosts:
		        localhost:
		          ansible_connection: local
		          ansible_python_interpreter: /usr/bin/python3
	EOF
	cat >"$TC_ROOT$WORK/vars.yml" <<-'EOF'
		---
		# The repository is already on the host: build it where it is.
		checkpoint_agent_copy_source: false
		checkpoint_agent_source_dir: /opt/checkpoint-agent
		# No network beyond the warm apt cache: never refresh apt's lists.
		postgresql_apt_cache_valid_time: 315360000
		checkpoint_agent_apt_cache_valid_time: 315360000
		checkpoint_backup_apt_cache_valid_time: 315360000
	EOF
}

# run_playbook [ansible-playbook args...]: run site.yml inside the container;
# the output goes to $TC_DIR/playbook-N.log and the recap into PB_*.
run_playbook() {
	local start recap
	RUN_NO=$((RUN_NO + 1))
	PB_LOG=$TC_DIR/playbook-$RUN_NO.log
	start=$(date +%s.%N)
	tc_exec env ANSIBLE_CONFIG=/opt/checkpoint-agent/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 \
		ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_DISPLAY_SKIPPED_HOSTS=false \
		ansible-playbook -i "$WORK/inventory.yml" -e "@$WORK/vars.yml" "$PLAYBOOK" "$@" \
		>"$PB_LOG" 2>&1
	PB_RC=$?
	PB_SECONDS=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	recap=$(grep -E '^localhost +: ok=' "$PB_LOG" | tail -n 1)
	PB_CHANGED=$(sed -n 's/.* changed=\([0-9]*\).*/\1/p' <<<"$recap")
	PB_FAILED=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$recap")
	tl_log "playbook run $RUN_NO ($*): exit $PB_RC in ${PB_SECONDS}s; recap: ${recap:-none}"
	if [ "$PB_RC" -ne 0 ]; then
		tl_log "last lines of $PB_LOG:"
		tail -n 40 "$PB_LOG" >&2
	fi
}

# changed_tasks: the names of the tasks (and handlers) the last run reported
# as changed, one a line.
changed_tasks() {
	awk '/^(TASK|RUNNING HANDLER) \[/ { t = $0; sub(/^[A-Z ]+\[/, "", t); sub(/\] \**$/, "", t) }
		/^changed: / { print t }' "$PB_LOG" | sort -u
}

# psql_in PORT DB SQL: one value, as postgres over the socket, inside.
psql_in() {
	tc_exec runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$1" -d "$2" -c "$3"
}

# config_snapshot: checksums of every file the roles manage for cluster 15/main.
config_snapshot() {
	tc_exec bash -c 'find /etc/postgresql/15/main /etc/checkpoint-agent /etc/systemd/system/checkpoint-agent.service \
		/etc/systemd/system/checkpoint-agent.service.d /etc/systemd/system/postgresql@.service.d \
		/usr/local/bin/checkpoint-agent -type f -print0 | sort -z | xargs -0 sha256sum'
}

# table_checksums PORT: "db table rows md5" for every user table, computed
# independently of the role's own verification.
table_checksums() {
	local port=$1 db t
	for db in $(psql_in "$port" postgres "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1"); do
		while IFS= read -r t; do
			[ -n "$t" ] || continue
			printf '%s %s %s\n' "$db" "$t" \
				"$(psql_in "$port" "$db" "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '-') FROM $t AS x")"
		done < <(psql_in "$port" "$db" "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
			WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
	done
}

# stored_password_digest: the SHA-256 of the stored password (not the password).
stored_password_digest() {
	tc_exec sed -n 's/^password=//p' /etc/checkpoint-agent/credentials | sha256sum
}

test_01_first_run_converges() {
	local datadir
	run_playbook
	assertEquals "first run exit code (see $PB_LOG)" 0 "$PB_RC"
	assertEquals "first run: failed tasks" 0 "${PB_FAILED:-x}"
	datadir=$(psql_in 5432 postgres 'SHOW data_directory')
	assertEquals "data_directory" /mnt/data/postgresql/15/main "$datadir"
	assertTrue "the data lives in the host folder bound at /mnt/data" \
		"[ -f '$DATA_DIR_HOST/postgresql/15/main/PG_VERSION' ]"
	assertEquals "data directory mode" 700 "$(tc_exec stat -c %a /mnt/data/postgresql/15/main)"
	assertEquals "checkpoint-agent.service" active "$(tc_exec systemctl is-active checkpoint-agent.service)"
	assertEquals "LangGraph schema version" 9 \
		"$(psql_in 5432 langgraph_checkpoints 'SELECT max(v) FROM public.checkpoint_migrations')"
	assertEquals "the agent's status" 0 \
		"$(tc_exec /usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf status --exit-code >/dev/null 2>&1; echo $?)"
	assertEquals "mount drop-in" "RequiresMountsFor=/mnt/data" \
		"$(tc_exec grep '^RequiresMountsFor=' /etc/systemd/system/postgresql@.service.d/require-data-mount.conf)"
	assertEquals "credentials file mode and owner" "600 root" \
		"$(tc_exec stat -c '%a %U' /etc/checkpoint-agent/credentials)"
	assertEquals "env file mode and group" "640 checkpoint-app" \
		"$(tc_exec stat -c '%a %G' /etc/checkpoint-agent/app.env)"
	assertEquals "pg_hba lines using trust" 0 \
		"$(tc_exec grep -Ecv '^[[:space:]]*(#|$)|scram-sha-256|peer' /etc/postgresql/15/main/pg_hba.conf)"
	stored_password_digest >"$TC_DIR/password.sha256"
	# Backups (role checkpoint_backup): archiving after the one restart, the
	# stanza and its first full backup, the timers, the agent's check.
	assertEquals "archive_mode" on "$(psql_in 5432 postgres 'SHOW archive_mode')"
	assertEquals "data checksums on the cluster the role created" on "$(psql_in 5432 postgres 'SHOW data_checksums')"
	assertEquals "pgbackrest.conf mode and owner" "640 postgres" "$(tc_exec stat -c '%a %U' /etc/pgbackrest/pgbackrest.conf)"
	assertEquals "one full backup in the repository" 1 \
		"$(tc_exec runuser -u postgres -- pgbackrest --stanza=main --output=json info | grep -o '"type":"full"' | wc -l)"
	# Ansible writes the JSON back with its own spacing.
	assertEquals "the info the agent reads" 1 "$(tc_exec grep -Ec '"name": ?"main"' /var/lib/checkpoint-backup/info.json)"
	assertEquals "the timers" "active active active" \
		"$(tc_exec systemctl is-active checkpoint-backup-full.timer checkpoint-backup-diff.timer checkpoint-restore-drill.timer | tr '\n' ' ' | sed 's/ $//')"
	assertContains "the repository shares the data's disk here: the role says so" "$(cat "$PB_LOG")" "NOT a dead disk"
	assertContains "the agent's backup check" \
		"$(tc_exec runuser -u checkpoint-agent -- /usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf check 2>&1 | grep ' backup: ')" \
		"newest backup "
}

test_02_second_run_changes_nothing() {
	run_playbook
	assertEquals "second run exit code (see $PB_LOG)" 0 "$PB_RC"
	assertEquals "second run: changed in the recap (tasks: $(changed_tasks | tr '\n' ';'))" 0 "${PB_CHANGED:-x}"
	assertEquals "second run: failed" 0 "${PB_FAILED:-x}"
	tl_log "no-change re-run: ${PB_SECONDS}s"
}

test_03_check_mode_reports_no_change() {
	local before
	before=$(config_snapshot)
	run_playbook --check --diff
	assertEquals "check mode exit code (see $PB_LOG)" 0 "$PB_RC"
	assertEquals "check mode: changed (tasks: $(changed_tasks | tr '\n' ';'))" 0 "${PB_CHANGED:-x}"
	assertFalse "check mode printed a diff" "grep -q '^--- before' '$PB_LOG'"
	assertEquals "check mode changed no file" "$before" "$(config_snapshot)"
}

test_04_tuning_change_reloads_without_restart() {
	local start_before pid_before before after changed_files changed
	start_before=$(psql_in 5432 postgres 'SELECT pg_postmaster_start_time()')
	pid_before=$(tc_exec head -n 1 /mnt/data/postgresql/15/main/postmaster.pid)
	before=$(config_snapshot)
	assertNotEquals "work_mem before the change" 12MB "$(psql_in 5432 postgres 'SHOW work_mem')"
	run_playbook -e '{"postgresql_tuning_overrides": {"work_mem": "12MB"}}'
	assertEquals "exit code (see $PB_LOG)" 0 "$PB_RC"
	after=$(config_snapshot)
	changed_files=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed -n 's/^> [0-9a-f]*  //p')
	assertEquals "the files that changed" "$TUNING_FILE" "$changed_files"
	changed=$(changed_tasks | tr '\n' ';')
	assertEquals "the tasks that changed" \
		"postgresql : Reload the cluster;postgresql : Write the tuning file into the cluster's conf.d;" "$changed"
	assertEquals "work_mem after the reload" 12MB "$(psql_in 5432 postgres 'SHOW work_mem')"
	assertEquals "postmaster start time (a restart would change it)" "$start_before" \
		"$(psql_in 5432 postgres 'SELECT pg_postmaster_start_time()')"
	assertEquals "postmaster PID" "$pid_before" "$(tc_exec head -n 1 /mnt/data/postgresql/15/main/postmaster.pid)"
	assertNotContains "the restart handler ran" "$(cat "$PB_LOG")" "RUNNING HANDLER [postgresql : Restart PostgreSQL]"
}

test_05_cluster_with_data_is_relocated() {
	local before after
	# A host whose cluster already holds data: a second cluster at Debian's
	# default place, with a database, tables, TOASTed values and a view.
	tc_exec pg_createcluster --port=5433 --start 15 legacy >"$TC_DIR/legacy.log" 2>&1 ||
		fail "pg_createcluster 15 legacy failed: $(cat "$TC_DIR/legacy.log")"
	tc_exec runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p 5433 -d postgres >>"$TC_DIR/legacy.log" 2>&1 <<-'EOF'
		CREATE DATABASE legacy_app;
		\c legacy_app
		CREATE TABLE threads (id bigint PRIMARY KEY, name text, payload jsonb, blob bytea);
		INSERT INTO threads SELECT g, 'thread ' || g, jsonb_build_object('step', g, 'pad', repeat(md5(g::text), 40)),
			decode(repeat(md5(g::text), 200), 'hex') FROM generate_series(1, 3000) AS g;
		CREATE SCHEMA other;
		CREATE TABLE other."Mixed Case" (k text, v numeric);
		INSERT INTO other."Mixed Case" SELECT 'k' || g, g / 7.0 FROM generate_series(1, 500) AS g;
		CREATE VIEW recent AS SELECT id FROM threads WHERE id > 2900;
		\c postgres
		CREATE TABLE notes (line text);
		INSERT INTO notes VALUES ('kept in the postgres database');
	EOF
	assertEquals "loading the legacy data" 0 $?
	before=$(table_checksums 5433)
	assertContains "checksums before" "$before" "legacy_app public.threads 3000 "
	# One pgBackRest configuration per server: the second cluster is not backed up.
	run_playbook -e cpa_pg_cluster=legacy -e cpa_pg_port=5433 -e cpa_backup=0
	assertEquals "relocation run exit code (see $PB_LOG)" 0 "$PB_RC"
	assertEquals "data_directory of 15/legacy" /mnt/data/postgresql/15/legacy "$(psql_in 5433 postgres 'SHOW data_directory')"
	# The tables that were there before (the playbook then adds its own database).
	after=$(table_checksums 5433 | grep -Ff <(cut -d' ' -f1,2 <<<"$before" | sed 's/$/ /'))
	assertEquals "row counts and checksums after the relocation" "$before" "$after"
	assertTrue "the old directory is kept" "tc_exec test -f /var/lib/postgresql/15/legacy/PG_VERSION"
	assertTrue "the copy is in the host folder" "[ -f '$DATA_DIR_HOST/postgresql/15/legacy/PG_VERSION' ]"
	assertEquals "the relocation record" "ORIGINAL_DATA_DIRECTORY=/var/lib/postgresql/15/legacy METHOD=copied" \
		"$(tc_exec grep -E '^(ORIGINAL_DATA_DIRECTORY|METHOD)=' /var/lib/checkpoint-provision/datadir-15-legacy.env | tr '\n' ' ' | sed 's/ $//')"
	assertEquals "the agent follows the cluster: schema version on 15/legacy" 9 \
		"$(psql_in 5433 langgraph_checkpoints 'SELECT max(v) FROM public.checkpoint_migrations')"
	assertEquals "checkpoint-agent.service" active "$(tc_exec systemctl is-active checkpoint-agent.service)"
}

# app_connect [sed expression]: connect the way the application does, with
# CHECKPOINT_DB_URI from the env file (optionally altered), through libpq
# (psycopg2): the URI stays in this process; prints current_user and port.
app_connect() {
	tc_exec runuser -u nobody -g checkpoint-app -- python3 -c '
import re, sys, psycopg2
uri = re.search(r"^CHECKPOINT_DB_URI=(.*)$", open("/etc/checkpoint-agent/app.env").read(), re.M).group(1)
if len(sys.argv) > 1:
    uri = re.sub(sys.argv[1], sys.argv[2], uri)
conn = psycopg2.connect(uri, connect_timeout=5)
cur = conn.cursor()
cur.execute("SELECT current_user, current_setting(%s)", ("port",))
print(*cur.fetchone())
' "$@" 2>&1
}

test_06_app_role_connects_with_stored_password() {
	local out
	out=$(app_connect)
	assertEquals "connecting with the env file's URI (the stored password)" "ai_agent 5433" "$out"
	out=$(app_connect ':[^:@/]*@' ':not-the-password@')
	assertContains "a wrong password is refused" "$out" "password authentication failed"
	# shellcheck disable=SC2016 # expanded by the shell inside the container
	assertEquals "the env file holds the stored password" 1 \
		"$(tc_exec bash -c 'pw=$(sed -n "s/^password=//p" /etc/checkpoint-agent/credentials); grep -cF ":$pw@" /etc/checkpoint-agent/app.env')"
	assertEquals "the stored password never changed across the runs" "$(cat "$TC_DIR/password.sha256")" \
		"$(stored_password_digest)"
}

tl_run
