# shellcheck shell=bash
# Functions here are called by shunit2 and the suites, and the TL_ variables
# are read by the suites: shellcheck cannot see either.
# shellcheck disable=SC2317,SC2034
# test-lib.sh: the shared library of every suite under tests/.
#
# A suite is a numbered script (tNNNN-area-what.sh) that sources this file,
# defines test_* functions (one behaviour each), and ends with tl_run.
#
#   t1xxx  migrations        t2xxx  LangGraph clients     t3xxx  checks
#   t4xxx  service/systemd   t5xxx  provisioning          t6xxx  ansible
#   t7xxx  retention         t0xxx  build and unit tests
#
# shunit2 does not work under `set -e`, so suites run without it; every
# helper here checks its own errors and fails loudly instead.
#
# Fixtures:
#   tl_pg_start       a throwaway PostgreSQL cluster (initdb + pg_ctl, as the
#                     postgres user, on a free loopback port, in a temporary
#                     folder), with the application role and database made.
#                     It is stopped and removed by oneTimeTearDown, which
#                     shunit2 also runs when a suite dies.
#   tl_agent_conf     writes an agent config pointing at that cluster.
#
# Suites that need their own set-up or tear-down define suite_setup and
# suite_teardown; the library calls them.

TL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TL_AGENT="${TL_AGENT:-$TL_ROOT/agent/checkpoint-agent}"
tl_newest_pgbin() {
	local d newest=
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && newest=$d
	done
	printf '%s\n' "$newest"
}
TL_PGBIN="${TL_PGBIN:-$(tl_newest_pgbin)}"
TL_APP_ROLE=ai_agent
TL_APP_DB=langgraph_checkpoints
export TL_ROOT TL_AGENT TL_PGBIN TL_APP_ROLE TL_APP_DB

# Every folder and cluster a suite makes is listed here, to be removed.
TL_CLEANUP_DIRS=()
TL_CLUSTERS=()
# Functions tl_cleanup calls first, e.g. tc_cleanup (tests/lib/container.sh).
TL_CLEANUP_HOOKS=()

tl_log() { printf '# %s\n' "$*" >&2; }

# Every temporary folder of a suite lives under one root, made here (not in
# a subshell), so that tl_cleanup finds them all even when tl_tmpdir runs as
# $(tl_tmpdir).
TL_SUITE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cpa-test.XXXXXX")
chmod 0755 "$TL_SUITE_TMP"
TL_CLEANUP_DIRS+=("$TL_SUITE_TMP")

# tl_tmpdir: a new temporary folder that the postgres user can also use.
tl_tmpdir() {
	local d
	d=$(mktemp -d "$TL_SUITE_TMP/d.XXXXXX") || return 1
	chmod 0755 "$d"
	printf '%s\n' "$d"
}

tl_port_is_free() {
	[ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# tl_free_port: prints a loopback TCP port nothing listens on.
tl_free_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + (RANDOM * 7 + i) % 40000))
		if tl_port_is_free "$p"; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	return 1
}

# tl_pg_start [NAME]: start a throwaway cluster and export, for that cluster:
#   TL_PGDIR TL_PGDATA TL_PGSOCK TL_PGPORT TL_DB_URI TL_PASSWORD_FILE TL_PGPASSFILE
# The superuser is reached over the socket with peer auth (tl_psql_super);
# the application role ai_agent has a random password and reaches the
# database over 127.0.0.1 with scram-sha-256 only.
tl_pg_start() {
	local dir port
	dir=$(tl_tmpdir) || return 1
	chown postgres: "$dir"
	TL_PGDIR=$dir
	TL_PGDATA=$dir/data
	TL_PGSOCK=$dir
	runuser -u postgres -- "$TL_PGBIN/initdb" -D "$TL_PGDATA" -U postgres \
		--auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
	cat >>"$TL_PGDATA/postgresql.conf" <<-EOF
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$dir'
		fsync = off
		max_connections = ${TL_PG_MAX_CONNECTIONS:-100}
		log_min_messages = warning
		log_line_prefix = '%m [%p] %q%u@%d '
	EOF
	for _ in 1 2 3 4 5; do
		port=$(tl_free_port) || return 1
		if runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_PGDATA" -o "-p $port" \
			-l "$dir/server.log" -w -t 30 start >/dev/null 2>&1; then
			break
		fi
		port=
	done
	[ -n "$port" ] || { tl_log "PostgreSQL would not start"; cat "$dir/server.log" >&2; return 1; }
	TL_PGPORT=$port
	TL_CLUSTERS+=("$TL_PGDATA")
	export TL_PGDIR TL_PGDATA TL_PGSOCK TL_PGPORT
	tl_make_app_role || return 1
}

# tl_make_app_role: the role and database the application uses; the password
# is read by psql from a file, so it is on no command line.
tl_make_app_role() {
	TL_PASSWORD_FILE=$TL_PGDIR/app-password
	head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$TL_PASSWORD_FILE"
	chmod 0644 "$TL_PASSWORD_FILE"
	tl_psql_super -d postgres <<-EOF >/dev/null || return 1
		\\set pw \`cat $TL_PASSWORD_FILE\`
		SET password_encryption = 'scram-sha-256';
		CREATE ROLE $TL_APP_ROLE LOGIN PASSWORD :'pw';
		CREATE DATABASE $TL_APP_DB OWNER $TL_APP_ROLE;
	EOF
	chmod 0600 "$TL_PASSWORD_FILE"
	TL_PGPASSFILE=$TL_PGDIR/pgpass
	printf '127.0.0.1:%s:*:%s:%s\n' "$TL_PGPORT" "$TL_APP_ROLE" "$(cat "$TL_PASSWORD_FILE")" >"$TL_PGPASSFILE"
	chmod 0600 "$TL_PGPASSFILE"
	TL_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/$TL_APP_DB"
	export TL_PASSWORD_FILE TL_PGPASSFILE TL_DB_URI
}

# tl_pg_stop: stop the current cluster (it can be started again with tl_pg_restart).
tl_pg_stop() {
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_PGDATA" -m immediate -w stop >/dev/null 2>&1
}

tl_pg_restart() {
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_PGDATA" -o "-p $TL_PGPORT" \
		-l "$TL_PGDIR/server.log" -w -t 30 start >/dev/null 2>&1
}

# tl_psql_super [psql args]: psql as the superuser, on the test database by default.
tl_psql_super() {
	runuser -u postgres -- "$TL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
		-h "$TL_PGSOCK" -p "$TL_PGPORT" -d "$TL_APP_DB" "$@"
}

# tl_psql_app [psql args]: psql as the application role, over TCP with its password.
tl_psql_app() {
	PGPASSFILE=$TL_PGPASSFILE "$TL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
		-h 127.0.0.1 -p "$TL_PGPORT" -U "$TL_APP_ROLE" -d "$TL_APP_DB" "$@"
}

# tl_sql "QUERY": one value from the test database, as the superuser.
tl_sql() {
	tl_psql_super -c "$1"
}

# A psql session that stays open, fed through a fifo on fd 7, told apart by
# its application_name: for holding a transaction or a lock during a test.
#   tl_session_open APP [PSQL_FUNC]   PSQL_FUNC: tl_psql_app (default) or tl_psql_super
#   tl_session_sql SQL                one or more statements, ended by ';'
#   tl_session_pid                    its backend pid
#   tl_session_close                  ends it; an open transaction rolls back
tl_session_open() {
	local dir
	TL_SESSION_APP=$1
	dir=$(tl_tmpdir) || return 1
	TL_SESSION_FIFO=$dir/session.fifo
	mkfifo "$TL_SESSION_FIFO"
	"${2:-tl_psql_app}" -d "dbname=$TL_APP_DB application_name=$TL_SESSION_APP" \
		<"$TL_SESSION_FIFO" >"$dir/session.out" 2>"$dir/session.err" &
	TL_SESSION_PSQL=$!
	exec 7>"$TL_SESSION_FIFO"
}

tl_session_sql() {
	printf '%s\n' "$1" >&7
}

tl_session_pid() {
	tl_sql "SELECT pid FROM pg_stat_activity WHERE application_name = '$TL_SESSION_APP'"
}

tl_session_close() {
	[ -n "${TL_SESSION_PSQL:-}" ] || return 0
	tl_session_sql '\q'
	exec 7>&-
	wait "$TL_SESSION_PSQL" 2>/dev/null
	TL_SESSION_PSQL=
}

# tl_wait_for SECONDS SQL: polls until SQL returns t; returns 1 after SECONDS.
tl_wait_for() {
	local deadline=$((SECONDS + $1))
	while [ "$SECONDS" -lt "$deadline" ]; do
		[ "$(tl_sql "$2")" = t ] && return 0
		sleep 0.2
	done
	return 1
}

# tl_agent_conf FILE [EXTRA]: an agent config for the current cluster.
# EXTRA is libconfig text inserted into the migrations group.
tl_agent_conf() {
	local file=$1 extra=${2:-}
	cat >"$file" <<-EOF
		database:
		{
		  uri = "$TL_DB_URI";
		  password_file = "$TL_PASSWORD_FILE";
		  connect_timeout = 5;
		};
		migrations:
		{
		  $extra
		};
	EOF
}

# tl_agent ARGS...: run the agent; its stdout, stderr and exit code land in
# TL_OUT, TL_ERR and TL_RC.
tl_agent() {
	local out err
	out=$(mktemp) err=$(mktemp)
	"$TL_AGENT" "$@" >"$out" 2>"$err"
	TL_RC=$?
	TL_OUT=$(cat "$out")
	TL_ERR=$(cat "$err")
	rm -f "$out" "$err"
	return 0
}

# tl_gen_threads PREFIX THREADS STEPS AGE_SECONDS [SCHEMA]: synthetic LangGraph
# threads (tests/lib/gen-checkpoints.sql), written as the application's role:
# PREFIX000001..., STEPS checkpoints each, the newest AGE_SECONDS old.
tl_gen_threads() {
	tl_psql_app -v schema="${5:-public}" -v prefix="$1" -v threads="$2" -v steps="$3" -v age_seconds="$4" \
		-v payload=2 -f "$TL_ROOT/tests/lib/gen-checkpoints.sql" >/dev/null
}

# tl_cleanup: stop every cluster and remove every folder this suite made.
tl_cleanup() {
	local d
	for d in "${TL_CLEANUP_HOOKS[@]}"; do
		"$d" || tl_log "cleanup hook $d failed"
	done
	for d in "${TL_CLUSTERS[@]}"; do
		[ -f "$d/postmaster.pid" ] &&
			runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
	done
	TL_CLUSTERS=()
	for d in "${TL_CLEANUP_DIRS[@]}"; do
		rm -rf -- "$d"
	done
	TL_CLEANUP_DIRS=()
}

# tl_record_results: hand this suite's counts to tests/run.sh.
tl_record_results() {
	[ -n "${TL_RESULTS:-}" ] || return 0
	printf '%s %s %s\n' "$(basename "$0")" \
		"${__shunit_testsPassed:-0}" "${__shunit_testsFailed:-0}" >>"$TL_RESULTS"
}

oneTimeSetUp() {
	if declare -F suite_setup >/dev/null; then
		suite_setup || { tl_log "suite_setup failed"; exit 1; }
	fi
}

oneTimeTearDown() {
	if declare -F suite_teardown >/dev/null; then
		suite_teardown
	fi
	tl_cleanup
	tl_record_results
}

# tl_run: hand the suite's test_* functions to shunit2.
tl_run() {
	suite() {
		local f
		for f in $(declare -F | awk '{print $3}' | grep '^test_'); do
			suite_addTest "$f"
		done
	}
	# shellcheck disable=SC1091
	. shunit2
}
