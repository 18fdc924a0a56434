#!/bin/bash
# restore.sh: restores the checkpoint database from its pgBackRest backups.
#
#   restore.sh --drill [--to-time T] [--scratch-dir DIR]
#       A rehearsal that leaves the live cluster untouched: restores into a
#       scratch directory (on the data disk by default), starts that copy on a
#       spare loopback port with WAL archiving off, runs `checkpoint-agent
#       verify` against it, compares each checkpoint table's row count with
#       the live cluster's, prints the figures (restore time, bytes, rows),
#       writes the result for the agent's backup check
#       (CPA_BACKUP_STATUS_DIR/drill.json) and removes the scratch copy.
#       checkpoint-restore-drill.timer runs it monthly.
#   restore.sh --to-time T | --latest [--yes] [--dry-run]
#       In place: archives the current WAL (pgbackrest check), stops the
#       application gate (checkpoint-agent.service, and so every application
#       that requires it) and the cluster, moves the data directory aside
#       (it is never deleted), restores, replays the WAL to T (or to the end
#       of the archive), promotes, starts, runs `migrate` and `check`, and
#       prints what it did and how to undo it. If the restore fails, the
#       directory set aside is put back and the cluster started on it.
#
# T is "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]" (pgBackRest's form; without
# an offset, this machine's local time). The settings are provisioning's:
# CPA_CONFIG_DIR/backup.env (written by the backup step), then defaults.env,
# the environment and the options (see --help). CPA_PG_SOCKET_DIR (default
# /var/run/postgresql) is where the drill reaches the live cluster to count
# its rows.
#
# Exit codes: 0 done; 64 usage or a malformed time; 65 the time cannot be
# reached (before the oldest backup, or in the future) or the drill's verify
# found differences; 69 no pgBackRest, no stanza, no backup, or PostgreSQL did
# not come up; 70 a command failed (restore, recovery); 73 not enough space
# for the drill; 77 not root. Bad input changes nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/backup.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/backup.sh"
cpa_backup_load_settings
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/datadir.sh
. "$CPA_PROVISION_DIR/lib/datadir.sh"

ORIGINAL_ARGS=("$@")
MODE=
TARGET_TIME=
YES=0
SCRATCH_PARENT=
AGENT_UNIT=checkpoint-agent.service
TARGET_PG=
TARGET_EPOCH=
# The drill's scratch folder and server, for the cleanup.
DRILL_WORK=
DRILL_STARTED=0
# The in-place restore's directories, for the undo on failure.
ASIDE_DIR=
RESTORE_STARTED=0
AGENT_WAS_ACTIVE=0

cpa_extra_option() {
	case "$1" in
	--drill)
		set_mode drill
		return 1
		;;
	--latest)
		set_mode latest
		return 1
		;;
	--to-time)
		TARGET_TIME=$2
		return 0
		;;
	--yes)
		YES=1
		return 1
		;;
	--scratch-dir)
		SCRATCH_PARENT=$2
		return 0
		;;
	esac
	return 2
}

# cpa_resume_command: what cpa_die prints to run it again (common.sh's
# default names provision.sh's steps).
cpa_resume_command() {
	printf 'sudo %s %s\n' "$0" "$(cpa_quote "${ORIGINAL_ARGS[@]}")"
}

set_mode() {
	[ -z "$MODE" ] || [ "$MODE" = "$1" ] || cpa_usage_error "--$MODE and --$1 exclude each other"
	MODE=$1
}

# ---------------------------------------------------------------- input

# parse_target_time: T checked against pgBackRest's form, normalised to UTC
# (TARGET_PG, for PostgreSQL and pgBackRest) and to TARGET_EPOCH.
parse_target_time() {
	local t=$TARGET_TIME frac=""
	if ! [[ "$t" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}[\ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([+-][0-9]{2}(:?[0-9]{2})?|Z)?$ ]]; then
		cpa_usage_error "--to-time '$t' is not a time of the form 'YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]' (e.g. '$(date -u '+%Y-%m-%d %H:%M:%S')+00')"
	fi
	[ -z "${BASH_REMATCH[1]}" ] || frac=${BASH_REMATCH[1]}
	TARGET_EPOCH=$(date -u -d "${t/T/ }" +%s 2>/dev/null) ||
		cpa_usage_error "--to-time '$t' is not a valid date and time"
	TARGET_PG="$(date -u -d "@$TARGET_EPOCH" '+%Y-%m-%d %H:%M:%S')$frac+00"
}

# check_repository: pgBackRest, its configuration, the stanza and a backup
# exist; with a target time, that a backup ended before it. Prints nothing
# and changes nothing; exits 65 or 69 with the reason.
check_repository() {
	local json status backups oldest oldest_stop now
	cpa_have pgbackrest || cpa_die "$CPA_EX_UNAVAILABLE" "pgbackrest is not installed" \
		"Nothing was changed. Backups are set up by provisioning (provision.sh, without --no-backup)."
	[ -r "$CPA_PGBACKREST_CONF" ] || cpa_die "$CPA_EX_UNAVAILABLE" "$CPA_PGBACKREST_CONF does not exist" \
		"Nothing was changed. Backups are set up by provisioning (provision.sh, without --no-backup)."
	json=$(cpa_backup_info 2>&1) || cpa_die "$CPA_EX_UNAVAILABLE" "pgbackrest info failed: $json" "Nothing was changed."
	status=$(cpa_backup_info_status "$json")
	case "${status%% *}" in
	0) ;;
	1 | 3) cpa_die "$CPA_EX_UNAVAILABLE" "no pgBackRest stanza $CPA_BACKUP_STANZA in $CPA_BACKUP_REPO: ${status#* }" \
		"Nothing was changed. Is the repository disk mounted? Give --backup-stanza / --backup-repo if it is elsewhere." ;;
	2) cpa_die "$CPA_EX_UNAVAILABLE" "the stanza $CPA_BACKUP_STANZA has no backup to restore" \
		"Nothing was changed. Take one: systemctl start checkpoint-backup-full.service" ;;
	*) cpa_die "$CPA_EX_UNAVAILABLE" "pgBackRest reports the stanza $CPA_BACKUP_STANZA as unusable: ${status#* }" \
		"Nothing was changed. pgbackrest --stanza=$CPA_BACKUP_STANZA info says more." ;;
	esac
	backups=$(cpa_backup_list "$json")
	[ -n "$backups" ] || cpa_die "$CPA_EX_UNAVAILABLE" "the stanza $CPA_BACKUP_STANZA has no backup to restore" "Nothing was changed."
	BACKUPS=$backups
	[ -n "$TARGET_EPOCH" ] || return 0
	oldest=$(head -n 1 <<<"$backups")
	oldest_stop=${oldest%% *}
	now=$(date +%s)
	if [ "$TARGET_EPOCH" -le "$oldest_stop" ]; then
		cpa_die "$CPA_EX_VERIFY" "--to-time $TARGET_PG is before the end of the oldest backup (${oldest##* }, ended $(date -u -d "@$oldest_stop" '+%Y-%m-%d %H:%M:%S+00'))" \
			"Nothing was changed. No backup can be replayed to that time: the earliest reachable time is just after $(date -u -d "@$oldest_stop" '+%Y-%m-%d %H:%M:%S+00')."
	fi
	if [ "$TARGET_EPOCH" -gt "$now" ]; then
		cpa_die "$CPA_EX_VERIFY" "--to-time $TARGET_PG is in the future (now $(date -u '+%Y-%m-%d %H:%M:%S+00'))" \
			"Nothing was changed. For everything up to now, use --latest."
	fi
}

# backup_for_target: the label of the backup pgBackRest will start from (the
# newest that ended before the target).
backup_for_target() {
	if [ -z "$TARGET_EPOCH" ]; then
		tail -n 1 <<<"$BACKUPS" | awk '{ print $3 }'
	else
		awk -v t="$TARGET_EPOCH" '$1 < t { label = $3 } END { print label }' <<<"$BACKUPS"
	fi
}

# target_words: "to T", or "to the end of the WAL archive".
target_words() {
	if [ -n "$TARGET_PG" ]; then
		printf 'to %s\n' "$TARGET_PG"
	else
		printf '%s\n' "to the end of the WAL archive (--latest)"
	fi
}

# restore_target_args: pgBackRest's options for the target. The timeline is
# always the latest: after an earlier in-place restore, the history that
# counts is the one that restore started, not the abandoned one (pgBackRest
# 2.45 would otherwise recover along the backup's own timeline).
restore_target_args() {
	if [ -n "$TARGET_PG" ]; then
		printf '%s\n' --type=time "--target=$TARGET_PG" --target-action=promote --target-timeline=latest
	else
		printf '%s\n' --type=default --target-timeline=latest
	fi
}

# ---------------------------------------------------------------- helpers

# table_rows HOST PORT: "schema.table rows" for every table of the
# checkpoint database's schemas, as the postgres user.
table_rows() {
	local host=$1 port=$2
	runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -h "$host" -p "$port" -d "$CPA_DB_NAME" -F ' ' <<-'EOF'
		SELECT format('SELECT %L, count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY n.nspname, c.relname
		\gexec
	EOF
}

# free_port: a loopback port nothing listens on, from CPA_PG_PORT + 1000.
free_port() {
	local p
	for ((p = CPA_PG_PORT + 1000; p < CPA_PG_PORT + 1100; p++)); do
		[ "$p" -le 65535 ] || break
		if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	return 1
}

# agent_login_role: the role the agent logs in as, from database.uri in its
# config (postgresql://ROLE@...), else CPA_AGENT_DB_ROLE. The drill's verify
# logs in as the agent does, on a server of any layout.
agent_login_role() {
	local role
	role=$(sed -n 's|^[^#]*uri *= *"postgres\(ql\)\{0,1\}://\([^:@/"]*\)[:@].*|\2|p' "$CPA_AGENT_CONFIG" 2>/dev/null | head -n 1)
	printf '%s\n' "${role:-$CPA_AGENT_DB_ROLE}"
}

run_agent() {
	runuser -u "$CPA_AGENT_USER" -- "$CPA_AGENT_BIN" -c "$CPA_AGENT_CONFIG" "$@"
}

# json_text TEXT: TEXT made safe inside a JSON string.
json_text() {
	printf '%s' "$1" | tr -d '\000-\037\042\134'
}

# ---------------------------------------------------------------- drill

# write_drill_result RESULT MESSAGE [SECONDS BYTES ROWS BACKUP]: the file the
# agent's backup check reads (0644 postgres, like info.json: no secret in it;
# written atomically).
write_drill_result() {
	local result=$1 message=$2 seconds=${3:-0} bytes=${4:-0} rows=${5:-0} backup=${6:-} tmp
	[ -d "$CPA_BACKUP_STATUS_DIR" ] || return 0
	tmp=$(mktemp "$CPA_BACKUP_STATUS_DIR/.drill.json.XXXXXX")
	printf '{"result":"%s","finished_at":%s,"target":"%s","backup":"%s","restore_seconds":%s,"bytes":%s,"rows":%s,"message":"%s"}\n' \
		"$result" "$(date +%s)" "$(json_text "${TARGET_PG:-latest}")" "$(json_text "$backup")" "$seconds" \
		"$bytes" "$rows" "$(json_text "$message")" >"$tmp"
	chown postgres:postgres "$tmp"
	chmod 0644 "$tmp"
	mv -f "$tmp" "$CPA_BACKUP_DRILL_FILE"
}

drill_cleanup() {
	if [ -n "$DRILL_WORK" ] && [ -d "$DRILL_WORK" ]; then
		if [ "$DRILL_STARTED" = 1 ] && [ -f "$DRILL_WORK/data/postmaster.pid" ]; then
			runuser -u postgres -- "$CPA_PG_BIN/pg_ctl" -D "$DRILL_WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
		fi
		rm -rf --one-file-system -- "$DRILL_WORK"
	fi
	DRILL_WORK=
}

# drill_fail CODE WHAT: record the failure for the agent, clean up, exit.
drill_fail() {
	local code=$1 what=$2
	write_drill_result failed "$what" || true
	if [ -n "$DRILL_WORK" ] && [ -f "$DRILL_WORK/server.log" ]; then
		echo "last lines of the scratch server's log:" >&2
		tail -n 15 "$DRILL_WORK/server.log" >&2
	fi
	drill_cleanup
	cpa_die "$code" "restore drill failed: $what" "The live cluster was not touched. The scratch copy was removed."
}

# drill_unexpected_failure: the ERR trap's hook during a drill.
drill_unexpected_failure() {
	write_drill_result failed "a command failed unexpectedly (see the journal of checkpoint-restore-drill.service)" || true
	drill_cleanup
}

# drill_config DIR PORT: the scratch server's own small configuration:
# loopback and a private socket only, no archiving (pgBackRest's
# --archive-mode=off too), no hot standby (so the live server's sizing does
# not matter during recovery).
drill_config() {
	local dir=$1 port=$2
	cat >"$dir/data/postgresql.conf" <<-EOF
		# restore drill (restore.sh --drill): a scratch copy, removed afterwards
		port = $port
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$dir'
		archive_mode = off
		hot_standby = off
		shared_buffers = 128MB
		max_connections = 20
		logging_collector = off
	EOF
	printf 'local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$dir/data/pg_hba.conf"
	: >"$dir/data/pg_ident.conf"
	chown postgres:postgres "$dir/data/postgresql.conf" "$dir/data/pg_hba.conf" "$dir/data/pg_ident.conf"
}

# shellcheck disable=SC2034 # CPA_ON_FAILURE is read by the ERR trap (common.sh)
run_drill() {
	local parent port backup start seconds bytes restored live rows=0 verify_out rc=0 line t n l diffs=""
	parent=${SCRATCH_PARENT:-$CPA_DATA_ROOT}
	backup=$(backup_for_target)
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "restore backup $backup${TARGET_PG:+ and the WAL up to $TARGET_PG} into a scratch folder under $parent, start it on a spare loopback port, verify, count rows, remove it; write $CPA_BACKUP_DRILL_FILE"
		return 0
	fi
	[ -d "$parent" ] || cpa_die "$CPA_EX_USAGE" "the scratch folder's parent $parent does not exist" "Give --scratch-dir DIR."
	cpa_check_space "$(cpa_cluster_data_directory 2>/dev/null || echo "$CPA_DATA_DIR")" "$parent/x"
	port=$(free_port) || cpa_die "$CPA_EX_UNAVAILABLE" "no free port from $((CPA_PG_PORT + 1000)) to $((CPA_PG_PORT + 1099)) for the scratch server"
	DRILL_WORK=$(mktemp -d "$parent/.checkpoint-drill.XXXXXX")
	trap drill_cleanup EXIT
	CPA_ON_FAILURE=drill_unexpected_failure
	chown postgres:postgres "$DRILL_WORK"
	chmod 0700 "$DRILL_WORK"
	install -d -m 0700 -o postgres -g postgres "$DRILL_WORK/data"
	cpa_info "restoring backup $backup${TARGET_PG:+ to $TARGET_PG} into $DRILL_WORK/data (port $port for the scratch server)"
	start=$(date +%s.%N)
	local -a target_args
	mapfile -t target_args < <(restore_target_args)
	cpa_pgbackrest --pg1-path="$DRILL_WORK/data" --archive-mode=off "${target_args[@]}" restore ||
		drill_fail "$CPA_EX_FAILED" "pgbackrest restore of $backup failed"
	drill_config "$DRILL_WORK" "$port"
	DRILL_STARTED=1
	runuser -u postgres -- "$CPA_PG_BIN/pg_ctl" -D "$DRILL_WORK/data" -l "$DRILL_WORK/server.log" -w -t 86400 start >/dev/null ||
		drill_fail "$CPA_EX_FAILED" "the restored copy did not start (recovery failed)"
	for ((n = 0; n < 600; n++)); do
		[ "$(runuser -u postgres -- psql -X -At -h "$DRILL_WORK" -p "$port" -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
		sleep 0.5
	done
	[ "$n" -lt 600 ] || drill_fail "$CPA_EX_FAILED" "the restored copy did not leave recovery within 300 s"
	seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	bytes=$(du -sb "$DRILL_WORK/data" | awk '{ print $1 }')
	cpa_info "restored and recovered in ${seconds}s: $((bytes / 1048576)) MiB"
	verify_out=$(runuser -u "$CPA_AGENT_USER" -- env "CHECKPOINT_DB_URI=postgresql://$(agent_login_role)@127.0.0.1:$port/$CPA_DB_NAME" \
		"$CPA_AGENT_BIN" -c "$CPA_AGENT_CONFIG" verify 2>&1) || rc=$?
	if [ "$rc" -ne 0 ]; then
		printf '%s\n' "$verify_out" | sed 's/^/    verify: /' >&2
		drill_fail "$CPA_EX_VERIFY" "checkpoint-agent verify of the restored copy exited $rc"
	fi
	cpa_unchanged "checkpoint-agent verify: the restored schema is as it should be"
	restored=$(table_rows "$DRILL_WORK" "$port") || drill_fail "$CPA_EX_FAILED" "counting the restored rows failed"
	live=$(table_rows "${CPA_PG_SOCKET_DIR:-/var/run/postgresql}" "$CPA_PG_PORT" 2>/dev/null) || live=
	printf '  %-40s %12s %12s\n' table restored live
	while read -r t n; do
		[ -n "$t" ] || continue
		rows=$((rows + n))
		l=$(awk -v t="$t" '$1 == t { print $2 }' <<<"$live")
		printf '  %-40s %12s %12s\n' "$t" "$n" "${l:--}"
		[ "$n" = "${l:-}" ] || diffs+="${diffs:+, }$t"
	done <<<"$restored"
	runuser -u postgres -- "$CPA_PG_BIN/pg_ctl" -D "$DRILL_WORK/data" -m fast -w stop >/dev/null 2>&1 || true
	DRILL_STARTED=0
	drill_cleanup
	trap - EXIT
	CPA_ON_FAILURE=
	line="restored $backup${TARGET_PG:+ to $TARGET_PG} in ${seconds}s, $((bytes / 1048576)) MiB, $rows rows; verify clean"
	if [ -n "$diffs" ]; then
		line+="; row counts differ from the live cluster's in $diffs (writes since the restore point)"
	else
		line+="; row counts equal the live cluster's"
	fi
	write_drill_result ok "$line" "$seconds" "$bytes" "$rows" "$backup"
	cpa_unchanged "restore drill OK: $line"
	cpa_info "the scratch copy was removed; the live cluster was not touched"
}

# ---------------------------------------------------------------- in place

# undo_after_failure: the ERR trap's hook during an in-place restore: the
# directory set aside goes back, the failed restore is kept beside it.
undo_after_failure() {
	local data failed
	[ -n "$ASIDE_DIR" ] && [ -d "$ASIDE_DIR" ] || return 0
	data=$(restore_data_directory)
	failed=$data.failed-restore-$(date -u +%Y%m%dT%H%M%SZ)
	pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" stop >/dev/null 2>&1 || true
	if [ -e "$data" ]; then
		mv -- "$data" "$failed" && cpa_info "the failed restore is kept in $failed"
	fi
	mv -- "$ASIDE_DIR" "$data" && cpa_changed "moved $ASIDE_DIR back to $data"
	ASIDE_DIR=
	if pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" start && cpa_wait_ready 120; then
		cpa_info "PostgreSQL runs again on the data as it was before the restore"
	fi
	if [ "$AGENT_WAS_ACTIVE" = 1 ]; then
		systemctl start "$AGENT_UNIT" || true
	fi
}

restore_data_directory() {
	local d
	d=$(cpa_cluster_data_directory 2>/dev/null || true)
	printf '%s\n' "${d:-$CPA_DATA_DIR}"
}

# plan_line TEXT: a line of the plan ("would:" under --dry-run).
plan_line() {
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "$1"
	else
		cpa_info "plan: $1"
	fi
}

print_plan() {
	local data=$1 aside=$2 backup=$3
	cpa_info "in-place restore of $CPA_PG_VERSION/$CPA_PG_CLUSTER $(target_words):"
	plan_line "pgbackrest check: archive the current WAL segment (so that the archive reaches now)"
	plan_line "stop $AGENT_UNIT (the applications that require it stop with it) and PostgreSQL"
	plan_line "move $data aside to $aside (kept; never deleted by this script)"
	plan_line "pgbackrest restore of backup $backup, then WAL replay ${TARGET_PG:+to $TARGET_PG }and promotion"
	plan_line "start PostgreSQL, checkpoint-agent migrate, start $AGENT_UNIT again if it ran, checkpoint-agent check"
}

confirm() {
	local answer
	[ "$YES" = 1 ] && return 0
	if [ ! -t 0 ]; then
		cpa_usage_error "an in-place restore stops the database and its applications; give --yes (standard input is not a terminal)"
	fi
	printf 'Restore in place now? The applications are stopped until it is done. [y/N] '
	read -r answer
	case "$answer" in
	y | Y | yes) return 0 ;;
	esac
	echo "Nothing was changed."
	exit 1
}

wait_promoted() {
	local n
	for ((n = 0; n < 7200; n++)); do
		[ "$(cpa_psql -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0
		sleep 0.5
	done
	return 1
}

# shellcheck disable=SC2034 # CPA_ON_FAILURE is read by the ERR trap (common.sh)
run_in_place() {
	local data aside backup stamp start seconds rc=0
	data=$(restore_data_directory)
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	aside=$data.before-restore-$stamp
	backup=$(backup_for_target)
	print_plan "$data" "$aside" "$backup"
	if [ "$CPA_DRY_RUN" = 1 ]; then
		return 0
	fi
	[ ! -e "$aside" ] || cpa_die "$CPA_EX_REFUSED" "$aside exists already" "Nothing was changed. Wait a second and run it again."
	confirm
	start=$(date +%s.%N)
	if [ "$(cpa_cluster_status)" = online ]; then
		cpa_pgbackrest check ||
			cpa_die "$CPA_EX_UNAVAILABLE" "pgbackrest check failed: the newest WAL cannot be archived" \
				"Nothing was changed. Restoring now could lose the writes since the last archived segment; fix archiving first (its message is above)."
		cpa_unchanged "pgbackrest check: the current WAL segment is archived"
	else
		cpa_warn "PostgreSQL is not running: WAL written after the last archived segment is only in $data/pg_wal, which is kept in $aside"
	fi
	CPA_ON_FAILURE=undo_after_failure
	if cpa_systemd_running && [ "$(systemctl is-active "$AGENT_UNIT" 2>/dev/null || true)" = active ]; then
		AGENT_WAS_ACTIVE=1
		systemctl stop "$AGENT_UNIT"
		cpa_changed "stopped $AGENT_UNIT (and the applications that require it)"
	fi
	if [ "$(cpa_cluster_status)" = online ]; then
		pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" stop
		cpa_changed "stopped PostgreSQL $CPA_PG_VERSION/$CPA_PG_CLUSTER"
	fi
	mv -- "$data" "$aside"
	ASIDE_DIR=$aside
	install -d -m 0700 -o postgres -g postgres "$data"
	cpa_changed "moved $data aside to $aside"
	install -d -m 0700 "$CPA_STATE_DIR"
	printf 'DATA_DIRECTORY=%s\nASIDE=%s\nTARGET=%s\nBACKUP=%s\nDATE=%s\n' "$data" "$aside" \
		"${TARGET_PG:-latest}" "$backup" "$stamp" >"$CPA_STATE_DIR/restore-$stamp.env"
	local -a target_args
	mapfile -t target_args < <(restore_target_args)
	cpa_pgbackrest "${target_args[@]}" restore
	cpa_changed "restored backup $backup into $data"
	RESTORE_STARTED=1
	pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" start
	wait_promoted || cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL did not finish recovery within an hour" \
		"See /var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log. The data before the restore is in $aside."
	CPA_ON_FAILURE=
	seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	cpa_changed "replayed the WAL ${TARGET_PG:+to $TARGET_PG }and promoted: PostgreSQL runs on the restored data (${seconds}s since the stop)"
	# The new timeline's first segment must reach the archive now: until it
	# does, a later restore would fall back to the abandoned timeline's copy
	# of that segment and replay what this restore undid.
	if cpa_pgbackrest check; then
		cpa_unchanged "pgbackrest check: the new timeline's WAL reaches the archive"
	else
		cpa_warn "pgbackrest check failed after the restore: archiving of the new timeline does not work yet; fix it before relying on a later restore (its message is above)"
	fi
	run_agent migrate || rc=$?
	[ "$rc" = 0 ] || cpa_warn "checkpoint-agent migrate exited $rc; its messages are above"
	if [ "$AGENT_WAS_ACTIVE" = 1 ]; then
		systemctl start "$AGENT_UNIT" && cpa_changed "started $AGENT_UNIT again; start your application units again too"
	fi
	rc=0
	run_agent check || rc=$?
	print_undo "$data" "$aside" "$stamp"
	[ "$rc" -le 1 ] || cpa_warn "checkpoint-agent check exited $rc (see above)"
}

print_undo() {
	local data=$1 aside=$2 stamp=$3
	cat <<-EOF

		Restored $CPA_PG_VERSION/$CPA_PG_CLUSTER $(target_words).
		  the data as it was before   $aside (kept; remove it yourself once you are sure)
		  record                      $CPA_STATE_DIR/restore-$stamp.env
		  next                        a fresh full backup: systemctl start checkpoint-backup-full.service

		To undo (back to the data as it was before this restore):
		  systemctl stop $AGENT_UNIT
		  pg_ctlcluster $CPA_PG_VERSION $CPA_PG_CLUSTER stop
		  mv $data $data.restored-$stamp
		  mv $aside $data
		  pg_ctlcluster $CPA_PG_VERSION $CPA_PG_CLUSTER start
		  systemctl start $AGENT_UNIT
	EOF
}

main() {
	# shellcheck disable=SC2034 # read by cpa_usage
	CPA_USAGE_NAME=restore.sh
	# shellcheck disable=SC2034
	CPA_USAGE_WHAT="Restores the checkpoint database from its pgBackRest backups: a drill into a scratch copy, or in place."
	# shellcheck disable=SC2034
	CPA_USAGE_EXTRA="  --drill                 restore into a scratch copy, verify, count, remove it
  --to-time T             the point in time: 'YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]'
  --latest                (in place) replay to the end of the WAL archive
  --yes                   (in place) no confirmation prompt
  --scratch-dir DIR       (drill) where the scratch copy goes (default: the data root)"
	cpa_load_defaults
	cpa_parse_options "$@"
	[ "${#CPA_ARGS_REST[@]}" -eq 0 ] || cpa_usage_error "unexpected argument: ${CPA_ARGS_REST[0]}"
	case "$MODE" in
	drill) ;;
	latest) [ -z "$TARGET_TIME" ] || cpa_usage_error "--latest and --to-time exclude each other" ;;
	'')
		[ -n "$TARGET_TIME" ] || cpa_usage_error "give --drill, --to-time T or --latest"
		MODE=in-place
		;;
	esac
	[ "$MODE" != latest ] || MODE=in-place
	[ -z "$TARGET_TIME" ] || parse_target_time
	cpa_require_root
	CPA_STEP=restore
	[ "$MODE" != drill ] || CPA_STEP=restore-drill
	cpa_enable_error_trap
	# The provisioning lock (none under --dry-run): no move of the data
	# directory, no other restore or drill, no playbook meanwhile. Held by a
	# helper process, so the PostgreSQL this starts inherits no descriptor
	# of it (common.sh, cpa_take_lock).
	cpa_take_lock "restore.sh --$MODE"
	check_repository
	[ "$CPA_DRY_RUN" != 1 ] || echo "DRY RUN: nothing is changed; each line says what would be done."
	if [ "$MODE" = drill ]; then
		run_drill
	else
		run_in_place
	fi
}

main "$@"
