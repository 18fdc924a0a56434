#!/bin/bash
# 55-backup.sh: step "backup", before the agent's (which checks the backups). Backups and point-in-time recovery with
# pgBackRest (Debian's package):
#   - the repository folder (CPA_BACKUP_REPO, 0750 postgres), with a loud
#     warning when it is on the data directory's file system;
#   - /etc/pgbackrest/pgbackrest.conf (stanza named after the cluster, 0640
#     postgres) and, with --backup-cipher, conf.d/checkpoint-cipher.conf
#     (0600 postgres) with a generated passphrase;
#   - WAL archiving in conf.d/60-checkpoint-archive.conf: archive_mode needs
#     one restart, done here once (the plan and the summary say so);
#   - stanza-create and check, and the first full backup;
#   - the units: full and differential backups and the restore drill, with
#     their timers; restore.sh and its libraries installed for the drill;
#   - CPA_BACKUP_STATUS_DIR (0755 postgres), where the backup units write
#     `pgbackrest info --output=json` (0644: backup labels, sizes and WAL
#     names, no secret) for the agent's check, which reads it as its own
#     user without any access to the repository.
# With --no-backup it configures nothing. A second run changes nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/datadir.sh
. "$CPA_PROVISION_DIR/lib/datadir.sh"

UNIT_DIR=/etc/systemd/system
BACKUP_UNITS=(checkpoint-backup-full.service checkpoint-backup-diff.service checkpoint-backup-full.timer
	checkpoint-backup-diff.timer checkpoint-restore-drill.service checkpoint-restore-drill.timer)
TIMERS=(checkpoint-backup-full.timer checkpoint-backup-diff.timer checkpoint-restore-drill.timer)
CONFIG_CHANGED=0
UNITS_CHANGED=0

install_pgbackrest() {
	if cpa_pkg_installed pgbackrest; then
		cpa_unchanged "package installed: pgbackrest ($(pgbackrest version 2>/dev/null || echo '?'))"
		return 0
	fi
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "install package: pgbackrest"
		return 0
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbackrest ||
		cpa_die "$CPA_EX_UNAVAILABLE" "apt-get install pgbackrest failed" \
			"The apt output above says why; pgBackRest is in Debian 12's main archive."
	cpa_changed "installed package: pgbackrest ($(pgbackrest version))"
}

# ensure_repository: the folder (its parents are made only when missing,
# never changed), and the warning when it shares the data's disk.
ensure_repository() {
	local warning parent
	parent=$(dirname "$CPA_BACKUP_REPO")
	[ -d "$parent" ] || cpa_run install -d -m 0755 "$parent"
	cpa_ensure_dir "$CPA_BACKUP_REPO" 0750 postgres postgres "pgBackRest repository" ||
		cpa_unchanged "pgBackRest repository $CPA_BACKUP_REPO (0750 postgres)"
	warning=$(cpa_backup_repo_warning)
	if [ -n "$warning" ]; then
		cpa_warn "$warning"
	fi
}

write_pgbackrest_conf() {
	local content rc=0
	content=$(cpa_render "$CPA_TEMPLATES_DIR/pgbackrest.conf.j2" \
		cpa_backup_repo="$CPA_BACKUP_REPO" cpa_backup_retention_full="$CPA_BACKUP_RETENTION_FULL" \
		cpa_backup_stanza="$CPA_BACKUP_STANZA" cpa_data_dir="$(backup_data_directory)" \
		cpa_pg_port="$CPA_PG_PORT") || exit "$?"
	cpa_ensure_dir /etc/pgbackrest 0755 root root "pgBackRest configuration folder" || true
	cpa_ensure_dir /etc/pgbackrest/conf.d 0750 root postgres "pgBackRest include folder" || true
	printf '%s\n' "$content" | cpa_install_content "$CPA_PGBACKREST_CONF" 0640 postgres postgres "pgBackRest configuration" || rc=$?
	if cpa_install_result "$rc"; then
		CONFIG_CHANGED=1
	fi
}

# backup_data_directory: the cluster's data directory as configured (the
# datadir step has placed it), else the target.
backup_data_directory() {
	local d=""
	cpa_cluster_exists && d=$(cpa_cluster_data_directory || true)
	printf '%s\n' "${d:-$CPA_DATA_DIR}"
}

# write_cipher_conf: with --backup-cipher, the passphrase (kept once made:
# a new one would make the repository unreadable).
write_cipher_conf() {
	local pass rc=0
	if [ "$CPA_BACKUP_CIPHER" != 1 ]; then
		if [ -f "$CPA_PGBACKREST_CIPHER_CONF" ]; then
			cpa_warn "$CPA_PGBACKREST_CIPHER_CONF exists but --backup-cipher is not given: the repository stays encrypted (a repository cannot change its cipher); the file is kept"
		fi
		return 0
	fi
	if [ -f "$CPA_PGBACKREST_CIPHER_CONF" ]; then
		pass=$(sed -n 's/^repo1-cipher-pass=//p' "$CPA_PGBACKREST_CIPHER_CONF")
	elif [ -f "$CPA_BACKUP_REPO/backup/$CPA_BACKUP_STANZA/backup.info" ]; then
		cpa_die "$CPA_EX_REFUSED" "--backup-cipher: the repository $CPA_BACKUP_REPO already holds an unencrypted stanza $CPA_BACKUP_STANZA" \
			"Nothing was changed. pgBackRest cannot encrypt an existing repository: choose an empty --backup-repo for the encrypted one, or leave out --backup-cipher."
	else
		pass=
	fi
	if [ -z "$pass" ]; then
		if [ "$CPA_DRY_RUN" = 1 ]; then
			cpa_changed "generate a repository passphrase into $CPA_PGBACKREST_CIPHER_CONF (0600 postgres)"
			CONFIG_CHANGED=1
			return 0
		fi
		pass=$(head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_')
	fi
	printf '[global]\nrepo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=%s\n' "$pass" |
		cpa_install_content "$CPA_PGBACKREST_CIPHER_CONF" 0600 postgres postgres "repository passphrase" --secret || rc=$?
	if cpa_install_result "$rc"; then
		CONFIG_CHANGED=1
	fi
}

# write_archive_conf: the archive drop-in; archive_mode needs the one restart.
# The reload and the restart are decided by cpa_settle_config from the
# server's own view (a file newer than its last load, pending_restart), not
# from "this run wrote the file": a run cut short after the write still gets
# its restart from the next run.
write_archive_conf() {
	local content mode rc=0 changed=0
	content=$(cpa_render "$CPA_TEMPLATES_DIR/postgresql-archive.conf.j2" \
		cpa_backup_stanza="$CPA_BACKUP_STANZA" cpa_archive_timeout="$CPA_ARCHIVE_TIMEOUT") || exit "$?"
	[ "$CPA_DRY_RUN" = 1 ] || install -d -m 0755 -o postgres -g postgres "$CPA_PG_CONF_DIR/conf.d"
	printf '%s\n' "$content" | cpa_install_content "$CPA_BACKUP_ARCHIVE_CONF" 0644 postgres postgres "WAL archiving drop-in" || rc=$?
	cpa_install_result "$rc" && changed=1
	mode=off
	if [ "$(cpa_cluster_status)" = online ]; then
		mode=$(cpa_psql -d postgres -c 'SHOW archive_mode' 2>/dev/null || echo off)
	fi
	if [ "$mode" != on ] && [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "RESTART PostgreSQL once: archive_mode = on needs it (this is the only restart backups need)"
	fi
	cpa_settle_config "WAL archiving" "$changed"
	if [ "$CPA_DRY_RUN" != 1 ] && [ "$mode" != on ] && [ "$(cpa_psql -d postgres -c 'SHOW archive_mode' 2>/dev/null)" = on ]; then
		install -d -m 0700 "$CPA_STATE_DIR"
		printf 'RESTARTED=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$CPA_STATE_DIR/backup-archive-restart.env"
	fi
}

ensure_status_dir() {
	cpa_ensure_dir "$CPA_BACKUP_STATUS_DIR" 0755 postgres postgres "backup status folder" ||
		cpa_unchanged "backup status folder $CPA_BACKUP_STATUS_DIR"
}

# write_info_file: what the backup units write after each run, now.
write_info_file() {
	local tmp=$CPA_BACKUP_STATUS_DIR/.info.json.tmp
	# shellcheck disable=SC2016 # the inner shell expands its own arguments
	runuser -u postgres -- sh -c 'umask 022; pgbackrest --stanza="$1" --output=json info >"$2" && mv -f "$2" "$3"' \
		sh "$CPA_BACKUP_STANZA" "$tmp" "$CPA_BACKUP_INFO_FILE" ||
		cpa_warn "could not write $CPA_BACKUP_INFO_FILE (pgbackrest info failed); the agent's backup check will say so"
}

# stanza_and_first_backup: stanza-create when the stanza is missing, check
# when anything changed, a full backup when there is none.
stanza_and_first_backup() {
	local json status code backups start
	if [ "$CPA_DRY_RUN" = 1 ]; then
		if [ -f "$CPA_BACKUP_REPO/backup/$CPA_BACKUP_STANZA/backup.info" ] && [ "$CONFIG_CHANGED" = 0 ] &&
			[ -n "$(cpa_backup_list "$(cpa_backup_info 2>/dev/null || true)")" ]; then
			cpa_unchanged "stanza $CPA_BACKUP_STANZA exists and has a backup"
		else
			cpa_changed "pgbackrest --stanza=$CPA_BACKUP_STANZA stanza-create (if missing), check, and a first full backup (if none)"
		fi
		return 0
	fi
	cpa_cluster_start
	cpa_wait_ready 60 || cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL does not accept connections"
	json=$(cpa_backup_info) || cpa_die "$CPA_EX_FAILED" "pgbackrest info failed" "Its message is above; see /var/log/pgbackrest/."
	status=$(cpa_backup_info_status "$json")
	code=${status%% *}
	if [ "$code" = 1 ]; then
		cpa_pgbackrest stanza-create ||
			cpa_die "$CPA_EX_FAILED" "pgbackrest stanza-create failed" "Its message is above; /var/log/pgbackrest/$CPA_BACKUP_STANZA-stanza-create.log has the rest."
		cpa_changed "created the pgBackRest stanza $CPA_BACKUP_STANZA in $CPA_BACKUP_REPO"
		CONFIG_CHANGED=1
	fi
	if [ "$CONFIG_CHANGED" = 1 ]; then
		cpa_pgbackrest check ||
			cpa_die "$CPA_EX_FAILED" "pgbackrest check failed: WAL archiving does not reach the repository" \
				"Its message is above; SELECT * FROM pg_stat_archiver and the server log say more."
		cpa_unchanged "pgbackrest check: WAL archiving reaches the repository"
	fi
	backups=$(cpa_backup_list "$(cpa_backup_info)")
	if [ -z "$backups" ]; then
		cpa_info "taking the first full backup"
		start=$(date +%s)
		cpa_pgbackrest --type=full backup ||
			cpa_die "$CPA_EX_FAILED" "the first full backup failed" \
				"Its message is above; /var/log/pgbackrest/$CPA_BACKUP_STANZA-backup.log has the rest."
		backups=$(cpa_backup_list "$(cpa_backup_info)")
		cpa_changed "took the first full backup $(tail -n 1 <<<"$backups" | awk '{ print $3 }') in $(($(date +%s) - start)) s"
	else
		cpa_unchanged "$(wc -l <<<"$backups") backup(s) in the repository, newest $(tail -n 1 <<<"$backups" | awk '{ print $3 }')"
	fi
	write_info_file
}

# render_backup_unit FILE: a unit from systemd/ with this installation's
# stanza, paths and schedules.
render_backup_unit() {
	local line name=$1
	while IFS= read -r line || [ -n "$line" ]; do
		case "$line" in
		Exec*=*)
			line=${line//--stanza=main/--stanza=$CPA_BACKUP_STANZA}
			line=${line//\/var\/lib\/checkpoint-backup/$CPA_BACKUP_STATUS_DIR}
			line=${line//\/usr\/local\/lib\/checkpoint-agent/$CPA_BACKUP_LIB_DIR}
			;;
		OnCalendar=*)
			case "$name" in
			checkpoint-backup-full.timer) line="OnCalendar=$CPA_BACKUP_FULL_SCHEDULE" ;;
			checkpoint-backup-diff.timer) line="OnCalendar=$CPA_BACKUP_DIFF_SCHEDULE" ;;
			checkpoint-restore-drill.timer) line="OnCalendar=$CPA_BACKUP_DRILL_SCHEDULE" ;;
			esac
			;;
		After=postgresql.service*)
			line=${line//postgresql.service/$CPA_PG_UNIT}
			;;
		Wants=postgresql.service)
			line="Wants=$CPA_PG_UNIT"
			;;
		esac
		printf '%s\n' "$line"
	done <"$CPA_REPO_DIR/systemd/$name"
}

install_units() {
	local u content rc
	for u in "${BACKUP_UNITS[@]}"; do
		[ -r "$CPA_REPO_DIR/systemd/$u" ] || cpa_die "$CPA_EX_CONFIG" "systemd/$u is missing" "It ships with the repository."
		content=$(render_backup_unit "$u")
		rc=0
		printf '%s\n' "$content" | cpa_install_content "$UNIT_DIR/$u" 0644 root root "unit" || rc=$?
		if cpa_install_result "$rc"; then
			UNITS_CHANGED=1
		fi
	done
}

enable_timers() {
	local t
	if [ "$UNITS_CHANGED" = 1 ] && cpa_systemd_running; then
		cpa_run systemctl daemon-reload
	fi
	for t in "${TIMERS[@]}"; do
		if [ "$(systemctl is-enabled "$t" 2>/dev/null || true)" = enabled ] &&
			{ ! cpa_systemd_running || [ "$(systemctl is-active "$t" 2>/dev/null || true)" = active ]; }; then
			cpa_unchanged "$t enabled"
			continue
		fi
		if cpa_systemd_running; then
			cpa_run systemctl enable --now --quiet "$t"
			cpa_changed "$t enabled and started"
		elif cpa_run systemctl enable --quiet "$t" 2>/dev/null; then
			cpa_changed "$t enabled (it starts at the next boot: systemd is not PID 1 here)"
		else
			cpa_warn "could not enable $t offline; run: systemctl enable --now $t"
		fi
	done
}

# install_restore_tools: restore.sh and what it sources, for the drill unit
# and for a restore on a server without the checkout.
install_restore_tools() {
	local f mode
	for f in restore.sh lib/common.sh lib/backup.sh lib/datadir.sh defaults.env; do
		mode=0644
		[ "$f" != restore.sh ] || mode=0755
		[ -d "$(dirname "$CPA_BACKUP_LIB_DIR/$f")" ] || cpa_run install -d -m 0755 "$(dirname "$CPA_BACKUP_LIB_DIR/$f")"
		cpa_install_content "$CPA_BACKUP_LIB_DIR/$f" "$mode" root root "restore tool" <"$CPA_PROVISION_DIR/$f" ||
			cpa_installed "$?"
	done
}

# write_settings_file: the settings restore.sh and the drill read on the server.
write_settings_file() {
	local k
	{
		echo "# Written by the checkpoint-agent provisioning (backup step): the settings"
		echo "# restore.sh reads on this server. Local edits are replaced on the next run."
		for k in CPA_PG_VERSION CPA_PG_CLUSTER CPA_PG_PORT CPA_DATA_ROOT CPA_DATA_DIR CPA_DB_NAME \
			CPA_DB_SCHEMA CPA_SETS CPA_CONFIG_DIR CPA_AGENT_USER CPA_AGENT_DB_ROLE CPA_PREFIX CPA_STATE_DIR CPA_LOCK_FILE \
			CPA_BACKUP_REPO CPA_BACKUP_STANZA CPA_BACKUP_STATUS_DIR CPA_ARCHIVE_TIMEOUT; do
			printf '%s=%s\n' "$k" "${!k}"
		done
	} | cpa_install_content "$CPA_BACKUP_SETTINGS_FILE" 0644 root root "backup settings" || cpa_installed "$?"
}

main() {
	cpa_init_step backup "$@"
	if [ "$CPA_BACKUP" != 1 ]; then
		cpa_info "backups are off (--no-backup / CPA_BACKUP=0): no WAL archive, no backup timers"
		if [ -f "$CPA_BACKUP_ARCHIVE_CONF" ] || [ -f "$CPA_PGBACKREST_CONF" ]; then
			cpa_warn "an earlier backup configuration is left in place ($CPA_BACKUP_ARCHIVE_CONF, $CPA_PGBACKREST_CONF, the checkpoint-backup timers); provisioning removes no backups. To stop them: systemctl disable --now ${TIMERS[*]}"
		fi
		return 0
	fi
	install_pgbackrest
	ensure_repository
	write_pgbackrest_conf
	write_cipher_conf
	ensure_status_dir
	write_archive_conf
	stanza_and_first_backup
	install_units
	install_restore_tools
	write_settings_file
	enable_timers
}

main "$@"
