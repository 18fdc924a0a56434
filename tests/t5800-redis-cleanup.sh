#!/bin/bash
# t5800-redis-cleanup.sh: provision/redis-cleanup.sh against a real
# redis-server on a free loopback port, in a temporary folder, with
# requirepass set from a file through its redis.conf (never a command line).
# Each test loads 5000 checkpoint:* keys (strings and hashes) and 1000 others,
# some of which look like checkpoints without matching the pattern.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

CLEANUP=$TL_ROOT/provision/redis-cleanup.sh
N_CHECKPOINT=5000
N_OTHER=1000

suite_setup() {
	local attempt
	command -v redis-server >/dev/null || { tl_log "redis-server is missing; run tests/install-deps.sh"; return 1; }
	RDIR=$(tl_tmpdir) || return 1
	chmod 0700 "$RDIR"
	PWFILE=$RDIR/redis-password
	(umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$PWFILE")
	PASSWORD=$(cat "$PWFILE")
	for attempt in 1 2 3 4 5; do
		tl_log "starting redis-server (attempt $attempt)"
		RPORT=$(tl_free_port) || return 1
		(umask 077 && cat >"$RDIR/redis.conf" <<-EOF
			port $RPORT
			bind 127.0.0.1
			dir $RDIR
			daemonize no
			save ""
			appendonly no
			logfile $RDIR/redis.log
			requirepass "$PASSWORD"
		EOF
		)
		redis-server "$RDIR/redis.conf" &
		RPID=$!
		if wait_for_redis; then
			return 0
		fi
		kill "$RPID" 2>/dev/null
		wait "$RPID" 2>/dev/null
		RPID=
	done
	tl_log "redis-server would not start"
	cat "$RDIR/redis.log" >&2
	return 1
}

suite_teardown() {
	if [ -n "${RPID:-}" ]; then
		kill "$RPID" 2>/dev/null
		wait "$RPID" 2>/dev/null
	fi
	stop_monitor
}

wait_for_redis() {
	local i
	for i in $(seq 1 50); do
		kill -0 "$RPID" 2>/dev/null || return 1
		[ "$(printf 'PING\n' | rcli)" = PONG ] && return 0
		sleep 0.1
	done
	return 1
}

# rcli: the test's own redis-cli session: commands on stdin, AUTH first
# (written by printf, a builtin, so the password is on no command line).
rcli() {
	local out
	out=$({ printf 'AUTH %s\n' "$PASSWORD"; cat; } | redis-cli -p "$RPORT" --raw 2>&1)
	printf '%s\n' "$out" | tail -n +2
}

# count PATTERN: matching keys, counted on the server (the test may use KEYS;
# the script under test may not, and commandstats are reset before it runs).
count() {
	printf 'EVAL "return #redis.call(%s, ARGV[1])" 0 %s\n' "'KEYS'" "\"$1\"" | rcli
}

memory_sum() {
	printf 'EVAL "%s" 0 %s\n' \
		"local t = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do t = t + redis.call('MEMORY', 'USAGE', k) end return t" \
		"\"$1\"" | rcli
}

load_keys() {
	local i
	{
		echo FLUSHALL
		for i in $(seq 1 "$N_CHECKPOINT"); do
			if [ $((i % 2)) -eq 0 ]; then
				printf 'SET checkpoint:thread-%s:%s "{\\"v\\":4,\\"step\\":%s}"\n' "$((i % 97))" "$i" "$i"
			else
				printf 'HSET checkpoint:thread-%s:%s checkpoint blob%s metadata m%s\n' "$((i % 97))" "$i" "$i" "$i"
			fi
		done
		for i in $(seq 1 $((N_OTHER - 3))); do
			printf 'SET other:%s value%s\n' "$i" "$i"
		done
		# Near misses: none matches checkpoint:*.
		echo 'SET checkpoints:index 1'
		echo 'SET app:checkpoint:1 1'
		echo 'SET Checkpoint:1 1'
	} | rcli >/dev/null
	assertEquals "keys loaded" $((N_CHECKPOINT + N_OTHER)) "$(printf 'DBSIZE\n' | rcli)"
	printf 'CONFIG RESETSTAT\n' | rcli >/dev/null
}

# cleanup ARGS...: runs the script (stdin not a terminal); OUT, ERR, RC.
cleanup() {
	local out err
	out=$(mktemp) err=$(mktemp)
	"$CLEANUP" -p "$RPORT" "$@" </dev/null >"$out" 2>"$err"
	RC=$?
	OUT=$(cat "$out") ERR=$(cat "$err")
	rm -f "$out" "$err"
}

# cmdstat NAME: how many times the server ran command NAME since the reset.
cmdstat() {
	printf 'INFO commandstats\n' | rcli | tr -d '\r' |
		sed -n "s/^cmdstat_$1:calls=\\([0-9]*\\),.*/\\1/p" | grep . || echo 0
}

test_01_dry_run_counts_keys_and_memory() {
	local bytes
	load_keys
	bytes=$(memory_sum 'checkpoint:*')
	printf 'CONFIG RESETSTAT\n' | rcli >/dev/null
	cleanup --password-file "$PWFILE" --dry-run
	assertEquals "exit code; stderr: $ERR" 0 "$RC"
	assertContains "count in: $OUT" "$OUT" " $N_CHECKPOINT keys match 'checkpoint:*'"
	assertContains "memory (server's own sum $bytes) in: $OUT" "$OUT" "using $bytes bytes"
	assertEquals "MEMORY USAGE once per key" "$N_CHECKPOINT" "$(cmdstat memory\|usage)"
}

test_02_dry_run_deletes_nothing() {
	load_keys
	cleanup --password-file "$PWFILE" --dry-run
	assertEquals "exit code; stderr: $ERR" 0 "$RC"
	assertEquals "keys left" $((N_CHECKPOINT + N_OTHER)) "$(printf 'DBSIZE\n' | rcli)"
	assertEquals "UNLINK calls" 0 "$(cmdstat unlink)"
	assertEquals "DEL calls" 0 "$(cmdstat del)"
}

test_03_refuses_without_yes_when_not_a_terminal() {
	load_keys
	cleanup --password-file "$PWFILE"
	assertEquals "exit code; stderr: $ERR" 64 "$RC"
	assertContains "$ERR" "--yes"
	assertEquals "keys left" $((N_CHECKPOINT + N_OTHER)) "$(printf 'DBSIZE\n' | rcli)"
}

test_04_deletes_exactly_the_matching_keys() {
	load_keys
	cleanup --password-file "$PWFILE" --yes
	assertEquals "exit code; stderr: $ERR" 0 "$RC"
	assertEquals "checkpoint:* keys left" 0 "$(count 'checkpoint:*')"
	assertEquals "other keys left" "$N_OTHER" "$(printf 'DBSIZE\n' | rcli)"
	assertEquals "near misses kept" 3 "$(( $(count 'checkpoints:index') + $(count 'app:checkpoint:1') + $(count 'Checkpoint:1') ))"
	assertContains "$OUT" "deleted $N_CHECKPOINT keys matching 'checkpoint:*'"
	assertContains "$OUT" "0 matching keys remain"
}

# start_monitor FILE: a redis-cli MONITOR session writing to FILE; its
# commands (AUTH, MONITOR) go through a FIFO held open until stop_monitor.
start_monitor() {
	local fifo=$RDIR/monitor.in
	rm -f "$fifo"
	mkfifo -m 0600 "$fifo"
	redis-cli -p "$RPORT" <"$fifo" >"$1" 2>&1 &
	MONITOR_PID=$!
	exec {MONITOR_FD}>"$fifo"
	printf 'AUTH %s\nMONITOR\n' "$PASSWORD" >&"$MONITOR_FD"
	sleep 0.3
}

stop_monitor() {
	[ -n "${MONITOR_PID:-}" ] || return 0
	exec {MONITOR_FD}>&-
	kill "$MONITOR_PID" 2>/dev/null
	wait "$MONITOR_PID" 2>/dev/null
	MONITOR_PID=
}

test_05_uses_scan_and_unlink_never_keys() {
	local mon=$RDIR/monitor.log
	load_keys
	start_monitor "$mon"
	cleanup --password-file "$PWFILE" --yes --count 500 --batch 200
	sleep 0.3
	stop_monitor
	assertEquals "exit code; stderr: $ERR" 0 "$RC"
	assertEquals "KEYS calls (commandstats)" 0 "$(cmdstat keys)"
	assertEquals "DEL calls (commandstats)" 0 "$(cmdstat del)"
	assertTrue "SCAN calls (commandstats)" "[ $(cmdstat scan) -ge 2 ]"
	# 5000 keys in batches of at most 200: at least 25 UNLINK commands.
	assertTrue "UNLINK calls: $(cmdstat unlink)" "[ $(cmdstat unlink) -ge 25 ]"
	assertEquals "KEYS in MONITOR" 0 "$(grep -ci '"keys"' "$mon")"
	assertTrue "UNLINK in MONITOR" "grep -qi '\"unlink\" \"checkpoint:' '$mon'"
	assertFalse "the password in MONITOR's output" "grep -qF -- '$PASSWORD' '$mon'"
}

test_06_custom_pattern() {
	load_keys
	cleanup --password-file "$PWFILE" --yes --pattern 'other:*'
	assertEquals "exit code; stderr: $ERR" 0 "$RC"
	assertEquals "other:* keys left" 0 "$(count 'other:*')"
	assertEquals "checkpoint:* keys kept" "$N_CHECKPOINT" "$(count 'checkpoint:*')"
	assertContains "$OUT" "deleted $((N_OTHER - 3)) keys matching 'other:*'"
}

test_07_wrong_password_exit_77() {
	local bad=$RDIR/wrong-password
	load_keys
	(umask 077 && echo "not-$PASSWORD" >"$bad")
	cleanup --password-file "$bad" --yes
	assertEquals "exit code; stderr: $ERR" 77 "$RC"
	assertContains "$ERR" "refused the password"
	assertNotContains "the password is not echoed" "$ERR$OUT" "$PASSWORD"
	assertEquals "keys left" $((N_CHECKPOINT + N_OTHER)) "$(printf 'DBSIZE\n' | rcli)"
}

test_08_no_password_exit_77() {
	cleanup --yes
	assertEquals "exit code; stderr: $ERR" 77 "$RC"
	assertContains "$ERR" "requires a password"
}

test_09_unreachable_exit_69() {
	local port
	port=$(tl_free_port)
	"$CLEANUP" -p "$port" --password-file "$PWFILE" --dry-run </dev/null >/dev/null 2>"$RDIR/err"
	RC=$?
	assertEquals "exit code; stderr: $(cat "$RDIR/err")" 69 "$RC"
	assertContains "$(cat "$RDIR/err")" "cannot reach Redis"
}

test_10_world_readable_password_file_refused() {
	local open=$RDIR/open-password
	cp "$PWFILE" "$open"
	chmod 0644 "$open"
	cleanup --password-file "$open" --dry-run
	assertEquals "exit code; stderr: $ERR" 78 "$RC"
	assertContains "$ERR" "chmod 0600"
}

test_11_password_on_command_line_refused() {
	cleanup -a "$PASSWORD" --dry-run
	assertEquals "exit code" 64 "$RC"
}

# sample_processes FILE PID: while PID (the script under test) runs, appends
# every process's command line, and the environment of every redis-cli, to
# FILE, sweeping /proc as fast as it can (perl, which Debian always has: a
# redis-cli session lives only milliseconds). Counts the redis-cli seen.
sample_processes() {
	perl -e '
		my ($file, $pid) = @ARGV;
		open(my $out, ">>", $file) or die "$file: $!";
		my %seen;
		sub slurp { my $f = shift; open(my $h, "<", $f) or return undef; local $/; my $s = <$h>; close $h; return $s }
		while (kill(0, $pid)) {
			for my $dir (glob("/proc/[0-9]*")) {
				my $cmd = slurp("$dir/cmdline");
				next unless defined $cmd && length $cmd;
				(my $line = $cmd) =~ s/\0/ /g;
				print $out "$line\n";
				if ($cmd =~ /^redis-cli\0/ || $cmd =~ m{/redis-cli\0}) {
					my ($p) = $dir =~ m{(\d+)$};
					$seen{$p} = 1;
					my $env = slurp("$dir/environ");
					if (defined $env) { $env =~ s/\0/\n/g; print $out "$env\n"; }
				}
			}
		}
		print $out "redis-cli processes seen: " . scalar(keys %seen) . "\n";
	' "$1" "$2"
}

# run_sampled ARGS...: a slow real run (small batches) of the script with
# ARGS, under sampling; RC and SAMPLES. With SAMPLED_WITH_REDISCLI_AUTH=1
# (a plain shell variable, so that nothing else inherits the password) the
# script gets the password as REDISCLI_AUTH.
run_sampled() {
	local samples=$RDIR/samples pid
	: >"$samples"
	load_keys
	if [ "${SAMPLED_WITH_REDISCLI_AUTH:-0}" = 1 ]; then
		REDISCLI_AUTH=$PASSWORD "$CLEANUP" -p "$RPORT" --yes --count 100 --batch 50 "$@" \
			</dev/null >"$RDIR/out" 2>"$RDIR/err" &
	else
		"$CLEANUP" -p "$RPORT" --yes --count 100 --batch 50 "$@" </dev/null >"$RDIR/out" 2>"$RDIR/err" &
	fi
	pid=$!
	sample_processes "$samples" "$pid"
	wait "$pid"
	RC=$?
	SAMPLES=$samples
}

test_12_password_never_in_process_listing() {
	run_sampled --password-file "$PWFILE"
	assertEquals "exit code; stderr: $(cat "$RDIR/err")" 0 "$RC"
	assertEquals "checkpoint:* keys left" 0 "$(count 'checkpoint:*')"
	assertTrue "redis-cli processes were sampled: $(grep 'processes seen' "$SAMPLES")" \
		"grep -qE 'redis-cli processes seen: [1-9]' '$SAMPLES'"
	assertFalse "the password in a command line or a redis-cli environment" "grep -qF -- '$PASSWORD' '$SAMPLES'"
}

test_13_rediscli_auth_not_passed_to_children() {
	# The operator's REDISCLI_AUTH is the script's own; its children get none.
	SAMPLED_WITH_REDISCLI_AUTH=1
	run_sampled
	SAMPLED_WITH_REDISCLI_AUTH=0
	assertEquals "exit code; stderr: $(cat "$RDIR/err")" 0 "$RC"
	assertEquals "checkpoint:* keys left" 0 "$(count 'checkpoint:*')"
	assertTrue "redis-cli processes were sampled: $(grep 'processes seen' "$SAMPLES")" \
		"grep -qE 'redis-cli processes seen: [1-9]' '$SAMPLES'"
	assertFalse "REDISCLI_AUTH in a redis-cli environment" "grep -q '^REDISCLI_AUTH=' '$SAMPLES'"
	assertFalse "the password in a command line or a redis-cli environment" "grep -qF -- '$PASSWORD' '$SAMPLES'"
}

test_14_rerun_finds_nothing() {
	load_keys
	cleanup --password-file "$PWFILE" --yes
	assertEquals "first run; stderr: $ERR" 0 "$RC"
	cleanup --password-file "$PWFILE" --yes
	assertEquals "second run; stderr: $ERR" 0 "$RC"
	assertContains "$OUT" "nothing to delete"
	assertEquals "other keys left" "$N_OTHER" "$(printf 'DBSIZE\n' | rcli)"
}

tl_run
