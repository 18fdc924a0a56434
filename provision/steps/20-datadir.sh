#!/bin/bash
# 20-datadir.sh: step "datadir". Places the cluster's data directory on the
# data disk (CPA_DATA_DIR, default CPA_DATA_ROOT/postgresql/VERSION/CLUSTER)
# with postgresql-common's tools, and installs the drop-in that makes the
# cluster's unit require the mount.
#   - already there: nothing to do;
#   - a fresh cluster (no user data): pg_dropcluster --stop, then
#     pg_createcluster -d TARGET with the same version, name, port, encoding
#     and locale;
#   - a cluster with data: checksums, stop, cp -a, pg_conftool set
#     data_directory, start, verify; the old directory is kept unless
#     --remove-old.
# Refuses (exit 73) when the target is foreign or has a postmaster.pid,
# space is short, the target cannot be made 0700 for postgres, or the
# cluster's WAL or tablespaces are outside its directory. A target that is
# the current directory through a symlink or bind mount is "already there".
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/datadir.sh
. "$CPA_PROVISION_DIR/lib/datadir.sh"

MOUNT_DROPIN_SRC=$CPA_REPO_DIR/systemd/postgresql@.service.d/require-data-mount.conf
MOUNT_DROPIN=/etc/systemd/system/postgresql@.service.d/require-data-mount.conf

# render_mount_dropin: the systemd/ drop-in with the data root in its
# RequiresMountsFor= line.
render_mount_dropin() {
	local line
	[ -r "$MOUNT_DROPIN_SRC" ] || cpa_die "$CPA_EX_CONFIG" "$MOUNT_DROPIN_SRC is missing" \
		"It ships with the repository (systemd/); restore it from git."
	while IFS= read -r line || [ -n "$line" ]; do
		case "$line" in
		RequiresMountsFor=*) line="RequiresMountsFor=$CPA_DATA_ROOT" ;;
		esac
		printf '%s\n' "$line"
	done <"$MOUNT_DROPIN_SRC"
}

install_mount_dropin() {
	local content rc=0
	content=$(render_mount_dropin) || exit "$?"
	printf '%s\n' "$content" | cpa_install_content "$MOUNT_DROPIN" 0644 root root "systemd drop-in" || rc=$?
	if cpa_install_result "$rc"; then
		if cpa_systemd_running; then
			cpa_run systemctl daemon-reload
		fi
	fi
}

# fresh_cluster_on_target TARGET FROM: recreate the empty cluster on the disk.
recreate_fresh_cluster() {
	local target=$1 from=$2 encoding locale ctype backup
	encoding=$(cpa_psql -d postgres -c "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'template1'")
	locale=$(cpa_psql -d postgres -c "SELECT datcollate FROM pg_database WHERE datname = 'template1'")
	ctype=$(cpa_psql -d postgres -c "SELECT datctype FROM pg_database WHERE datname = 'template1'")
	backup=$CPA_STATE_DIR/conf-backup-$CPA_PG_VERSION-$CPA_PG_CLUSTER-$(date -u +%Y%m%dT%H%M%SZ)
	install -d -m 0700 "$CPA_STATE_DIR"
	cp -a "$CPA_PG_CONF_DIR" "$backup"
	cpa_info "the cluster holds no user data: recreating it on $target (its old configuration is kept in $backup)"
	pg_dropcluster --stop "$CPA_PG_VERSION" "$CPA_PG_CLUSTER"
	cpa_changed "dropped the empty cluster $CPA_PG_VERSION/$CPA_PG_CLUSTER on $from"
	pg_createcluster -d "$target" -p "$CPA_PG_PORT" -e "$encoding" --lc-collate "$locale" --lc-ctype "$ctype" \
		"$CPA_PG_VERSION" "$CPA_PG_CLUSTER" -- --data-checksums >/dev/null
	cpa_changed "created cluster $CPA_PG_VERSION/$CPA_PG_CLUSTER on $target (port $CPA_PG_PORT, $encoding, $locale, data checksums)"
	pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" start
	cpa_wait_ready 60 || cpa_die "$CPA_EX_UNAVAILABLE" "the new cluster on $target did not start"
	[ "$(cpa_show_data_directory)" = "$target" ] ||
		cpa_die "$CPA_EX_VERIFY" "SHOW data_directory is $(cpa_show_data_directory), not $target"
	cpa_changed "started on $target (SHOW data_directory agrees)"
	cpa_record_relocation "$from" "$target" created
}

remove_old_directory() {
	local old=$1
	if [ "$CPA_REMOVE_OLD" = 1 ]; then
		if cpa_same_directory "$old" "$CPA_DATA_DIR" || [ -e "$old/postmaster.pid" ]; then
			cpa_warn "the old data directory $old is kept: it is the running cluster's directory, or has a postmaster.pid"
			return 0
		fi
		rm -rf --one-file-system -- "$old"
		cpa_changed "removed the old data directory $old (--remove-old)"
	else
		cpa_info "the old data directory $old is kept (rollback.sh datadir uses it; --remove-old removes it)"
	fi
}

place_data_directory() {
	local status current target=$CPA_DATA_DIR sysid state report
	status=$(cpa_cluster_status)
	if [ "$status" = absent ]; then
		if [ "$CPA_DRY_RUN" = 1 ]; then
			cpa_changed "place cluster $CPA_PG_VERSION/$CPA_PG_CLUSTER on $target (the install step creates it first)"
			return 0
		fi
		cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL $CPA_PG_VERSION cluster $CPA_PG_CLUSTER does not exist" \
			"Run the install step first (provision.sh --from install), or create it with pg_createcluster $CPA_PG_VERSION $CPA_PG_CLUSTER."
	fi
	current=$(cpa_normalize_path "$(cpa_cluster_data_directory)")
	cpa_check_mount "$CPA_DATA_ROOT"
	if [ "$current" = "$target" ]; then
		cpa_unchanged "data_directory is $target"
		return 0
	fi
	sysid=$(cpa_datadir_sysid "$current")
	state=$(cpa_target_state "$target" "$sysid" "$current")
	case "$state" in
	same)
		# A symlink or bind mount leads from one to the other: the data is
		# already on the target (and must not be taken for an old copy).
		cpa_unchanged "data_directory is $current, the same directory as $target (a symlink or bind mount)"
		return 0
		;;
	foreign)
		cpa_die "$CPA_EX_REFUSED" "$target is not empty and does not hold this cluster's data" \
			"Nothing was changed. Empty it, or choose another place with --data-dir."
		;;
	running)
		cpa_die "$CPA_EX_REFUSED" "$target holds a copy of this cluster with a postmaster.pid: a server may be running on it" \
			"Nothing was changed. Stop that server (pg_ctl -D $target stop); if none runs, remove $target/postmaster.pid, then resume."
		;;
	not-older)
		cpa_die "$CPA_EX_REFUSED" "$target holds a copy of this cluster that is not provably older than $current: $(cpa_older_copy_problem "$target" "$current")" \
			"Nothing was changed. It may hold data the cluster lacks: look at it (pg_controldata $target; start a server on it if need be), keep what you need, then move it away and resume."
		;;
	ours)
		cpa_info "$target holds an older copy of this cluster (system identifier $sysid, cleanly shut down at an earlier checkpoint); it will be replaced"
		;;
	esac
	cpa_info "data_directory is $current; it goes to $target"
	cpa_check_space "$current" "$target"
	cpa_check_self_contained "$current"
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_prepare_target "$target"
		if [ "$status" != online ]; then
			cpa_changed "start the cluster to look for user data, then either recreate it on $target (empty) or copy it there and verify"
		elif [ -z "$(cpa_user_data_report)" ]; then
			cpa_changed "recreate the empty cluster on $target: pg_dropcluster --stop, pg_createcluster -d $target -p $CPA_PG_PORT $CPA_PG_VERSION $CPA_PG_CLUSTER -- --data-checksums"
		else
			cpa_changed "copy $current to $target (stop, cp -a, pg_conftool set data_directory, start, verify checksums)"
			[ "$CPA_ENABLE_CHECKSUMS" != 1 ] || cpa_changed "pg_checksums --enable on the copy $target while the cluster is stopped (--enable-checksums)"
		fi
		return 0
	fi
	if [ "$state" = ours ]; then
		cpa_remove_contents "$target"
		cpa_changed "removed the older copy at $target"
	fi
	cpa_prepare_target "$target"
	cpa_cluster_start
	cpa_wait_ready 60 || cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL $CPA_PG_VERSION/$CPA_PG_CLUSTER does not accept connections" \
		"See /var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log."
	report=$(cpa_user_data_report)
	if [ -z "$report" ]; then
		recreate_fresh_cluster "$target" "$current"
		return 0
	fi
	cpa_info "the cluster holds data ($(printf '%s' "$report" | tr '\n' ';' | sed 's/;$//;s/;/; /g')): copying it"
	cpa_copy_and_switch "$current" "$target" move
	cpa_record_relocation "$current" "$target" copied
	remove_old_directory "$current"
}

main() {
	cpa_init_step datadir "$@"
	place_data_directory
	install_mount_dropin
}

main "$@"
