#!/bin/bash
# redis-cleanup.sh: the migration plan's last step. Once the application runs
# on PostgreSQL and is stable, remove the old LangGraph checkpoint keys from
# Redis, without blocking the server.
#
#   provision/redis-cleanup.sh [options]
#
#   --pattern GLOB        keys to remove, a SCAN MATCH pattern (default: checkpoint:*)
#   --dry-run             count the matching keys and their memory; delete nothing
#   --yes                 do not ask for confirmation (needed when stdin is not a terminal)
#   --count N             SCAN COUNT hint: keys looked at per SCAN call (default 1000)
#   --batch N             keys per UNLINK command (default 500)
#   --list                also print the name of every key deleted (or, with --dry-run, matched)
#   -h, --host HOST       Redis host (default 127.0.0.1)
#   -p, --port PORT       Redis port (default 6379)
#   -s, --socket PATH     Redis unix socket (instead of host and port)
#   -n, --db N            database number (default 0)
#   --user NAME           ACL user (Redis 6+; default: the default user)
#   --password-file FILE  the Redis password, first line of FILE (mode 0600/0640)
#   --tls                 connect with TLS; with --cacert FILE, --cacertdir DIR,
#                         --cert FILE, --key FILE, --sni NAME, --insecure
#   --help                this text
#
# How it works. Keys are walked with SCAN (a cursor, COUNT keys per call), never
# KEYS, and deleted with UNLINK, which frees the memory in a background thread,
# in batches of --batch keys: the server is never blocked for long. Keys created
# while the walk runs and match the pattern may be missed (SCAN's guarantee
# covers keys present for the whole walk); run the script again to catch them.
# The real run counts the matching keys first, asks (or needs --yes), deletes,
# and counts again to report what is left. Running it twice is safe: the
# second run finds nothing and says so.
#
# The password. It comes from --password-file or from REDISCLI_AUTH in this
# script's environment, and it never goes on a command line or into the
# environment of a process this script starts:
#   - `redis-cli -a` would put it in every process listing;
#   - exporting REDISCLI_AUTH to redis-cli would put it in an inherited
#     environment (readable in /proc/PID/environ), which our rules forbid; a
#     REDISCLI_AUTH we were given is read once and removed from the
#     environment our children get;
#   - `redis-cli --askpass` reads the password from stdin, and stdin is where
#     this script sends the commands (and it does not work with --user).
# So every redis-cli session gets its commands on stdin, and the first of them
# is AUTH, written by a shell builtin (printf) into the pipe: the password
# exists only in this shell's memory and in the pipe. The server sees it as an
# AUTH command, which Redis never writes to its log or to MONITOR.
# Key names are passed the same way, quoted for redis-cli's parser. A key name
# that contains a newline cannot come back through redis-cli's raw output in one
# piece; such keys are reported as matched but not deleted.
#
# Exit codes:
#   0   done: keys deleted, dry run counted, or nothing matched
#   1   the operator answered no at the prompt; nothing was deleted
#   64  usage error (unknown option, bad number, no --yes without a terminal)
#   66  the password file is missing or unreadable
#   69  Redis cannot be reached
#   70  a Redis command failed part-way (what was deleted is reported; rerun to finish)
#   77  authentication failed (wrong or missing password)
#   78  the password file is unsafe (readable by others) or empty
set -euo pipefail

readonly EX_DECLINED=1 EX_USAGE=64 EX_NOINPUT=66 EX_UNAVAILABLE=69 EX_SOFTWARE=70
readonly EX_NOPERM=77 EX_CONFIG=78

PROG=redis-cleanup.sh
PATTERN='checkpoint:*'
DRY_RUN=0
ASSUME_YES=0
SCAN_COUNT=1000
BATCH=500
LIST=0
HOST=127.0.0.1
PORT=6379
SOCKET=
DB=0
ACL_USER=
PASSWORD_FILE=
TLS_ARGS=()
PASSWORD=
HAVE_PASSWORD=0
WORKDIR=

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
	local code=$1
	shift
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit "$code"
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

usage_error() {
	printf '%s: %s (see --help)\n' "$PROG" "$*" >&2
	exit "$EX_USAGE"
}

need_value() {
	if [ "$#" -lt 2 ] || [ -z "$2" ]; then
		usage_error "$1 needs a value"
	fi
}

positive_int() {
	[[ $2 =~ ^[1-9][0-9]{0,8}$ ]] || usage_error "$1 must be a positive integer, not '$2'"
}

parse_args() {
	while [ "$#" -gt 0 ]; do
		case $1 in
		--pattern) need_value "$@"; PATTERN=$2; shift ;;
		--dry-run) DRY_RUN=1 ;;
		--yes | -y) ASSUME_YES=1 ;;
		--count) need_value "$@"; positive_int "$1" "$2"; SCAN_COUNT=$2; shift ;;
		--batch) need_value "$@"; positive_int "$1" "$2"; BATCH=$2; shift ;;
		--list) LIST=1 ;;
		-h | --host) need_value "$@"; HOST=$2; shift ;;
		-p | --port) need_value "$@"; positive_int "$1" "$2"; PORT=$2; shift ;;
		-s | --socket) need_value "$@"; SOCKET=$2; shift ;;
		-n | --db) need_value "$@"; [[ $2 =~ ^[0-9]{1,5}$ ]] || usage_error "$1 must be a database number, not '$2'"; DB=$2; shift ;;
		--user) need_value "$@"; ACL_USER=$2; shift ;;
		--password-file) need_value "$@"; PASSWORD_FILE=$2; shift ;;
		--tls | --insecure) TLS_ARGS+=("$1") ;;
		--cacert | --cacertdir | --cert | --key | --sni) need_value "$@"; TLS_ARGS+=("$1" "$2"); shift ;;
		--help) usage; exit 0 ;;
		-a | --pass | --askpass) usage_error "$1 is not supported: a password on the command line shows in every process listing; use --password-file FILE or REDISCLI_AUTH" ;;
		*) usage_error "unknown argument '$1'" ;;
		esac
		shift
	done
	[ -n "$PATTERN" ] || usage_error "--pattern must not be empty"
	[ "$BATCH" -le 100000 ] || usage_error "--batch must be at most 100000"
}

# load_password: from --password-file (checked), else from REDISCLI_AUTH, which
# is then removed from the environment that redis-cli inherits.
load_password() {
	local mode
	if [ -n "$PASSWORD_FILE" ]; then
		if [ ! -f "$PASSWORD_FILE" ] || [ ! -r "$PASSWORD_FILE" ]; then
			die "$EX_NOINPUT" "cannot read the password file $PASSWORD_FILE; check the path and that this user may read it"
		fi
		mode=$(stat -c '%a' -- "$PASSWORD_FILE")
		if (( (8#$mode & 8#007) != 0 )); then
			die "$EX_CONFIG" "the password file $PASSWORD_FILE is open to other users (mode $mode); run: chmod 0600 $PASSWORD_FILE"
		fi
		IFS= read -r PASSWORD <"$PASSWORD_FILE" || true
		PASSWORD=${PASSWORD%$'\r'}
		[ -n "$PASSWORD" ] || die "$EX_CONFIG" "the password file $PASSWORD_FILE is empty; its first line must be the password"
		HAVE_PASSWORD=1
	elif [ -n "${REDISCLI_AUTH:-}" ]; then
		PASSWORD=$REDISCLI_AUTH
		HAVE_PASSWORD=1
	fi
	unset REDISCLI_AUTH
}

# quote_to VAR ARG: sets VAR to ARG quoted as one argument for redis-cli's
# command parser (no subshell: it runs once per key).
quote_to() {
	local s=$2
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\r'/\\r}
	printf -v "$1" '"%s"' "$s"
}

target() {
	if [ -n "$SOCKET" ]; then
		printf '%s db %s' "$SOCKET" "$DB"
	else
		printf '%s:%s db %s' "$HOST" "$PORT" "$DB"
	fi
}

# redis_session OUT: runs the commands read from stdin in one redis-cli
# session, AUTH first when there is a password, and leaves the raw replies
# of those commands in the file OUT (AUTH's reply checked and removed).
redis_session() {
	local out=$1 err=$WORKDIR/stderr raw=$WORKDIR/raw first
	local cli=(redis-cli --raw -n "$DB" "${TLS_ARGS[@]}")
	if [ -n "$SOCKET" ]; then
		cli+=(-s "$SOCKET")
	else
		cli+=(-h "$HOST" -p "$PORT")
	fi
	{
		if [ "$HAVE_PASSWORD" -eq 1 ]; then
			local q_user q_password
			quote_to q_password "$PASSWORD"
			if [ -n "$ACL_USER" ]; then
				quote_to q_user "$ACL_USER"
				printf 'AUTH %s %s\n' "$q_user" "$q_password"
			else
				printf 'AUTH %s\n' "$q_password"
			fi
		fi
		cat
	} | "${cli[@]}" >"$raw" 2>"$err" || true
	if grep -q -e 'Could not connect' -e 'Connection refused' -e 'SSL' -e 'TLS' "$err" ||
		{ [ ! -s "$raw" ] && [ -s "$err" ]; }; then
		die "$EX_UNAVAILABLE" "cannot reach Redis at $(target): $(head -n 1 "$err"); check the host, port and TLS options, and that redis-server runs"
	fi
	if [ "$HAVE_PASSWORD" -eq 1 ]; then
		first=$(head -n 1 "$raw")
		if [ "$first" != OK ]; then
			die "$EX_NOPERM" "Redis at $(target) refused the password ($first); check --password-file or REDISCLI_AUTH"
		fi
		tail -n +2 "$raw" >"$out"
	else
		cp "$raw" "$out"
	fi
	if grep -q '^NOAUTH' "$out"; then
		die "$EX_NOPERM" "Redis at $(target) requires a password; give --password-file FILE or set REDISCLI_AUTH"
	fi
}

check_connection() {
	local out=$WORKDIR/ping
	printf 'PING\n' | redis_session "$out"
	[ "$(cat "$out")" = PONG ] || die "$EX_SOFTWARE" "PING to Redis at $(target) answered: $(head -n 1 "$out")"
}

# scan_page CURSOR KEYS_FILE: one SCAN call; prints the next cursor and writes
# the keys it returned to KEYS_FILE.
scan_page() {
	local cursor=$1 keys=$2 out=$WORKDIR/scan next q_pattern
	quote_to q_pattern "$PATTERN"
	printf 'SCAN %s MATCH %s COUNT %s\n' "$cursor" "$q_pattern" "$SCAN_COUNT" | redis_session "$out"
	next=$(head -n 1 "$out")
	[[ $next =~ ^[0-9]+$ ]] || die "$EX_SOFTWARE" "SCAN failed: $(head -n 1 "$out")"
	tail -n +2 "$out" >"$keys"
	printf '%s\n' "$next"
}

# collect_matching FILE: the names of all matching keys, once each, into FILE.
collect_matching() {
	local all=$1 cursor=0 page=$WORKDIR/page
	: >"$all.unsorted"
	while :; do
		cursor=$(scan_page "$cursor" "$page")
		cat "$page" >>"$all.unsorted"
		[ "$cursor" != 0 ] || break
	done
	LC_ALL=C sort -u "$all.unsorted" | sed '/^$/d' >"$all"
	rm -f "$all.unsorted"
}

# commands_for VERB FILE: one VERB line per batch of keys of FILE.
commands_for() {
	local verb=$1 file=$2 n=0 line=$1 key q
	while IFS= read -r key; do
		quote_to q "$key"
		line+=" $q"
		n=$((n + 1))
		if [ "$n" -ge "$BATCH" ]; then
			printf '%s\n' "$line"
			line=$verb n=0
		fi
	done <"$file"
	if [ "$n" -gt 0 ]; then
		printf '%s\n' "$line"
	fi
}

# memory_of FILE: the summed MEMORY USAGE of the keys in FILE (a key gone
# meanwhile counts 0).
memory_of() {
	local file=$1 out=$WORKDIR/memory total=0 v n=0 expected chunk=$WORKDIR/chunk part key q
	expected=$(wc -l <"$file")
	[ "$expected" -gt 0 ] || { echo 0; return; }
	# One MEMORY USAGE per key, sent in sessions of --batch commands.
	split -l "$BATCH" -d -a 6 "$file" "$chunk."
	for part in "$chunk".*; do
		while IFS= read -r key; do
			quote_to q "$key"
			printf 'MEMORY USAGE %s\n' "$q"
		done <"$part" | redis_session "$out"
		while IFS= read -r v; do
			n=$((n + 1))
			[ -z "$v" ] && continue
			[[ $v =~ ^[0-9]+$ ]] || die "$EX_SOFTWARE" "MEMORY USAGE failed: $v"
			total=$((total + v))
		done <"$out"
		rm -f -- "$part"
	done
	[ "$n" -eq "$expected" ] || die "$EX_SOFTWARE" "MEMORY USAGE gave $n answers for $expected keys"
	echo "$total"
}

human_bytes() {
	awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u, " "); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ } printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'
}

run_dry() {
	local keys=$WORKDIR/keys count bytes
	collect_matching "$keys"
	count=$(wc -l <"$keys")
	if [ "$LIST" -eq 1 ]; then
		cat "$keys"
	fi
	if [ "$count" -eq 0 ]; then
		say "dry run: no keys match '$PATTERN' on $(target); nothing would be deleted"
		return 0
	fi
	bytes=$(memory_of "$keys")
	say "dry run: $count keys match '$PATTERN' on $(target), using $bytes bytes ($(human_bytes "$bytes")) by MEMORY USAGE; nothing was deleted"
}

# confirm COUNT: asks on the terminal, unless --yes.
confirm() {
	local count=$1 answer
	[ "$ASSUME_YES" -eq 0 ] || return 0
	if [ ! -t 0 ]; then
		die "$EX_USAGE" "$count keys match '$PATTERN' on $(target); stdin is not a terminal, so nothing was deleted: rerun with --yes to delete them, or --dry-run to count"
	fi
	printf '%s: delete %s keys matching %s on %s? [y/N] ' "$PROG" "$count" "'$PATTERN'" "$(target)"
	IFS= read -r answer || answer=
	case $answer in
	y | Y | yes | YES) return 0 ;;
	esac
	say "not confirmed; nothing was deleted"
	exit "$EX_DECLINED"
}

# delete_page KEYS_FILE: UNLINK the keys of one SCAN page; prints how many Redis removed.
delete_page() {
	local keys=$1 out=$WORKDIR/unlink v total=0 n=0 expected
	[ -s "$keys" ] || { echo 0; return; }
	expected=$(( ($(wc -l <"$keys") + BATCH - 1) / BATCH ))
	commands_for UNLINK "$keys" | redis_session "$out"
	while IFS= read -r v; do
		n=$((n + 1))
		[[ $v =~ ^[0-9]+$ ]] || die "$EX_SOFTWARE" "UNLINK failed after $DELETED keys were deleted: $v; rerun to finish"
		total=$((total + v))
	done <"$out"
	[ "$n" -eq "$expected" ] || die "$EX_SOFTWARE" "UNLINK gave $n answers for $expected batches after $DELETED keys were deleted; rerun to finish"
	echo "$total"
}

run_delete() {
	local keys=$WORKDIR/keys count cursor=0 page=$WORKDIR/page removed remaining
	collect_matching "$keys"
	count=$(wc -l <"$keys")
	if [ "$count" -eq 0 ]; then
		say "no keys match '$PATTERN' on $(target); nothing to delete"
		return 0
	fi
	confirm "$count"
	say "deleting $count keys matching '$PATTERN' on $(target) (SCAN COUNT $SCAN_COUNT, UNLINK batches of $BATCH)"
	DELETED=0
	while :; do
		cursor=$(scan_page "$cursor" "$page")
		sed -i '/^$/d' "$page"
		removed=$(delete_page "$page")
		if [ "$removed" -gt 0 ]; then
			DELETED=$((DELETED + removed))
			say "unlinked $removed keys ($DELETED so far)"
			if [ "$LIST" -eq 1 ]; then
				cat "$page"
			fi
		fi
		[ "$cursor" != 0 ] || break
	done
	collect_matching "$keys"
	remaining=$(wc -l <"$keys")
	say "deleted $DELETED keys matching '$PATTERN' on $(target); $remaining matching keys remain"
	if [ "$remaining" -gt 0 ]; then
		say "keys created during the walk, or names redis-cli cannot return whole (a newline in the name), remain; rerun to retry, --list shows them with --dry-run"
	fi
}

cleanup_workdir() {
	[ -z "$WORKDIR" ] || rm -rf -- "$WORKDIR"
}

main() {
	parse_args "$@"
	command -v redis-cli >/dev/null 2>&1 || die "$EX_UNAVAILABLE" "redis-cli is not installed; install the redis-tools package"
	load_password
	WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/redis-cleanup.XXXXXX")
	trap cleanup_workdir EXIT
	check_connection
	if [ "$DRY_RUN" -eq 1 ]; then
		run_dry
	else
		run_delete
	fi
}

main "$@"
