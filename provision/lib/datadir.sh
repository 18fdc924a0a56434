# shellcheck shell=bash
# datadir.sh: placing PostgreSQL's data directory, shared by the datadir step
# and `rollback.sh datadir`. Pure checks (refusals, space) take their inputs
# as arguments, so the tests can run them against temporary folders.

# cpa_dir_is_empty DIR: true when DIR does not exist or has no entries
# (lost+found, which mkfs makes on a fresh disk, does not count).
cpa_dir_is_empty() {
	local dir=$1 entry
	[ -d "$dir" ] || return 0
	for entry in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
		[ -e "$entry" ] || [ -L "$entry" ] || continue
		[ "$(basename "$entry")" = lost+found ] && continue
		return 1
	done
	return 0
}

# cpa_datadir_sysid DIR: the database system identifier of the cluster in DIR
# (pg_controldata), or nothing when DIR holds no cluster.
cpa_datadir_sysid() {
	local dir=$1
	[ -f "$dir/global/pg_control" ] || return 0
	LC_ALL=C "$CPA_PG_BIN/pg_controldata" "$dir" 2>/dev/null |
		sed -n 's/^Database system identifier:[[:space:]]*//p'
}

# cpa_same_directory A B: true when A and B both exist and are the same
# directory (same device and inode), whatever path leads there: a symlink
# (/var/lib/postgresql -> /mnt/data/postgresql) or a bind mount.
cpa_same_directory() {
	local a b
	[ -d "$1" ] && [ -d "$2" ] || return 1
	a=$(stat -Lc '%d:%i' -- "$1") || return 1
	b=$(stat -Lc '%d:%i' -- "$2") || return 1
	[ "$a" = "$b" ]
}

# cpa_controldata DIR FIELD: one field of pg_controldata DIR (C locale), e.g.
# "Latest checkpoint location"; nothing when DIR holds no cluster.
cpa_controldata() {
	local dir=$1 field=$2
	[ -f "$dir/global/pg_control" ] || return 0
	LC_ALL=C "$CPA_PG_BIN/pg_controldata" "$dir" 2>/dev/null |
		awk -v f="$field:" 'index($0, f) == 1 { sub(/^[^:]*:[ \t]*/, ""); print; exit }'
}

# cpa_lsn_number LSN: a WAL location such as 16/B374D848 as a number.
cpa_lsn_number() {
	local lsn=$1
	[[ "$lsn" =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]] || return 1
	printf '%s\n' $(((16#${lsn%/*} << 32) + 16#${lsn#*/}))
}

# cpa_older_copy_problem COPY CURRENT: prints why COPY, a directory with the
# system identifier of the cluster in CURRENT, is not provably an older copy
# of it (and returns 1), or prints nothing (and returns 0). An older copy was
# shut down cleanly (a server that ran or crashed on it, or a standby, may
# have written what the cluster never saw), on the same timeline, at a
# checkpoint no later than the cluster's latest one. Two copies that both
# went on from the same point cannot be told apart this way: that is why a
# copy the move made itself and never switched to is removed when a move is
# cut short (cpa_restore_after_failure).
cpa_older_copy_problem() {
	local copy=$1 current=$2 state copy_tli cur_tli copy_lsn cur_lsn a b
	state=$(cpa_controldata "$copy" "Database cluster state")
	if [ "$state" != "shut down" ]; then
		printf '%s\n' "its cluster state is '${state:-unreadable}', not 'shut down': a server ran or crashed on it, or it is a standby, so it may hold changes the cluster does not have"
		return 1
	fi
	copy_tli=$(cpa_controldata "$copy" "Latest checkpoint's TimeLineID")
	cur_tli=$(cpa_controldata "$current" "Latest checkpoint's TimeLineID")
	if [ -z "$copy_tli" ] || [ "$copy_tli" != "$cur_tli" ]; then
		printf '%s\n' "it is on timeline ${copy_tli:-?}, the cluster on ${cur_tli:-?}"
		return 1
	fi
	copy_lsn=$(cpa_controldata "$copy" "Latest checkpoint location")
	cur_lsn=$(cpa_controldata "$current" "Latest checkpoint location")
	if ! a=$(cpa_lsn_number "$copy_lsn") || ! b=$(cpa_lsn_number "$cur_lsn"); then
		printf '%s\n' "its latest checkpoint location (${copy_lsn:-?}) or the cluster's (${cur_lsn:-?}) cannot be read"
		return 1
	fi
	if [ "$a" -gt "$b" ]; then
		printf '%s\n' "its latest checkpoint ($copy_lsn) is later than the cluster's ($cur_lsn): it is newer"
		return 1
	fi
	return 0
}

# cpa_target_state TARGET SYSID CURRENT: "same" (TARGET is CURRENT, the
# cluster's data directory, reached by another path), "empty" (absent or
# empty), "ours" (a provably older copy of the cluster with system identifier
# SYSID in CURRENT, e.g. the directory kept by a move or a rollback; see
# cpa_older_copy_problem), "running" (such a copy with a postmaster.pid: a
# server may use it), "not-older" (a copy of this cluster that is not
# provably older: newer, a standby, or one a server ran on) or "foreign"
# (anything else). Only "ours" may be removed.
cpa_target_state() {
	local target=$1 sysid=$2 current=${3:-} found
	if [ -n "$current" ] && cpa_same_directory "$target" "$current"; then
		echo same
		return 0
	fi
	if cpa_dir_is_empty "$target"; then
		echo empty
		return 0
	fi
	found=$(cpa_datadir_sysid "$target")
	if [ -n "$found" ] && [ -n "$sysid" ] && [ "$found" = "$sysid" ]; then
		if [ -e "$target/postmaster.pid" ] || [ -L "$target/postmaster.pid" ]; then
			echo running
		elif [ -n "$current" ] && cpa_older_copy_problem "$target" "$current" >/dev/null; then
			echo ours
		else
			echo not-older
		fi
	else
		echo foreign
	fi
}

# cpa_check_self_contained DIR: refuse (73) when DIR's cluster keeps data
# outside DIR: pg_wal a symlink (initdb --waldir) or tablespaces in
# pg_tblspc. cp -a would copy those as symlinks, so the new directory would
# write into the WAL and tablespaces of the one that is kept.
cpa_check_self_contained() {
	local dir=$1
	if [ -L "$dir/pg_wal" ]; then
		cpa_die "$CPA_EX_REFUSED" "$dir/pg_wal is a symlink (to $(readlink -- "$dir/pg_wal")): the WAL is outside the data directory" \
			"Nothing was changed. A copy would share that WAL with the old directory and corrupt it. Move the WAL back into $dir/pg_wal (server stopped), or move the cluster by hand."
	fi
	if ! cpa_dir_is_empty "$dir/pg_tblspc"; then
		cpa_die "$CPA_EX_REFUSED" "$dir uses tablespaces ($dir/pg_tblspc is not empty): their data is outside the data directory" \
			"Nothing was changed. A copy would share the tablespaces with the old directory and corrupt it. Move their tables to pg_default (ALTER TABLE ... SET TABLESPACE pg_default) and drop them, or move the cluster by hand."
	fi
}

# cpa_space_needed_kb USED_KB MARGIN_PERCENT: what the target's file system
# must have free: the data plus the margin, and at least 64 MB more for WAL
# written while it settles.
cpa_space_needed_kb() {
	local used=$1 margin=$2
	printf '%s\n' $((used * (100 + margin) / 100 + 65536))
}

# cpa_existing_ancestor PATH: PATH or its nearest existing parent.
cpa_existing_ancestor() {
	local p=$1
	while [ ! -e "$p" ] && [ "$p" != / ]; do
		p=$(dirname "$p")
	done
	printf '%s\n' "$p"
}

# cpa_free_kb PATH: free kilobytes on the file system that will hold PATH.
cpa_free_kb() {
	df -Pk "$(cpa_existing_ancestor "$1")" | awk 'NR == 2 { print $4 }'
}

# cpa_check_space SOURCE_DIR TARGET: refuse when TARGET's file system lacks
# room for SOURCE_DIR plus the margin.
cpa_check_space() {
	local source=$1 target=$2 used need free
	used=$(du -sk "$source" 2>/dev/null | awk '{ print $1 }')
	used=${used:-0}
	need=$(cpa_space_needed_kb "$used" "$CPA_SPACE_MARGIN_PERCENT")
	free=$(cpa_free_kb "$target")
	if [ "$free" -lt "$need" ]; then
		cpa_die "$CPA_EX_REFUSED" "not enough free space for $target: $((free / 1024)) MB free, $((need / 1024)) MB needed" \
			"The data is $((used / 1024)) MB; with a ${CPA_SPACE_MARGIN_PERCENT}% margin and 64 MB for WAL that needs $((need / 1024)) MB. Free space on the data disk, or choose another one with --data-root."
	fi
	cpa_unchanged "free space on $(cpa_existing_ancestor "$target"): $((free / 1024)) MB, $((need / 1024)) MB needed"
}

# cpa_check_mount ROOT: warn (or refuse, with --require-mount) when ROOT is
# not a mount point of its own.
cpa_check_mount() {
	local root=$1
	if [ -d "$root" ] && mountpoint -q "$root"; then
		cpa_unchanged "$root is a mount point"
		return 0
	fi
	if [ "$CPA_REQUIRE_MOUNT" = 1 ]; then
		cpa_die "$CPA_EX_REFUSED" "$root is not a mount point, and --require-mount was given" \
			"Mount the data disk at $root (and add it to /etc/fstab), then resume."
	fi
	cpa_warn "$root is not a separate mount point: the data directory would share the root file system. Mount the data disk there, or pass --require-mount to refuse in this case."
}

# cpa_prepare_target TARGET: create TARGET (and its parents) for the postgres
# user, mode 0700; refuse when the result is not 0700 postgres:postgres or
# postgres cannot write into it.
cpa_prepare_target() {
	local target=$1 parent mode owner p
	parent=$(dirname "$target")
	if [ "$CPA_DRY_RUN" = 1 ]; then
		[ -d "$target" ] || cpa_changed "create $target (0700 postgres:postgres)"
		return 0
	fi
	# Parents made here belong to postgres (like /var/lib/postgresql); those
	# that exist are left as they are, but must let postgres through.
	p=$parent
	local -a missing=()
	while [ ! -e "$p" ]; do
		missing=("$p" "${missing[@]}")
		p=$(dirname "$p")
	done
	for p in "${missing[@]}"; do
		install -d -m 0755 -o postgres -g postgres "$p" ||
			cpa_die "$CPA_EX_REFUSED" "cannot create $p" "Check that the data disk is mounted read-write."
		cpa_changed "created $p (0755 postgres:postgres)"
	done
	if [ ! -d "$target" ]; then
		install -d -m 0700 -o postgres -g postgres "$target" 2>/dev/null ||
			cpa_die "$CPA_EX_REFUSED" "cannot create $target" "Check that the data disk is mounted read-write."
		cpa_changed "created $target (0700 postgres:postgres)"
	fi
	chown postgres:postgres "$target" 2>/dev/null || true
	chmod 0700 "$target" 2>/dev/null || true
	mode=$(stat -c '%a' "$target")
	owner=$(stat -c '%U:%G' "$target")
	if [ "$mode" != 700 ] || [ "$owner" != postgres:postgres ]; then
		cpa_die "$CPA_EX_REFUSED" "$target cannot be made 0700 postgres:postgres (it is $mode $owner)" \
			"PostgreSQL refuses a data directory others can read. The file system may not keep Unix permissions (vfat, some network mounts) or may squash root: use a local ext4/xfs file system."
	fi
	if ! runuser -u postgres -- test -w "$target" || ! runuser -u postgres -- test -x "$target"; then
		cpa_die "$CPA_EX_REFUSED" "the postgres user cannot use $target" \
			"A parent folder does not let postgres through, or the file system is read-only. Fix the parents' modes (e.g. chmod o+x), then resume."
	fi
}

# cpa_user_data_report: prints one line per kind of user data the running
# cluster holds (lib/user-data.sql, which the Ansible role runs too:
# databases, roles, ALTER SYSTEM and per-database settings, and in the
# databases postgres and template1 relations, functions, types, extensions
# and schemas); nothing for a fresh cluster.
cpa_user_data_report() {
	local db
	for db in postgres template1; do
		cpa_psql -d "$db" <"$CPA_PROVISION_DIR/lib/user-data.sql"
	done
}

# cpa_table_checksums: one line per user table of every database that takes
# connections: "database schema.table rows checksum". The checksum is the sum
# of the first 64 bits of each row's md5: independent of row order, so it
# needs neither a sort nor memory in proportion to the table.
cpa_table_checksums() {
	local db
	for db in $(cpa_psql -d postgres -c "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1"); do
		cpa_psql -d "$db" -F ' ' <<-'EOF'
			SELECT format('SELECT %L, %L, count(*), coalesce(sum((''x'' || left(md5(cpa_checksum_row::text), 16))::bit(64)::bigint::numeric), 0) FROM %I.%I AS cpa_checksum_row',
			              current_database(), n.nspname || '.' || c.relname, n.nspname, c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'r'
			  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
			ORDER BY n.nspname, c.relname
			\gexec
		EOF
	done
}

# cpa_show_data_directory: the running server's SHOW data_directory.
cpa_show_data_directory() {
	cpa_psql -d postgres -c 'SHOW data_directory'
}

# cpa_record_relocation ORIGINAL NEW METHOD: remember where the data was, for
# rollback.sh datadir.
cpa_record_relocation() {
	local original=$1 new=$2 method=$3
	[ "$CPA_DRY_RUN" = 1 ] && return 0
	install -d -m 0700 "$CPA_STATE_DIR"
	cpa_install_content "$CPA_STATE_DIR/datadir-$CPA_PG_VERSION-$CPA_PG_CLUSTER.env" 0600 root root "relocation record" <<-EOF || cpa_installed "$?"
		# Written by provision/ when it moved PostgreSQL $CPA_PG_VERSION/$CPA_PG_CLUSTER; read by rollback.sh datadir.
		ORIGINAL_DATA_DIRECTORY=$original
		DATA_DIRECTORY=$new
		METHOD=$method
		DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	EOF
}

# cpa_relocation_record KEY: a value from the relocation record.
cpa_relocation_record() {
	local file=$CPA_STATE_DIR/datadir-$CPA_PG_VERSION-$CPA_PG_CLUSTER.env
	[ -f "$file" ] || return 0
	sed -n "s/^$1=//p" "$file" | tail -n 1
}

# cpa_private_start DIR WORK: start the cluster's server on data directory
# DIR (with the cluster's configuration) where no client can reach it: no
# TCP, and its socket in WORK only. Nothing can write while the copy is
# checksummed, so "before" and "after" compare the same data. No archiving
# either: the cluster's server archives what is left once it runs again.
cpa_private_start() {
	local dir=$1 work=$2
	CPA_COPY_PRIVATE=$dir
	runuser -u postgres -- "$CPA_PG_BIN/pg_ctl" -D "$CPA_PG_CONF_DIR" -l "$work/server.log" -w -t 300 \
		-o "-c data_directory=$dir -c listen_addresses='' -c unix_socket_directories=$work -c external_pid_file=$work/pid -c archive_mode=off" \
		start >/dev/null
}

cpa_private_stop() {
	runuser -u postgres -- "$CPA_PG_BIN/pg_ctl" -D "$1" -m fast -w -t 300 stop >/dev/null || return 1
	CPA_COPY_PRIVATE=
}

# cpa_private_checksums DIR WORK OUT: the table checksums of DIR, taken on a
# private server, into OUT; also checks SHOW data_directory.
cpa_private_checksums() {
	local dir=$1 work=$2 out=$3 shown
	cpa_private_start "$dir" "$work" || {
		tail -n 20 "$work/server.log" >&2
		return 1
	}
	shown=$(PGHOST=$work cpa_show_data_directory) || shown=
	PGHOST=$work cpa_table_checksums >"$out" || shown=
	cpa_private_stop "$dir" || return 1
	[ "$shown" = "$dir" ]
}

# The copy in progress, for cpa_restore_after_failure (CPA_ON_FAILURE: run
# on an unexpected failure, a signal or an exit while a copy is under way):
# its directories, whether data_directory already names TO, whether TO is
# kept (for inspection) if the move is given up, the data directory of a
# private server that runs now, and the process that set them (not a
# subshell).
CPA_COPY_FROM=
CPA_COPY_TO=
CPA_COPY_SWITCHED=0
CPA_COPY_KEEP_TO=0
CPA_COPY_PRIVATE=
CPA_COPY_PID=

# cpa_flush_directory DIR: write everything under DIR to the disk (syncfs(2)
# of its file system: every file, and every directory entry). A copy is read
# back from the page cache, and PostgreSQL fsyncs nothing when it starts
# from a clean shutdown: without this, a power loss after the switch (or
# after --remove-old) could lose data that then exists nowhere.
cpa_flush_directory() {
	sync -f -- "$1"
}

# cpa_remove_contents DIR: remove what DIR holds, keeping DIR itself (it may
# be a mount point, with the lost+found of its file system, which stays),
# never crossing into another file system.
cpa_remove_contents() {
	local dir=$1
	[ -d "$dir" ] || return 0
	find "$dir" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf --one-file-system -- {} +
}

# cpa_restore_after_failure: when a copy is cut short (a failure, a signal,
# an exit): stop the private server of a checksum run if one runs; when
# data_directory was already switched to TO but the cluster does not run
# there, set it back to FROM; start the cluster again (on FROM); then remove
# the copy in TO, which no client ever reached (the move made it, into an
# empty directory), unless it is kept for inspection. When the cluster
# already runs on TO, the move is complete and nothing is undone: clients
# may have written there. Says what it did; every command is guarded.
cpa_restore_after_failure() {
	local shown
	[ -n "$CPA_COPY_FROM" ] && [ "$BASHPID" = "$CPA_COPY_PID" ] || return 0
	if [ -n "$CPA_COPY_PRIVATE" ]; then
		runuser -u postgres -- "$CPA_PG_BIN/pg_ctl" -D "$CPA_COPY_PRIVATE" -m fast -w -t 300 stop >/dev/null 2>&1 || true
		CPA_COPY_PRIVATE=
	fi
	if [ "$CPA_COPY_SWITCHED" = 1 ]; then
		shown=
		[ "$(cpa_cluster_status)" = online ] && shown=$(cpa_show_data_directory 2>/dev/null || true)
		if [ "$shown" = "$CPA_COPY_TO" ]; then
			cpa_info "PostgreSQL already runs on $CPA_COPY_TO: the move is complete; $CPA_COPY_FROM is kept"
			CPA_COPY_FROM=
			return 0
		fi
		pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" stop >/dev/null 2>&1 || true
		if pg_conftool "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" set data_directory "$CPA_COPY_FROM"; then
			cpa_changed "data_directory = '$CPA_COPY_FROM' again (the move did not complete)"
		else
			cpa_warn "could not set data_directory back to $CPA_COPY_FROM: run pg_conftool $CPA_PG_VERSION $CPA_PG_CLUSTER set data_directory $CPA_COPY_FROM"
		fi
	fi
	if [ "$(cpa_cluster_status)" = online ] ||
		{ pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" start && cpa_wait_ready 120; }; then
		cpa_info "the move did not complete; PostgreSQL runs again on $(cpa_show_data_directory 2>/dev/null || echo "?")"
	else
		cpa_warn "the move did not complete and PostgreSQL did not start again: see /var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log, then pg_ctlcluster $CPA_PG_VERSION $CPA_PG_CLUSTER start"
	fi
	# Only now, with the cluster back: a removal that fails leaves it running.
	if [ "$CPA_COPY_KEEP_TO" = 1 ]; then
		cpa_info "the copy in $CPA_COPY_TO is kept for inspection; remove it before you resume"
	elif cpa_remove_contents "$CPA_COPY_TO"; then
		cpa_info "removed the unfinished copy in $CPA_COPY_TO (no client ever used it)"
	else
		cpa_warn "could not remove the unfinished copy in $CPA_COPY_TO; remove it before you resume"
	fi
	CPA_COPY_FROM=
}

# cpa_source_is_stopped DIR: true when no server runs on DIR any more.
cpa_source_is_stopped() {
	local rc=0
	runuser -u postgres -- "$CPA_PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1 || rc=$?
	[ "$rc" != 0 ]
}

# cpa_copy_and_switch FROM TO WHAT: the copy path, shared with the rollback.
# Refuse a cluster with data outside FROM (cpa_check_self_contained). Stop
# the cluster, and make sure no server runs on FROM; checksum FROM on a
# private server; copy with cp -a; checksum TO the same way; only when every
# table's row count and checksum match, flush TO to the disk, point
# data_directory at TO (pg_conftool) and start the cluster, which must then
# report TO in SHOW data_directory. Until the cluster runs on TO, its
# configuration names FROM (or is set back to it), and FROM is never
# written to: when the move is cut short by a failure, a signal (an SSH
# session that drops) or an exit, the cluster is started on FROM again
# (cpa_restore_after_failure) and the copy removed, before the step stops
# (65 on a mismatch, the copy then kept for inspection; 70 otherwise).
# TO must be empty (or hold an older copy the caller removed).
# shellcheck disable=SC2034 # CPA_ON_FAILURE is read by the traps (common.sh)
cpa_copy_and_switch() {
	local from=$1 to=$2 what=$3 work before after
	cpa_check_self_contained "$from"
	work=$(mktemp -d "${TMPDIR:-/tmp}/cpa-datadir.XXXXXX")
	chown postgres:postgres "$work"
	chmod 0700 "$work"
	before=$work/before
	after=$work/after
	CPA_COPY_FROM=$from
	CPA_COPY_TO=$to
	CPA_COPY_SWITCHED=0
	CPA_COPY_KEEP_TO=0
	CPA_COPY_PRIVATE=
	CPA_COPY_PID=$BASHPID
	CPA_ON_FAILURE=cpa_restore_after_failure
	cpa_cluster_stop
	if ! cpa_source_is_stopped "$from"; then
		cpa_run_failure_hook
		cpa_die "$CPA_EX_REFUSED" "a server still runs on $from after pg_ctlcluster stop (its postmaster.pid names a live process)" \
			"Nothing was copied. A server started outside postgresql-common (pg_ctl by hand?) uses it: stop it, then resume."
	fi
	cpa_info "stopped PostgreSQL for the $what; checksumming $from on a private server (no TCP, private socket)"
	if ! cpa_private_checksums "$from" "$work" "$before"; then
		cpa_run_failure_hook
		cpa_die "$CPA_EX_FAILED" "could not checksum $from on a private server; PostgreSQL was started again on it" \
			"The server's log is above."
	fi
	cpa_info "$(wc -l <"$before") tables checksummed in $from"
	cpa_info "copying $from to $to (cp -a: modes, owners, times kept)"
	if ! cp -a "$from/." "$to/"; then
		cpa_run_failure_hook
		cpa_die "$CPA_EX_FAILED" "copying $from to $to failed; PostgreSQL was started again on $from" \
			"Check the disk (space, errors), then resume."
	fi
	# The copy's pid file names the private server of the checksum run.
	rm -f "$to/postmaster.pid"
	if ! cpa_private_checksums "$to" "$work" "$after" || ! cmp -s "$before" "$after"; then
		diff "$before" "$after" | sed 's/^/    /' >&2 || true
		CPA_COPY_KEEP_TO=1
		cpa_run_failure_hook
		cpa_die "$CPA_EX_VERIFY" "the copy on $to does not match $from: PostgreSQL was started again on $from, which was not changed" \
			"The differences are above. Check the data disk; $to is left for inspection (remove it before you resume)."
	fi
	cpa_changed "copied $from to $to: $(wc -l <"$after") tables' row counts and checksums match"
	if [ "$what" = move ]; then
		cpa_enable_data_checksums "$to"
	fi
	if ! cpa_flush_directory "$to"; then
		cpa_run_failure_hook
		cpa_die "$CPA_EX_FAILED" "could not flush the copy on $to to the disk; PostgreSQL was started again on $from" \
			"The data disk reported an error (see above): check it, then resume."
	fi
	cpa_info "flushed the copy on $to to the disk (syncfs)"
	CPA_COPY_SWITCHED=1
	pg_conftool "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" set data_directory "$to"
	cpa_changed "data_directory = '$to' (was $from)"
	if ! pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" start || ! cpa_wait_ready 120 ||
		[ "$(cpa_show_data_directory)" != "$to" ]; then
		CPA_COPY_KEEP_TO=1
		if [ "$(cpa_cluster_status)" = online ] && [ "$(cpa_show_data_directory 2>/dev/null)" = "$to" ]; then
			CPA_ON_FAILURE=
			cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL started on $to but does not accept connections as it should; it stays there" \
				"See /var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log. $from is kept."
		fi
		cpa_run_failure_hook
		cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL did not start on $to (or SHOW data_directory disagrees); it is back on $from" \
			"See /var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log; $to is kept for inspection (remove it before you resume)."
	fi
	CPA_ON_FAILURE=
	CPA_COPY_FROM=
	cpa_changed "PostgreSQL runs on $to (SHOW data_directory agrees)"
	rm -rf "$work"
}

# cpa_enable_data_checksums DIR: with --enable-checksums, pg_checksums
# --enable on the stopped copy DIR (the original keeps its state, so a
# rollback to it is unaffected). Without it, says how when they are off.
cpa_enable_data_checksums() {
	local dir=$1 start
	[ "$(cpa_backup_data_checksums "$dir")" = off ] || return 0
	if [ "$CPA_ENABLE_CHECKSUMS" != 1 ]; then
		cpa_info "data checksums are off in $dir; --enable-checksums turns them on during a move (pg_checksums --enable while it is stopped)"
		return 0
	fi
	start=$(date +%s)
	runuser -u postgres -- "$CPA_PG_BIN/pg_checksums" --enable --pgdata="$dir" >/dev/null || {
		CPA_COPY_KEEP_TO=1
		cpa_run_failure_hook
		cpa_die "$CPA_EX_FAILED" "pg_checksums --enable on $dir failed; PostgreSQL was started again on the original directory" \
			"Its message is above. The copy in $dir is left for inspection; without --enable-checksums the move proceeds."
	}
	cpa_changed "enabled data checksums on $dir (pg_checksums --enable, $(($(date +%s) - start)) s, while the cluster was stopped)"
}
