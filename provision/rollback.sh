#!/bin/bash
# rollback.sh: undo provisioning in parts.
#
#   rollback.sh datadir [options]      move PostgreSQL back to the data
#       directory it had before the relocation (from the record provisioning
#       keeps in CPA_STATE_DIR; Debian's /var/lib/postgresql/V/C when there is
#       none): checksums, stop, copy back with cp -a, data_directory, start,
#       verify; then remove the mount drop-in (unless that directory is on
#       the data disk too) and update the agent's config.
#       The copy on the data disk is kept unless --remove-old.
#   rollback.sh schema --to V [--set S] [options]   the agent's rollback
#       (checkpoint-agent rollback --to V); --dry-run shows the plan. The last
#       resort, when a migration destroyed data: restore.sh --to-time T.
#   rollback.sh app                    how to point the application back at
#       Redis (the migration plan's fallback); changes nothing.
#
# Options are provision.sh's (the same settings); see --help.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/datadir.sh
. "$CPA_PROVISION_DIR/lib/datadir.sh"

ROLLBACK_TO=
ROLLBACK_SET=
MOUNT_DROPIN=/etc/systemd/system/postgresql@.service.d/require-data-mount.conf

cpa_extra_option() {
	case "$1" in
	--to)
		ROLLBACK_TO=$2
		return 0
		;;
	--set)
		ROLLBACK_SET=$2
		return 0
		;;
	esac
	return 2
}

rollback_datadir() {
	local current original state sysid
	CPA_STEP=rollback-datadir
	[ "$(cpa_cluster_status)" != absent ] || cpa_die "$CPA_EX_UNAVAILABLE" "cluster $CPA_PG_VERSION/$CPA_PG_CLUSTER does not exist"
	current=$(cpa_normalize_path "$(cpa_cluster_data_directory)")
	original=$(cpa_relocation_record ORIGINAL_DATA_DIRECTORY)
	original=${original:-/var/lib/postgresql/$CPA_PG_VERSION/$CPA_PG_CLUSTER}
	if [ "$current" = "$original" ]; then
		cpa_unchanged "data_directory is already $original"
	else
		cpa_info "data_directory is $current; it goes back to $original"
		sysid=$(cpa_datadir_sysid "$current")
		state=$(cpa_target_state "$original" "$sysid" "$current")
		case "$state" in
		same)
			cpa_die "$CPA_EX_REFUSED" "$original is the current data directory $current (a symlink or bind mount leads there)" \
				"Nothing was changed: the data is already there. Set data_directory to $original with pg_conftool if you want that path."
			;;
		running)
			cpa_die "$CPA_EX_REFUSED" "$original holds a copy of this cluster with a postmaster.pid: a server may be running on it" \
				"Nothing was changed. Stop that server (pg_ctl -D $original stop); if none runs, remove $original/postmaster.pid, then run the rollback again."
			;;
		foreign)
			cpa_die "$CPA_EX_REFUSED" "$original holds something other than this cluster's data" \
				"Nothing was changed. Move it away, then run the rollback again."
			;;
		not-older)
			cpa_die "$CPA_EX_REFUSED" "$original holds a copy of this cluster that is not provably older than $current: $(cpa_older_copy_problem "$original" "$current")" \
				"Nothing was changed. It may hold data the cluster lacks: look at it, keep what you need, then move it away and run the rollback again."
			;;
		ours)
			cpa_info "$original holds the copy from before the relocation; the current data replaces it"
			;;
		esac
		cpa_check_space "$current" "$original"
		cpa_check_self_contained "$current"
		if [ "$CPA_DRY_RUN" = 1 ]; then
			cpa_changed "copy $current back to $original (stop, cp -a, data_directory, start, verify checksums)"
		else
			if [ "$state" = ours ]; then
				cpa_remove_contents "$original"
				cpa_changed "removed the outdated copy in $original"
			fi
			cpa_prepare_target "$original"
			cpa_copy_and_switch "$current" "$original" rollback
			# Now the original again: a second rollback has nothing to do.
			cpa_record_relocation "$original" "$original" rollback
			if [ "$CPA_REMOVE_OLD" = 1 ]; then
				rm -rf --one-file-system -- "$current"
				cpa_changed "removed $current (--remove-old)"
			else
				cpa_info "$current is kept (--remove-old removes it)"
			fi
		fi
	fi
	case "$original/" in
	"$CPA_DATA_ROOT"/*)
		cpa_unchanged "the mount drop-in stays: $original is on $CPA_DATA_ROOT too"
		;;
	*) remove_mount_dropin ;;
	esac
	# The agent's disk check watches the data directory: re-render its config
	# (and restart it if that changed).
	if [ -x "$CPA_AGENT_BIN" ] && [ -f "$CPA_AGENT_CONFIG" ]; then
		CPA_STEP=agent bash "$CPA_STEPS_DIR/60-agent.sh" "${ORIGINAL_ARGS[@]}"
	fi
	# pgBackRest's pg1-path names the data directory (archive-push reads the
	# WAL through it): re-render its config and check archiving.
	if [ "$CPA_BACKUP" = 1 ] && [ -f "$CPA_PGBACKREST_CONF" ]; then
		CPA_STEP=backup bash "$CPA_STEPS_DIR/55-backup.sh" "${ORIGINAL_ARGS[@]}"
	fi
}

remove_mount_dropin() {
	if [ -e "$MOUNT_DROPIN" ]; then
		cpa_run rm -f "$MOUNT_DROPIN"
		cpa_changed "removed $MOUNT_DROPIN"
		if cpa_systemd_running; then
			cpa_run systemctl daemon-reload
		fi
	else
		cpa_unchanged "no mount drop-in installed"
	fi
}

# restore_pointer: where a migration gone wrong is undone when nothing else can.
restore_pointer() {
	printf '%s\n' "point-in-time recovery from the backups to just before the migration: $CPA_PROVISION_DIR/restore.sh --to-time 'YYYY-MM-DD HH:MM:SS+00' (try it first with --drill --to-time ...; see README, Backups)"
}

rollback_schema() {
	local -a args=(rollback --to "$ROLLBACK_TO")
	CPA_STEP=rollback-schema
	[ -n "$ROLLBACK_TO" ] || cpa_usage_error "schema needs --to VERSION"
	[[ "$ROLLBACK_TO" =~ ^[0-9]+$ ]] || cpa_usage_error "--to takes a version number: $ROLLBACK_TO"
	[ -z "$ROLLBACK_SET" ] || args+=(--set "$ROLLBACK_SET")
	[ "$CPA_DRY_RUN" = 1 ] && args+=(--dry-run)
	[ -x "$CPA_AGENT_BIN" ] || cpa_die "$CPA_EX_CONFIG" "$CPA_AGENT_BIN is not installed"
	cpa_info "running: checkpoint-agent -c $CPA_AGENT_CONFIG ${args[*]}"
	local rc=0
	runuser -u "$CPA_AGENT_USER" -- "$CPA_AGENT_BIN" -c "$CPA_AGENT_CONFIG" "${args[@]}" || rc=$?
	if [ "$rc" -ne 0 ]; then
		cpa_die "$rc" "checkpoint-agent rollback exited $rc (64 usage, 69 no database, 70 a step failed or was refused, 75 lock timeout)" \
			"Its messages are above; nothing after the failed step was rolled back. Last resort, when neither a down step nor the quarantine can bring the data back: $(restore_pointer)"
	fi
	[ "$CPA_DRY_RUN" = 1 ] || cpa_changed "schema rolled back to v$ROLLBACK_TO${ROLLBACK_SET:+ (set $ROLLBACK_SET)}"
	cpa_info "last resort for a migration gone wrong (data lost, not just schema): $(restore_pointer)"
	cpa_warn "checkpoint-agent.service applies pending migrations when it starts: before it restarts, deploy the application version that expects v$ROLLBACK_TO and remove the later migrations from its sets, or it migrates forward again (see provision/README.md)."
}

rollback_app() {
	CPA_STEP=rollback-app
	cat <<-APP
		Pointing the application back at Redis (the migration plan's fallback).
		This command changes nothing; the steps are:

		  1. Redis still holds every checkpoint:* key: provisioning never touches
		     Redis, and only provision/redis-cleanup.sh deletes them. Do not run it
		     until the PostgreSQL path is stable.
		  2. Switch the application's checkpointer back to the Redis saver, with
		     the Redis URL it used before (e.g. REDIS_URL in its environment), and
		     stop it reading CHECKPOINT_DB_URI from $CPA_ENV_FILE:
		       - systemd: remove EnvironmentFile=$CPA_ENV_FILE and the
		         Requires=/After=checkpoint-agent.service lines from the
		         application's drop-in (systemd/examples/app.service.d/), then
		         systemctl daemon-reload && systemctl restart APP.service
		       - containers / .env files: restore the previous env file.
		  3. Threads written to PostgreSQL after the switch are not in Redis: they
		     continue from their last Redis checkpoint.
		  4. PostgreSQL, the agent and their data stay as they are, ready for the
		     next attempt (rollback.sh datadir / schema undo those parts).
		See provision/README.md, "Rolling back".
	APP
}

main() {
	local what
	# shellcheck disable=SC2034 # read by cpa_usage
	CPA_USAGE_NAME="rollback.sh datadir|schema|app"
	# shellcheck disable=SC2034
	CPA_USAGE_WHAT="datadir: move PostgreSQL back to its original data directory; schema --to V: the agent's rollback; app: how to fall back to Redis."
	# shellcheck disable=SC2034
	CPA_USAGE_EXTRA="  --to V                  (schema) the version to roll back to
  --set S                 (schema) the migration set (default: the agent's)"
	ORIGINAL_ARGS=()
	for what in "$@"; do
		case "$what" in
		datadir | schema | app | --dry-run) ;;
		*) ORIGINAL_ARGS+=("$what") ;;
		esac
	done
	ROLLBACK_COMMAND="sudo $CPA_PROVISION_DIR/rollback.sh $(cpa_quote "$@")"
	cpa_load_defaults
	cpa_parse_options "$@"
	[ "${#CPA_ARGS_REST[@]}" -eq 1 ] || cpa_usage_error "give one of: datadir, schema, app"
	what=${CPA_ARGS_REST[0]}
	case "$what" in
	app)
		rollback_app
		return 0
		;;
	datadir | schema) ;;
	*) cpa_usage_error "unknown rollback: $what (datadir, schema, app)" ;;
	esac
	cpa_require_root
	cpa_take_lock "rollback.sh $what"
	cpa_enable_error_trap
	umask 077
	"rollback_$what"
}

# A failed rollback is resumed by running it again.
cpa_resume_command() { printf '%s\n' "$ROLLBACK_COMMAND"; }

main "$@"
