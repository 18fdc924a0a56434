# shellcheck shell=bash
# The TL_ variables are read by the suites: shellcheck cannot see that.
# shellcheck disable=SC2034
# standby.sh: a streaming standby of the cluster tl_pg_start made, for the
# suites that need a leader and a replica on this machine (no Patroni: the
# tests play its part with pg_ctl promote). Source it after test-lib.sh.
#
#   tl_standby_start NAME   pg_basebackup of the current cluster into a
#                           temporary folder, started on a free loopback port
#                           as a hot standby streaming under application_name
#                           NAME. Sets TL_STANDBY_DATA, TL_STANDBY_PORT,
#                           TL_STANDBY_DIR. It is removed by tl_cleanup.
#   tl_standby_sql SQL      one value from it, as the superuser.
#   tl_standby_wait_streaming SECONDS
#                           waits until the leader sees it streaming.

: "${TL_ROOT:?standby.sh: source tests/lib/test-lib.sh first}"

tl_standby_start() {
	local name=$1 dir port
	dir=$(tl_tmpdir) || return 1
	chown postgres: "$dir"
	TL_STANDBY_DIR=$dir
	TL_STANDBY_DATA=$dir/data
	runuser -u postgres -- "$TL_PGBIN/pg_basebackup" -h "$TL_PGSOCK" -p "$TL_PGPORT" -U postgres \
		-D "$TL_STANDBY_DATA" -R -X stream -c fast >"$dir/basebackup.log" 2>&1 ||
		{ cat "$dir/basebackup.log" >&2; return 1; }
	# The leader's socket, and a name the leader's pg_stat_replication shows.
	printf "primary_conninfo = 'host=%s port=%s user=postgres application_name=%s'\n" \
		"$TL_PGSOCK" "$TL_PGPORT" "$name" >>"$TL_STANDBY_DATA/postgresql.auto.conf"
	printf "unix_socket_directories = '%s'\n" "$dir" >>"$TL_STANDBY_DATA/postgresql.auto.conf"
	for _ in 1 2 3 4 5; do
		port=$(tl_free_port) || return 1
		if runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_STANDBY_DATA" -o "-p $port" \
			-l "$dir/server.log" -w -t 30 start >/dev/null 2>&1; then
			break
		fi
		port=
	done
	[ -n "$port" ] || { tl_log "the standby would not start"; cat "$dir/server.log" >&2; return 1; }
	TL_STANDBY_PORT=$port
	TL_CLUSTERS+=("$TL_STANDBY_DATA")
}

tl_standby_sql() {
	runuser -u postgres -- "$TL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
		-h "$TL_STANDBY_DIR" -p "$TL_STANDBY_PORT" -d "$TL_APP_DB" -c "$1"
}

tl_standby_wait_streaming() {
	tl_wait_for "$1" "SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming'"
}
