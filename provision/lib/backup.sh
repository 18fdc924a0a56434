# shellcheck shell=bash
# backup.sh: what the backup step, restore.sh and the summary share about
# pgBackRest: the derived settings and their checks, running pgbackrest as
# the postgres user, and reading the few fields they need from
# `pgbackrest info --output=json` (its compact one-line JSON).
#
# Files (all derived from the settings, none configurable on their own):
#   /etc/pgbackrest/pgbackrest.conf          the stanza, 0640 postgres:postgres
#   /etc/pgbackrest/conf.d/checkpoint-cipher.conf  repo1-cipher-type and
#                       repo1-cipher-pass, 0600 postgres:postgres (with
#                       --backup-cipher): pgBackRest reads it as part of its
#                       configuration, so the passphrase is on no command
#                       line and in no environment
#   CPA_PG_CONF_DIR/conf.d/60-checkpoint-archive.conf  archive_mode,
#                       archive_command, archive_timeout
#   CPA_BACKUP_STATUS_DIR/info.json   `pgbackrest info --output=json`, written
#                       after every backup (the agent's backup check reads it)
#   CPA_BACKUP_STATUS_DIR/drill.json  the last restore drill's result
#   CPA_CONFIG_DIR/backup.env         the settings provisioning used, which
#                       restore.sh and the drill read on the server

CPA_PGBACKREST_CONF=${CPA_PGBACKREST_CONF:-/etc/pgbackrest/pgbackrest.conf}
CPA_PGBACKREST_CIPHER_CONF=${CPA_PGBACKREST_CIPHER_CONF:-/etc/pgbackrest/conf.d/checkpoint-cipher.conf}
CPA_BACKUP_LIB_DIR_NAME=lib/checkpoint-agent

# cpa_backup_finish_settings: derived backup settings and their checks
# (called by cpa_finish_settings).
cpa_backup_finish_settings() {
	local c
	[ -n "${CPA_BACKUP_STANZA:-}" ] || CPA_BACKUP_STANZA=$CPA_PG_CLUSTER
	CPA_BACKUP_ARCHIVE_CONF=$CPA_PG_CONF_DIR/conf.d/60-checkpoint-archive.conf
	CPA_BACKUP_INFO_FILE=$CPA_BACKUP_STATUS_DIR/info.json
	CPA_BACKUP_DRILL_FILE=$CPA_BACKUP_STATUS_DIR/drill.json
	CPA_BACKUP_SETTINGS_FILE=$CPA_CONFIG_DIR/backup.env
	CPA_BACKUP_LIB_DIR=$CPA_PREFIX/$CPA_BACKUP_LIB_DIR_NAME
	export CPA_BACKUP CPA_BACKUP_REPO CPA_BACKUP_STANZA CPA_BACKUP_CIPHER CPA_ENABLE_CHECKSUMS \
		CPA_BACKUP_ARCHIVE_CONF CPA_BACKUP_INFO_FILE CPA_BACKUP_DRILL_FILE CPA_BACKUP_SETTINGS_FILE \
		CPA_BACKUP_LIB_DIR CPA_ARCHIVE_TIMEOUT CPA_BACKUP_RETENTION_FULL CPA_BACKUP_INTERVAL_HOURS
	case "$CPA_BACKUP" in 0 | 1) ;; *) cpa_usage_error "CPA_BACKUP must be 0 or 1: $CPA_BACKUP" ;; esac
	case "$CPA_BACKUP_CIPHER" in 0 | 1) ;; *) cpa_usage_error "CPA_BACKUP_CIPHER must be 0 or 1: $CPA_BACKUP_CIPHER" ;; esac
	case "$CPA_ENABLE_CHECKSUMS" in 0 | 1) ;; *) cpa_usage_error "CPA_ENABLE_CHECKSUMS must be 0 or 1: $CPA_ENABLE_CHECKSUMS" ;; esac
	[[ "$CPA_BACKUP_STANZA" =~ ^[A-Za-z0-9_.-]+$ ]] || cpa_usage_error "bad stanza name: $CPA_BACKUP_STANZA"
	cpa_check_uint "archive timeout" "$CPA_ARCHIVE_TIMEOUT" 1 86400
	cpa_check_uint "full backups kept" "$CPA_BACKUP_RETENTION_FULL" 1 999
	cpa_check_uint "backup interval in hours" "$CPA_BACKUP_INTERVAL_HOURS" 1 8760
	for c in CPA_BACKUP_REPO CPA_BACKUP_STATUS_DIR; do
		case "${!c}" in
		/*) ;;
		*) cpa_usage_error "$c must be an absolute path: ${!c}" ;;
		esac
		case "${!c}" in
		*[[:space:]\'\"\\]*) cpa_usage_error "$c must not contain spaces, quotes or backslashes: ${!c}" ;;
		esac
	done
	CPA_BACKUP_REPO=$(cpa_normalize_path "$CPA_BACKUP_REPO")
	[ "$CPA_BACKUP_REPO" != / ] || cpa_usage_error "the backup repository cannot be /"
	for c in CPA_BACKUP_FULL_SCHEDULE CPA_BACKUP_DIFF_SCHEDULE CPA_BACKUP_DRILL_SCHEDULE; do
		[[ "${!c}" =~ ^[A-Za-z0-9\ .:,/*~-]+$ ]] ||
			cpa_usage_error "$c is not a systemd calendar expression: ${!c}"
		if cpa_have systemd-analyze && ! systemd-analyze calendar "${!c}" >/dev/null 2>&1; then
			cpa_usage_error "$c is not a systemd calendar expression (systemd-analyze calendar refuses it): ${!c}"
		fi
	done
}

# cpa_pgbackrest ARGS...: pgbackrest as the postgres user, for the stanza.
cpa_pgbackrest() {
	runuser -u postgres -- pgbackrest --stanza="$CPA_BACKUP_STANZA" "$@"
}

# cpa_backup_info: `pgbackrest info --output=json` of the stanza (one line).
cpa_backup_info() {
	cpa_pgbackrest --output=json info
}

# cpa_backup_info_status JSON: the stanza's status code (0 ok, 1 missing
# stanza path, 2 no valid backups, ...) and message, as "CODE MESSAGE".
cpa_backup_info_status() {
	local json=$1 code msg
	# The stanza's own status is the last "status" of the object.
	code=$(grep -o '"status":{"code":[0-9]*' <<<"$json" | tail -n 1 | grep -o '[0-9]*$') || code=
	msg=$(grep -o '"message":"[^"]*"}}]$' <<<"$json" | sed 's/^"message":"//; s/"}}]$//') || msg=
	printf '%s %s\n' "${code:-99}" "${msg:-unreadable pgbackrest info output}"
}

# cpa_backup_list JSON: one line per backup, oldest first (pgBackRest's
# order): "STOP_EPOCH TYPE LABEL". "label", "timestamp" and "type" appear in
# the backup entries only, in that order.
cpa_backup_list() {
	{ grep -o '"label":"[^"]*"\|"timestamp":{"start":[0-9]*,"stop":[0-9]*}\|"type":"[a-z]*"' <<<"$1" || true; } |
		awk -F'"' '
			/^"label"/ { label = $4 }
			/^"timestamp"/ { stop = $0; sub(/.*"stop":/, "", stop); sub(/}$/, "", stop) }
			/^"type"/ { print stop, $4, label }'
}

# cpa_backup_repo_on_data_filesystem: true when the repository (or the
# folder it will be made in) is on the data directory's file system.
cpa_backup_repo_on_data_filesystem() {
	local repo=$CPA_BACKUP_REPO data=$CPA_DATA_DIR
	while [ ! -e "$repo" ] && [ "$repo" != / ]; do repo=$(dirname "$repo"); done
	while [ ! -e "$data" ] && [ "$data" != / ]; do data=$(dirname "$data"); done
	[ "$(stat -c '%d' "$repo")" = "$(stat -c '%d' "$data")" ]
}

# cpa_backup_repo_warning: the loud warning, or nothing.
cpa_backup_repo_warning() {
	if cpa_backup_repo_on_data_filesystem; then
		printf '%s\n' "the backup repository $CPA_BACKUP_REPO is on the same file system as the data directory $CPA_DATA_DIR: it survives a DROP TABLE or a bad migration, NOT a dead disk. Mount another disk at $CPA_BACKUP_REPO (or choose --backup-repo) and run provisioning again."
	fi
}

# cpa_backup_load_settings: the settings provisioning recorded on this
# server (CPA_BACKUP_SETTINGS_FILE, default /etc/checkpoint-agent/backup.env),
# for the keys the environment does not set. Read before defaults.env, so
# that restore.sh and the drill use the server's real cluster and names.
cpa_backup_load_settings() {
	local file=${CPA_BACKUP_SETTINGS_FILE:-${CPA_CONFIG_DIR:-/etc/checkpoint-agent}/backup.env} line key
	[ -r "$file" ] || return 0
	while IFS= read -r line || [ -n "$line" ]; do
		case "$line" in '' | '#'*) continue ;; esac
		key=${line%%=*}
		[[ "$key" =~ ^CPA_[A-Z0-9_]+$ ]] || continue
		if [ -z "${!key+set}" ]; then
			printf -v "$key" '%s' "${line#*=}"
			# shellcheck disable=SC2163 # export the variable named by $key
			export "$key"
		fi
	done <"$file"
}

# cpa_backup_data_checksums: "on" or "off", from the cluster's control file.
cpa_backup_data_checksums() {
	local dir=${1:-$CPA_DATA_DIR} v
	v=$(LC_ALL=C "$CPA_PG_BIN/pg_controldata" "$dir" 2>/dev/null |
		sed -n 's/^Data page checksum version:[[:space:]]*//p')
	case "$v" in
	'') echo unknown ;;
	0) echo off ;;
	*) echo on ;;
	esac
}

# cpa_backup_summary: the backup lines of provisioning's summary.
cpa_backup_summary() {
	local json backups newest restarted warning checksums
	checksums=$(cpa_backup_data_checksums "$(cpa_cluster_data_directory 2>/dev/null || echo "$CPA_DATA_DIR")")
	printf '  %-17s %s\n' "data checksums" "$checksums"
	if [ "$CPA_BACKUP" != 1 ]; then
		printf '  %-17s %s\n' "backups" "OFF (--no-backup): no WAL archive, no backup; a lost disk or a DROP TABLE cannot be undone"
		return 0
	fi
	json=$(cpa_backup_info 2>/dev/null) || json=
	backups=$(cpa_backup_list "$json")
	newest=$(tail -n 1 <<<"$backups")
	printf '  %-17s %s\n' "backups" "pgBackRest stanza $CPA_BACKUP_STANZA in $CPA_BACKUP_REPO ($(cpa_backup_info_status "$json" | cut -d' ' -f2-)); $(grep -c . <<<"$backups" || true) backup(s), newest ${newest##* }"
	printf '  %-17s %s\n' "backup timers" "full '$CPA_BACKUP_FULL_SCHEDULE', diff '$CPA_BACKUP_DIFF_SCHEDULE', drill '$CPA_BACKUP_DRILL_SCHEDULE'; $CPA_BACKUP_RETENTION_FULL full backups kept"
	printf '  %-17s %s\n' "WAL archive" "archive_mode on, archive_timeout ${CPA_ARCHIVE_TIMEOUT}s (the most an unclean stop loses)"
	restarted=$(sed -n 's/^RESTARTED=//p' "$CPA_STATE_DIR/backup-archive-restart.env" 2>/dev/null || true)
	if [ -n "$restarted" ]; then
		printf '  %-17s %s\n' "" "PostgreSQL was restarted once for archive_mode, at $restarted"
	fi
	if [ "$CPA_BACKUP_CIPHER" = 1 ]; then
		printf '  %-17s %s\n' "encryption" "aes-256-cbc; the passphrase is in $CPA_PGBACKREST_CIPHER_CONF (0600 postgres): keep a copy OFF this server, without it no backup can be read"
	fi
	printf '  %-17s %s\n' "restore" "$CPA_BACKUP_LIB_DIR/restore.sh --drill | --to-time 'YYYY-MM-DD HH:MM:SS+00' | --latest"
	warning=$(cpa_backup_repo_warning)
	if [ -n "$warning" ]; then
		printf '  %-17s %s\n' "WARNING" "$warning"
	fi
}
