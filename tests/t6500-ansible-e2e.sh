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
# The tests run in order and build on each other: check mode on the fresh
# host, first run (TLS, the agent's own role, the lock released), second
# run, check mode, a tuning change in check mode and for real, a reload or
# restart an earlier play did not make, a refused tuning file put back,
# relocation of a second cluster that holds data (flushed before the switch),
# the refusals the scripts make too (a newer copy, a copy with a
# postmaster.pid, WAL or tablespaces outside the directory), a failed copy
# whose removal fails (the cluster is up again first), the lock another
# provisioning holds, then the application's connection with the stored
# password, and the upgrade of a host of the older layout with remote
# clients over TLS.

#
# suite-timeout: 1500 (tests/run.sh: it provisions a whole server, several times)
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

test_00_check_mode_on_a_fresh_host_says_what_it_would_do() {
	run_playbook --check
	assertEquals "check mode on a host without PostgreSQL (see $PB_LOG)" 0 "$PB_RC"
	assertContains "$(cat "$PB_LOG")" "Check mode on a host without PostgreSQL"
	assertFalse "nothing was installed" "tc_exec test -e /usr/bin/pg_lsclusters"
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
	assertEquals "TLS" "on TLSv1.2" "$(psql_in 5432 postgres "SELECT current_setting('ssl') || ' ' || current_setting('ssl_min_protocol_version')")"
	assertEquals "the agent's role: pg_monitor, not the owner's rights, but may become it" "t f t" \
		"$(psql_in 5432 postgres "SELECT pg_has_role('checkpoint_monitor', 'pg_monitor', 'USAGE'), pg_has_role('checkpoint_monitor', 'ai_agent', 'USAGE'), pg_has_role('checkpoint_monitor', 'ai_agent', 'MEMBER')" | tr '|' ' ')"
	assertEquals "the application's role reads no other session" f \
		"$(psql_in 5432 postgres "SELECT pg_has_role('ai_agent', 'pg_read_all_stats', 'MEMBER')")"
	assertContains "the agent checks as its own role, over TLS" \
		"$(tc_exec runuser -u checkpoint-agent -- /usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf check 2>&1 | grep ' connect:')" \
		"connected as checkpoint_monitor@localhost:5432/langgraph_checkpoints"
	assertTrue "the lock is free after the play" "tc_exec flock -n /run/lock/checkpoint-provision.lock true"
	assertEquals "no lock holder is left" "" "$(tc_exec pgrep -f 'flock --wait' || true)"
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
	# The tuning is the postgresql role's: the tuning tests run it alone
	# (--tags postgresql, as an operator would), which saves a minute or
	# more per run; test_02 and test_03 show the whole play changes nothing.
	run_playbook --tags postgresql -e '{"postgresql_tuning_overrides": {"work_mem": "12MB"}}'
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

test_04b_check_mode_with_a_tuning_change_reports_it_and_changes_nothing() {
	local before
	before=$(config_snapshot)
	run_playbook --check --tags postgresql -e '{"postgresql_tuning_overrides": {"work_mem": "13MB"}}'
	assertEquals "check mode with a change (see $PB_LOG)" 0 "$PB_RC"
	assertContains "it reports the change" "$(changed_tasks)" "Write the tuning file into the cluster's conf.d"
	assertEquals "and changes no file" "$before" "$(config_snapshot)"
	assertEquals "nor the server" 12MB "$(psql_in 5432 postgres 'SHOW work_mem')"
}

test_04c_a_reload_or_restart_an_earlier_play_did_not_make_is_made() {
	local conf=$TUNING_FILE
	assertEquals 35 "$(psql_in 5432 postgres 'SHOW max_connections')"
	# A play with max_connections 60 that failed after writing the tuning
	# file and reloading, before its restart: the file as that play renders
	# it (only the max_connections line differs), loaded, the restart lost.
	tc_exec sed -i 's/^max_connections = 35$/max_connections = 60/' "$conf"
	tc_exec pg_ctlcluster 15 main reload
	sleep 1
	run_playbook --tags postgresql -e '{"postgresql_tuning_overrides": {"work_mem": "12MB", "max_connections": "60"}}'
	assertEquals "exit code (see $PB_LOG)" 0 "$PB_RC"
	assertContains "$(changed_tasks)" "Restart for settings that wait for one (an earlier run's change)"
	assertEquals "the restart was made" 60 "$(psql_in 5432 postgres 'SHOW max_connections')"
	# One that wrote its file and stopped before the reload.
	tc_exec sed -i 's/^max_connections = 60$/max_connections = 35/' "$conf"
	run_playbook --tags postgresql -e '{"postgresql_tuning_overrides": {"work_mem": "12MB"}}'
	assertEquals "exit code (see $PB_LOG)" 0 "$PB_RC"
	assertContains "$(changed_tasks)" "Reload for configuration files the server has not loaded"
	assertEquals "reloaded and restarted" 35 "$(psql_in 5432 postgres 'SHOW max_connections')"
}

test_04d_a_tuning_file_postgresql_refuses_is_put_back() {
	local before
	before=$(tc_exec md5sum "$TUNING_FILE")
	run_playbook --tags postgresql -e '{"postgresql_tuning_overrides": {"work_mem": "12MB", "max_connections": "9999999"}}'
	assertNotEquals "the play fails (see $PB_LOG)" 0 "$PB_RC"
	assertContains "$(cat "$PB_LOG")" "PostgreSQL refuses the new $TUNING_FILE"
	assertEquals "the previous file is back" "$before" "$(tc_exec md5sum "$TUNING_FILE")"
	# conf.d also holds the backup role's 60-checkpoint-archive.conf; Ansible's
	# backup copies are named FILE.PID.TIME~.
	assertEquals "no backup file is left in conf.d" "" \
		"$(tc_exec find /etc/postgresql/15/main/conf.d -type f ! -name '*.conf')"
	assertEquals "the server runs on as it was" 35 "$(psql_in 5432 postgres 'SHOW max_connections')"
	assertTrue "the lock was released although the play failed" "tc_exec flock -n /run/lock/checkpoint-provision.lock true"
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
	assertEquals "the copy was flushed to the disk before the switch" "flush switch" "$(sed -n \
		-e 's/^TASK \[postgresql : Flush the copy to the disk.*/flush/p' \
		-e 's/^TASK \[postgresql : Point the cluster at the copy\].*/switch/p' "$PB_LOG" | paste -sd ' ')"
	printf '%s\n' "$before" >"$TC_DIR/legacy.checksums"
}

# run_refused NAME CLUSTER PORT TEXT: the postgresql role on CLUSTER must
# fail with TEXT and change nothing (data_directory as before).
run_refused() {
	local name=$1 cluster=$2 port=$3 text=$4 dir_before
	dir_before=$(tc_exec pg_conftool -s 15 "$cluster" show data_directory)
	run_playbook --tags postgresql -e "cpa_pg_cluster=$cluster" -e "cpa_pg_port=$port"
	assertNotEquals "$name: refused (see $PB_LOG)" 0 "$PB_RC"
	assertContains "$name" "$(cat "$PB_LOG")" "$text"
	assertContains "$name" "$(cat "$PB_LOG")" "Nothing was changed"
	assertEquals "$name: data_directory as before" "$dir_before" "$(tc_exec pg_conftool -s 15 "$cluster" show data_directory)"
}

test_05b_the_scripts_refusals_hold_for_the_role_too() {
	# A copy at the target that is newer than the cluster: 15/legacy pointed
	# back by hand at the directory the move kept, which is older.
	tc_exec systemctl stop postgresql@15-legacy.service
	tc_exec pg_conftool 15 legacy set data_directory /var/lib/postgresql/15/legacy
	run_refused newer legacy 5433 "not provably older than /var/lib/postgresql/15/legacy"
	assertContains "$(cat "$PB_LOG")" "is later than the cluster's"
	assertTrue "the newer copy is untouched" "[ -f '$DATA_DIR_HOST/postgresql/15/legacy/PG_VERSION' ]"
	tc_exec pg_conftool 15 legacy set data_directory /mnt/data/postgresql/15/legacy
	tc_exec systemctl start postgresql@15-legacy.service
	assertEquals "legacy's rows" "$(cat "$TC_DIR/legacy.checksums")" \
		"$(table_checksums 5433 | grep -Ff <(cut -d' ' -f1,2 <"$TC_DIR/legacy.checksums" | sed 's/$/ /'))"
	# A cluster that holds data, and a copy of it with a postmaster.pid at the target.
	tc_exec pg_createcluster --port=5434 --start 15 refuse >>"$TC_DIR/refuse.log" 2>&1 || fail "pg_createcluster"
	psql_in 5434 postgres "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)" >/dev/null
	tc_exec systemctl stop postgresql@15-refuse.service
	tc_exec sh -c 'mkdir -p /mnt/data/postgresql/15 && cp -a /var/lib/postgresql/15/refuse /mnt/data/postgresql/15/refuse &&
		echo 4242 >/mnt/data/postgresql/15/refuse/postmaster.pid'
	tc_exec systemctl start postgresql@15-refuse.service
	run_refused postmaster.pid refuse 5434 "it has a postmaster.pid"
	tc_exec rm -rf /mnt/data/postgresql/15/refuse
	# WAL outside the directory.
	tc_exec systemctl stop postgresql@15-refuse.service
	tc_exec sh -c 'mv /var/lib/postgresql/15/refuse/pg_wal /var/lib/postgresql/15/refuse-wal &&
		ln -s /var/lib/postgresql/15/refuse-wal /var/lib/postgresql/15/refuse/pg_wal'
	tc_exec systemctl start postgresql@15-refuse.service
	run_refused pg_wal refuse 5434 "pg_wal is a symlink"
	tc_exec systemctl stop postgresql@15-refuse.service
	tc_exec sh -c 'rm /var/lib/postgresql/15/refuse/pg_wal && mv /var/lib/postgresql/15/refuse-wal /var/lib/postgresql/15/refuse/pg_wal'
	tc_exec systemctl start postgresql@15-refuse.service
	# A tablespace.
	tc_exec install -d -o postgres -g postgres /var/lib/postgresql/refuse-space
	psql_in 5434 postgres "CREATE TABLESPACE elsewhere LOCATION '/var/lib/postgresql/refuse-space'" >/dev/null
	run_refused tablespace refuse 5434 "uses tablespaces"
	assertEquals "the cluster runs as it was" 1 "$(psql_in 5434 postgres 'SELECT count(*) FROM kept')"
	psql_in 5434 postgres "DROP TABLESPACE elsewhere" >/dev/null
}

test_05c_a_failed_copy_starts_the_cluster_before_it_removes_the_copy() {
	local mnt
	# The target is a small file system of its own (mounted from outside the
	# container): the copy runs out of space, and the copy's directory, a
	# mount point, cannot be removed.
	mnt=/mnt/data/postgresql/15/refuse
	tc_exec install -d -o postgres -g postgres -m 0700 "$mnt"
	nsenter -t "$TC_PID" -m mount -t tmpfs -o size=4m,mode=0700,uid=0,gid=0 cpa-small "$mnt" || fail "no tmpfs"
	tc_exec chown postgres:postgres "$mnt"
	psql_in 5434 postgres "CREATE TABLE big AS SELECT g, md5(g::text) FROM generate_series(1, 200000) g" >/dev/null
	run_playbook --tags postgresql -e cpa_pg_cluster=refuse -e cpa_pg_port=5434
	nsenter -t "$TC_PID" -m umount "$mnt"
	assertNotEquals "the copy failed (see $PB_LOG)" 0 "$PB_RC"
	assertEquals "the cluster was started again first" active "$(tc_exec systemctl is-active postgresql@15-refuse.service)"
	assertEquals "on its old directory" /var/lib/postgresql/15/refuse "$(psql_in 5434 postgres 'SHOW data_directory')"
	assertEquals "with its rows" 200000 "$(psql_in 5434 postgres 'SELECT count(*) FROM big')"
	tc_exec pg_dropcluster --stop 15 refuse
}

test_05d_another_provisioning_holding_the_lock_stops_the_play() {
	local holder
	# -o: the sleep does not inherit the lock, so killing flock releases it at once.
	tc_exec sh -c 'flock -o /run/lock/checkpoint-provision.lock sleep 120 >/dev/null 2>&1 &
		echo "provision.sh (pid $!, since a test)" >/run/lock/checkpoint-provision.lock.owner'
	sleep 0.5
	run_playbook
	holder=$(tc_exec pgrep -f 'flock -o /run/lock/checkpoint-provision.lock sleep 120')
	tc_exec kill "$holder"
	tc_exec pkill -f '^sleep 120$' || true
	assertNotEquals "refused (see $PB_LOG)" 0 "$PB_RC"
	assertContains "$(cat "$PB_LOG")" "Another provisioning is running on this host"
	assertContains "$(cat "$PB_LOG")" "held by provision.sh (pid"
	assertNotContains "no role ran" "$(cat "$PB_LOG")" "TASK [postgresql"
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

test_07_a_host_of_the_older_layout_is_upgraded_and_remote_clients_use_tls() {
	local out
	# The layout before the agent had a role of its own (on 15/legacy, where
	# the agent now points): the agent logged in as the application's role,
	# a member of pg_read_all_stats.
	tc_exec systemctl stop checkpoint-agent.service
	psql_in 5433 postgres "GRANT pg_read_all_stats TO ai_agent; DROP ROLE checkpoint_monitor; DROP ROLE checkpoint_monitor_as_owner" >/dev/null
	tc_exec sed -i -e 's|postgresql://checkpoint_monitor@|postgresql://ai_agent@|' -e '/owner_role/d' /etc/checkpoint-agent/agent.conf
	tc_exec sed -i '/^agent_/d' /etc/checkpoint-agent/credentials
	tc_exec sh -c 'sed -n "s/^password=//p" /etc/checkpoint-agent/credentials >/etc/checkpoint-agent/db-password'
	tc_exec systemctl start checkpoint-agent.service || fail "the older layout's agent did not start"
	nsenter -t "$TC_PID" -n ip addr add 192.0.2.10/32 dev lo || fail "cannot add 192.0.2.10"
	run_playbook -e cpa_pg_cluster=legacy -e cpa_pg_port=5433 -e cpa_listen_addresses=localhost,192.0.2.10 \
		-e '{"cpa_allowed_cidrs": ["192.0.2.10/32"]}' -e cpa_db_public_host=192.0.2.10
	assertEquals "upgrade exit code (see $PB_LOG)" 0 "$PB_RC"
	assertEquals "the application's role reads no other session" f \
		"$(psql_in 5433 postgres "SELECT pg_has_role('ai_agent', 'pg_read_all_stats', 'MEMBER')")"
	assertContains "the agent checks as its own role" \
		"$(tc_exec runuser -u checkpoint-agent -- /usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf check 2>&1 | grep ' connect:')" \
		"connected as checkpoint_monitor@"
	assertNotEquals "the agent's password file no longer holds the application's password" \
		"$(sed -n 's/^password=//p' "$TC_ROOT/etc/checkpoint-agent/credentials")" "$(cat "$TC_ROOT/etc/checkpoint-agent/db-password")"
	assertEquals "the other network: hostssl" hostssl \
		"$(psql_in 5433 postgres "SELECT type FROM pg_hba_file_rules WHERE address = '192.0.2.10'")"
	assertContains "$(tc_exec grep '^CHECKPOINT_DB_URI=' /etc/checkpoint-agent/app-remote.env)" "@192.0.2.10:5433/langgraph_checkpoints?sslmode=require"
	out=$(app_connect_remote)
	assertEquals "the remote URI connects over TLS" "ai_agent True" "$out"
	out=$(app_connect_remote 'sslmode=require' 'sslmode=disable')
	assertContains "never without TLS" "$out" "no encryption"
}

# app_connect_remote [sed expression]: like app_connect, with app-remote.env.
app_connect_remote() {
	tc_exec runuser -u nobody -g checkpoint-app -- python3 -c '
import re, sys, psycopg2
uri = re.search(r"^CHECKPOINT_DB_URI=(.*)$", open("/etc/checkpoint-agent/app-remote.env").read(), re.M).group(1)
if len(sys.argv) > 1:
    uri = re.sub(sys.argv[1], sys.argv[2], uri)
conn = psycopg2.connect(uri, connect_timeout=5)
cur = conn.cursor()
cur.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
print(*cur.fetchone())
' "$@" 2>&1
}

tl_run
