#!/bin/bash
# 60-agent.sh: step "agent". The agent's system user, its config (from
# templates/agent.conf.j2), its password file (0640 root:CPA_AGENT_USER), and
# the units from systemd/. Then:
#   - systemd is PID 1: enable and (re)start checkpoint-agent.service, which
#     applies the schema and reports ready; restarted only when the binary,
#     the config, the password or a unit changed since it was started;
#   - otherwise (containers, CI): start PostgreSQL with pg_ctlcluster, run
#     `checkpoint-agent migrate` and `check` directly, enable the unit for
#     the next boot, and say so.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/password.sh
. "$CPA_PROVISION_DIR/lib/password.sh"

UNIT_DIR=/etc/systemd/system
SERVICE=checkpoint-agent.service
UNITS_CHANGED=0

ensure_user() {
	local user=$CPA_AGENT_USER
	if getent passwd "$user" >/dev/null; then
		cpa_unchanged "system user $user exists"
		return 0
	fi
	cpa_run useradd --system --user-group --home-dir /var/lib/checkpoint-agent --no-create-home \
		--shell /usr/sbin/nologin --comment "checkpoint database agent" "$user"
	cpa_changed "new system user and group $user"
}

sets_as_libconfig_list() {
	local s out=""
	for s in $CPA_SETS; do
		out+="${out:+, }\"$s\""
	done
	printf '%s\n' "$out"
}

# the data directory the disk check watches: the cluster's own setting.
current_data_directory() {
	local d=""
	cpa_cluster_exists && d=$(cpa_cluster_data_directory || true)
	printf '%s\n' "${d:-$CPA_DATA_DIR}"
}

write_config() {
	local content group=$CPA_AGENT_USER
	getent group "$group" >/dev/null || group=root
	content=$(cpa_render "$CPA_TEMPLATES_DIR/agent.conf.j2" \
		cpa_db_role="$CPA_DB_ROLE" cpa_agent_db_role="$CPA_AGENT_DB_ROLE" cpa_db_name="$CPA_DB_NAME" cpa_pg_port="$CPA_PG_PORT" \
		cpa_agent_password_file="$CPA_AGENT_PASSWORD_FILE" cpa_agent_user="$CPA_AGENT_USER" \
		cpa_sets_list="$(sets_as_libconfig_list)" cpa_db_schema="$CPA_DB_SCHEMA" \
		cpa_pool_size="$CPA_POOL_SIZE" cpa_pool_instances="$CPA_POOL_INSTANCES" \
		cpa_data_dir="$(current_data_directory)" \
		cpa_backup_info_file="$([ "$CPA_BACKUP" != 1 ] || echo "$CPA_BACKUP_INFO_FILE")" \
		cpa_backup_drill_file="$([ "$CPA_BACKUP" != 1 ] || echo "$CPA_BACKUP_DRILL_FILE")" \
		cpa_backup_repo_path="$([ "$CPA_BACKUP" != 1 ] || echo "$CPA_BACKUP_REPO")" \
		cpa_backup_stanza="$CPA_BACKUP_STANZA" cpa_backup_interval_hours="$CPA_BACKUP_INTERVAL_HOURS" \
		cpa_retention="$CPA_RETENTION" cpa_retention_strategy="$CPA_RETENTION_STRATEGY" \
		cpa_retention_sweep_interval="$CPA_RETENTION_SWEEP_INTERVAL" \
		cpa_retention_sweep_limit="$CPA_RETENTION_SWEEP_LIMIT") || exit "$?"
	[ -d "$CPA_CONFIG_DIR" ] || cpa_run install -d -m 0755 "$CPA_CONFIG_DIR"
	printf '%s\n' "$content" | cpa_install_content "$CPA_AGENT_CONFIG" 0640 root "$group" "agent config" || cpa_installed "$?"
}

# write_password_file: the agent role's password (CPA_AGENT_DB_ROLE's, not
# the application's: on a server provisioned before the agent had a role of
# its own, this replaces the application's password in the file).
write_password_file() {
	local pw
	pw=$(cpa_credentials_agent_password)
	if [ -z "$pw" ]; then
		if [ "$CPA_DRY_RUN" = 1 ]; then
			cpa_changed "write $CPA_AGENT_PASSWORD_FILE (0640 root:$CPA_AGENT_USER) with the password of $CPA_AGENT_DB_ROLE"
			return 0
		fi
		cpa_die "$CPA_EX_CONFIG" "no password for the agent's role $CPA_AGENT_DB_ROLE in $CPA_CREDENTIALS_FILE" \
			"Run the role-db step first (provision.sh --from role-db)."
	fi
	if [ "$CPA_DRY_RUN" = 1 ] && ! getent group "$CPA_AGENT_USER" >/dev/null; then
		cpa_changed "write $CPA_AGENT_PASSWORD_FILE (0640 root:$CPA_AGENT_USER)"
		return 0
	fi
	printf '%s\n' "$pw" |
		cpa_install_content "$CPA_AGENT_PASSWORD_FILE" 0640 root "$CPA_AGENT_USER" "agent password file" --secret || cpa_installed "$?"
}

# render_unit FILE: a unit from systemd/ with this installation's paths and
# cluster unit (the files name /usr/local, /etc/checkpoint-agent and 15-main).
render_unit() {
	local line
	while IFS= read -r line || [ -n "$line" ]; do
		case "$line" in
		Exec*=*)
			line=${line//\/usr\/local\/bin\/checkpoint-agent/$CPA_AGENT_BIN}
			line=${line//\/etc\/checkpoint-agent\/agent.conf/$CPA_AGENT_CONFIG}
			;;
		Wants=postgresql@*.service | After=postgresql@*.service | Requires=postgresql@*.service)
			line="${line%%=*}=$CPA_PG_UNIT"
			;;
		esac
		printf '%s\n' "$line"
	done <"$1"
}

# packaged_units: true when the agent comes from its package (--agent-deb),
# whose units in /lib/systemd/system name /usr/bin and /etc/checkpoint-agent:
# then only the drop-ins are provisioning's, unless the config lives elsewhere.
packaged_units() {
	[ -n "$CPA_AGENT_DEB" ] && [ "$CPA_AGENT_CONFIG" = /etc/checkpoint-agent/agent.conf ]
}

# remove_shadowing_units: copies in /etc/systemd/system (from an install from
# source) would hide the package's units.
remove_shadowing_units() {
	local u
	for u in checkpoint-agent.service checkpoint-agent-migrate.service; do
		[ -e "$UNIT_DIR/$u" ] || continue
		cpa_run rm -f "$UNIT_DIR/$u"
		cpa_changed "removed $UNIT_DIR/$u: the package's unit in /lib/systemd/system takes over"
		UNITS_CHANGED=1
	done
}

install_units() {
	local src rel content rc
	local -a units=(checkpoint-agent.service checkpoint-agent-migrate.service
		checkpoint-agent.service.d/postgresql-cluster.conf)
	if packaged_units; then
		units=(checkpoint-agent.service.d/postgresql-cluster.conf)
		remove_shadowing_units
	fi
	for rel in "${units[@]}"; do
		src=$CPA_REPO_DIR/systemd/$rel
		[ -r "$src" ] || cpa_die "$CPA_EX_CONFIG" "$src is missing" "It ships with the repository (systemd/)."
		content=$(render_unit "$src")
		[ -d "$(dirname "$UNIT_DIR/$rel")" ] || cpa_run install -d -m 0755 "$(dirname "$UNIT_DIR/$rel")"
		rc=0
		printf '%s\n' "$content" | cpa_install_content "$UNIT_DIR/$rel" 0644 root root "unit" || rc=$?
		if cpa_install_result "$rc"; then
			UNITS_CHANGED=1
		fi
	done
	# The one-shot migrate unit has the same job; the resident agent's
	# service is the one provisioning enables (see systemd/README.md).
	if [ -e "$UNIT_DIR/checkpoint-agent.service.d/postgresql-cluster.conf" ] || [ "$CPA_DRY_RUN" = 1 ]; then
		[ -d "$UNIT_DIR/checkpoint-agent-migrate.service.d" ] || cpa_run install -d -m 0755 "$UNIT_DIR/checkpoint-agent-migrate.service.d"
		content=$(render_unit "$CPA_REPO_DIR/systemd/checkpoint-agent.service.d/postgresql-cluster.conf")
		rc=0
		printf '%s\n' "$content" | cpa_install_content "$UNIT_DIR/checkpoint-agent-migrate.service.d/postgresql-cluster.conf" 0644 root root "unit" || rc=$?
		if cpa_install_result "$rc"; then
			UNITS_CHANGED=1
		fi
	fi
}

# inputs_checksum: what the running service was started with (a file that
# does not exist yet, under --dry-run, counts as empty).
inputs_checksum() {
	local f
	for f in "$CPA_AGENT_BIN" "$CPA_AGENT_CONFIG" "$CPA_AGENT_PASSWORD_FILE" "$UNIT_DIR/$SERVICE" \
		"/lib/systemd/system/$SERVICE" "$UNIT_DIR/checkpoint-agent.service.d/postgresql-cluster.conf"; do
		if [ -f "$f" ]; then sha256sum <"$f"; else echo "absent $f"; fi
	done | sha256sum | cut -d' ' -f1
}

run_agent() {
	runuser -u "$CPA_AGENT_USER" -- "$CPA_AGENT_BIN" -c "$CPA_AGENT_CONFIG" "$@"
}

# health_check: the agent's check; CRITICAL or UNKNOWN stop provisioning.
health_check() {
	local out rc=0
	out=$(run_agent check 2>&1) || rc=$?
	case "$rc" in
	0) cpa_unchanged "health check OK: $(head -n 1 <<<"$out")" ;;
	1) cpa_warn "health check WARNING: $out" ;;
	*)
		printf '%s\n' "$out" >&2
		cpa_die "$CPA_EX_UNAVAILABLE" "the agent's health check failed (exit $rc)" \
			"Its output is above; checkpoint-agent -c $CPA_AGENT_CONFIG check repeats it."
		;;
	esac
}

start_with_systemd() {
	local recorded now state
	if [ "$UNITS_CHANGED" = 1 ]; then
		cpa_run systemctl daemon-reload
	fi
	if [ "$(systemctl is-enabled "$SERVICE" 2>/dev/null || true)" = enabled ]; then
		cpa_unchanged "$SERVICE enabled"
	else
		cpa_run systemctl enable --quiet "$SERVICE"
		cpa_changed "$SERVICE enabled"
	fi
	recorded=$(cat "$CPA_STATE_DIR/agent-inputs.sha256" 2>/dev/null || true)
	now=$(inputs_checksum)
	state=$(systemctl is-active "$SERVICE" 2>/dev/null || true)
	if [ "$state" = active ] && [ "$recorded" = "$now" ] && [ "$UNITS_CHANGED" = 0 ]; then
		cpa_unchanged "$SERVICE active"
		return 0
	fi
	if [ "$CPA_DRY_RUN" = 1 ]; then
		if [ "$state" = active ]; then
			cpa_changed "restart $SERVICE (its binary, config, password or unit changed)"
		else
			cpa_changed "start $SERVICE (it applies the schema and reports ready)"
		fi
		return 0
	fi
	# A deliberate (re)start is not a crash loop: clear the unit's start-rate
	# counter, so StartLimitBurst= stops only an agent that keeps failing, not
	# provisioning runs (or rollback.sh) that restart it several times in ten minutes.
	systemctl reset-failed "$SERVICE" 2>/dev/null || true
	if [ "$state" = active ]; then
		systemctl restart "$SERVICE" || service_failed restart
		cpa_changed "restarted $SERVICE (its binary, config, password or unit changed)"
	else
		systemctl start "$SERVICE" || service_failed start
		cpa_changed "started $SERVICE (schema applied, checks passed: it reported ready)"
	fi
	install -d -m 0700 "$CPA_STATE_DIR"
	printf '%s\n' "$now" >"$CPA_STATE_DIR/agent-inputs.sha256"
}

service_failed() {
	systemctl status --no-pager --lines=20 "$SERVICE" >&2 || true
	cpa_die "$CPA_EX_UNAVAILABLE" "systemctl $1 $SERVICE failed" \
		"Its status and last log lines are above; journalctl -u $SERVICE has the rest."
}

run_without_systemd() {
	local rc=0
	cpa_info "systemd is not running (no /run/systemd/system): migrating and checking directly"
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "pg_ctlcluster $CPA_PG_VERSION $CPA_PG_CLUSTER start; checkpoint-agent migrate; checkpoint-agent check"
	else
		cpa_cluster_start
		cpa_wait_ready 60 || cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL does not accept connections"
		run_agent status --exit-code >/dev/null 2>&1 || rc=$?
		case "$rc" in
		0) cpa_unchanged "schema up to date (checkpoint-agent status)" ;;
		1)
			run_agent migrate || cpa_die "$CPA_EX_FAILED" "checkpoint-agent migrate failed" "Its messages are above."
			cpa_changed "applied the pending migrations (checkpoint-agent migrate)"
			;;
		*)
			run_agent status >&2 || true
			cpa_die "$CPA_EX_FAILED" "checkpoint-agent status exited $rc (2: the schema drifted; 69: no database)" \
				"Its report is above; checkpoint-agent verify shows the differences."
			;;
		esac
	fi
	if [ "$(systemctl is-enabled "$SERVICE" 2>/dev/null || true)" = enabled ]; then
		cpa_unchanged "$SERVICE enabled for the next boot"
	else
		if cpa_run systemctl enable --quiet "$SERVICE" 2>/dev/null; then
			cpa_changed "$SERVICE enabled"
		else
			cpa_warn "could not enable $SERVICE offline; run: systemctl enable $SERVICE"
		fi
	fi
	cpa_info "NOTE: $SERVICE is not running now: it starts at the next boot (systemd is not PID 1 here)"
}

main() {
	cpa_init_step agent "$@"
	[ -x "$CPA_AGENT_BIN" ] || [ "$CPA_DRY_RUN" = 1 ] ||
		cpa_die "$CPA_EX_CONFIG" "$CPA_AGENT_BIN is not installed" "Run the install step first (provision.sh --from install)."
	ensure_user
	write_config
	write_password_file
	install_units
	if cpa_systemd_running; then
		start_with_systemd
	else
		run_without_systemd
	fi
	[ "$CPA_DRY_RUN" = 1 ] || health_check
}

main "$@"
