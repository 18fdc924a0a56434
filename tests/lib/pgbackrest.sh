# shellcheck shell=bash
# shellcheck disable=SC2034 # the TB_ variables are read by the suites
# pgbackrest.sh: a real pgBackRest repository for the throwaway cluster of
# tl_pg_start (tests/lib/test-lib.sh). Source it after test-lib.sh.
#
#   tb_setup [STANZA]    writes a pgBackRest config for the cluster (its
#                        repository, lock and log folders in the suite's
#                        temporary folder), turns WAL archiving on through it
#                        (one restart), creates the stanza and checks it.
#                        Exports PGBACKREST_CONFIG, which pgBackRest reads, so
#                        `tb_pgbackrest` and restore.sh find the config.
#   tb_pgbackrest ARGS   pgbackrest --stanza=STANZA ARGS, as postgres
#   tb_backup TYPE       a backup (full, diff, incr)
#   tb_info_file FILE    `pgbackrest info --output=json` into FILE
#
# Sets TB_DIR (config, repo), TB_REPO, TB_STANZA, TB_CONF.

tb_setup() {
	TB_STANZA=${1:-cpatest}
	TB_DIR=$(tl_tmpdir) || return 1
	TB_REPO=$TB_DIR/repo
	TB_CONF=$TB_DIR/pgbackrest.conf
	install -d -m 0750 -o postgres -g postgres "$TB_REPO" "$TB_DIR/lock" "$TB_DIR/log" || return 1
	cat >"$TB_CONF" <<-EOF
		[global]
		repo1-path=$TB_REPO
		repo1-retention-full=2
		lock-path=$TB_DIR/lock
		log-path=$TB_DIR/log
		log-level-console=warn
		log-level-file=off
		compress-type=lz4
		start-fast=y

		[$TB_STANZA]
		pg1-path=$TL_PGDATA
		pg1-port=$TL_PGPORT
		pg1-socket-path=$TL_PGSOCK
	EOF
	chown postgres:postgres "$TB_CONF"
	chmod 0640 "$TB_CONF"
	PGBACKREST_CONFIG=$TB_CONF
	export PGBACKREST_CONFIG TB_DIR TB_REPO TB_STANZA TB_CONF
	cat >>"$TL_PGDATA/postgresql.conf" <<-EOF
		archive_mode = on
		archive_command = 'pgbackrest --config=$TB_CONF --stanza=$TB_STANZA archive-push %p'
		archive_timeout = 60
	EOF
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_PGDATA" -m fast -w stop >/dev/null || return 1
	tl_pg_restart || { cat "$TL_PGDIR/server.log" >&2; return 1; }
	tb_pgbackrest stanza-create || return 1
	tb_pgbackrest check || return 1
}

tb_pgbackrest() {
	runuser -u postgres -- env PGBACKREST_CONFIG="$TB_CONF" pgbackrest --stanza="$TB_STANZA" "$@"
}

tb_backup() {
	tb_pgbackrest --type="$1" backup
}

tb_info_file() {
	tb_pgbackrest --output=json info >"$1"
}
