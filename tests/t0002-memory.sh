#!/bin/bash
# t0002: the agent's commands run clean under AddressSanitizer with
# UndefinedBehaviorSanitizer, and under valgrind: no error, no leak (prune,
# usage and run's TTL sweeps in their thread included).
# shellcheck source=lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	make -s -C "$TL_ROOT" agent/checkpoint-agent-asan >/dev/null || return 1
	tl_pg_start || return 1
	conf=$(tl_tmpdir)/agent.conf
	tl_agent_conf "$conf" 'sets = [ "langgraph", "langgraph-store", "agentos" ];'
	tl_sql "SET client_min_messages = warning; CREATE TABLE public.keep (a int)" >/dev/null
}

# run_asan ARGS: the command under the sanitizers; a report makes it fail.
run_asan() {
	ASAN_OPTIONS=detect_leaks=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		TL_AGENT="$TL_ROOT/agent/checkpoint-agent-asan" tl_agent "$@"
	[[ "$TL_ERR" != *"Sanitizer"* && "$TL_ERR" != *"runtime error"* ]]
}

# run_valgrind ARGS: the command under valgrind's memcheck; errors and
# definite leaks exit 99.
run_valgrind() {
	local log
	log=$(tl_tmpdir)/valgrind.log
	TL_AGENT=valgrind tl_agent --quiet --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite --log-file="$log" "$TL_ROOT/agent/checkpoint-agent" "$@"
	VG_LOG=$(cat "$log")
}

test_01_asan_migrate_status_verify() {
	run_asan -c "$conf" migrate
	assertTrue "sanitizer report in migrate: $TL_ERR" $?
	assertEquals "migrate exit: $TL_ERR" 0 "$TL_RC"
	run_asan -c "$conf" status --json
	assertTrue "sanitizer report in status: $TL_ERR" $?
	assertEquals "status exit" 0 "$TL_RC"
	run_asan -c "$conf" verify
	assertTrue "sanitizer report in verify: $TL_ERR" $?
	assertEquals "verify exit" 0 "$TL_RC"
}

test_02_asan_rollback_and_back() {
	tl_sql "INSERT INTO checkpoints VALUES ('t', '', 'c', NULL, NULL, '{}', '{}')" >/dev/null
	run_asan -c "$conf" rollback --to -1
	assertTrue "sanitizer report in rollback: $TL_ERR" $?
	assertEquals "rollback exit: $TL_ERR" 0 "$TL_RC"
	run_asan -c "$conf" migrate
	assertTrue "sanitizer report in migrate: $TL_ERR" $?
	assertEquals "migrate exit" 0 "$TL_RC"
}

test_03_asan_bad_input_paths() {
	run_asan -c /nonexistent.conf status
	assertTrue "sanitizer report: $TL_ERR" $?
	assertEquals 78 "$TL_RC"
	run_asan -c "$conf" migrate --to x
	assertTrue "sanitizer report: $TL_ERR" $?
	assertEquals 64 "$TL_RC"
}

test_04_valgrind_migrate_and_status() {
	run_valgrind -c "$conf" migrate
	assertEquals "valgrind migrate: $VG_LOG $TL_ERR" 0 "$TL_RC"
	run_valgrind -c "$conf" status
	assertEquals "valgrind status: $VG_LOG" 0 "$TL_RC"
	run_valgrind -c "$conf" verify
	assertEquals "valgrind verify: $VG_LOG" 0 "$TL_RC"
}

test_05_valgrind_check() {
	run_valgrind -c "$conf" check --format json
	assertTrue "valgrind check: $VG_LOG" "[ $TL_RC -ne 99 ]"
	assertEquals "no valgrind errors" "" "$VG_LOG"
}

test_06_asan_prune_and_usage() {
	tl_gen_threads old- 30 3 $((40 * 86400)) || fail "gen"
	tl_gen_threads new- 5 3 600 || fail "gen"
	local args
	for args in "prune --older-than 30d --dry-run" "prune --older-than 30d --strategy keep-latest --batch 7" \
		"prune --older-than 30d" "prune --thread new-000001" "usage --json" "usage" "prune --batch 0"; do
		# shellcheck disable=SC2086 # the words are separate arguments
		run_asan -c "$conf" $args
		assertTrue "sanitizer report in $args: $TL_ERR" $?
		assertNotEquals "$args ran (exit $TL_RC): $TL_ERR" 70 "$TL_RC"
	done
}

test_07_valgrind_prune_and_usage() {
	tl_gen_threads old- 20 3 $((40 * 86400)) || fail "gen"
	run_valgrind -c "$conf" prune --older-than 30d --strategy keep-latest
	assertEquals "valgrind prune keep-latest: $VG_LOG $TL_ERR" 0 "$TL_RC"
	run_valgrind -c "$conf" prune --older-than 30d
	assertEquals "valgrind prune: $VG_LOG $TL_ERR" 0 "$TL_RC"
	run_valgrind -c "$conf" usage --json
	assertEquals "valgrind usage: $VG_LOG $TL_ERR" 0 "$TL_RC"
}

test_08_asan_run_with_ttl_sweeps() {
	local dir sweep_conf
	dir=$(tl_tmpdir)
	sweep_conf=$dir/sweep.conf
	cat "$conf" >"$sweep_conf"
	cat >>"$sweep_conf" <<-CONF
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; };
		retention: { ttl = "30d"; sweep_interval = "1s"; batch = 5; };
	CONF
	tl_gen_threads old- 40 2 $((40 * 86400)) || fail "gen"
	run_asan -c "$sweep_conf" run --cycles 8 --interval-ms 300
	assertTrue "sanitizer report in run with sweeps: $TL_ERR" $?
	assertEquals "run exit: $TL_ERR" 0 "$TL_RC"
	assertEquals "the sweeps pruned the old threads" 0 \
		"$(tl_sql "SELECT count(*) FROM checkpoints WHERE thread_id LIKE 'old-%'")"
}

# The text and Prometheus reports, --only/--skip/-w/-c, status's table, the
# connection hints and the state file's fallback to the user's own.
test_09_asan_reports_options_hints_and_state_fallback() {
	local port home args
	home=$(tl_tmpdir)
	for args in "check" "check --format prometheus" "check --only disk -w 30 -c 10" "check --only disk,size" "check --skip connect,schema" \
		"status" "status --json --exit-code"; do
		# shellcheck disable=SC2086 # one option a word
		HOME=$home run_asan -c "$conf" $args
		assertTrue "sanitizer report in $args: $TL_ERR" $?
		assertTrue "$args exit: $TL_RC $TL_ERR" "[ $TL_RC -lt 64 ]"
	done
	run_asan -c "$conf" check --only disk --warning 5 -c 10
	assertTrue "sanitizer report: $TL_ERR" $?
	assertEquals "a check usage error is UNKNOWN" 3 "$TL_RC"
	port=$(tl_free_port)
	CHECKPOINT_DB_URI="postgresql://ai_agent@127.0.0.1:$port,127.0.0.1:$TL_PGPORT/x?sslmode=disable" \
		HOME=$home run_asan check
	assertTrue "sanitizer report with the fallback state and a failed connection: $TL_ERR" $?
	assertEquals "the hint came" 2 "$TL_RC"
	CHECKPOINT_DB_URI="postgresql://ai_agent@127.0.0.1:$port/x?nonsense=1" HOME=$home run_asan status
	assertTrue "sanitizer report with a bad connection string: $TL_ERR" $?
	assertEquals 78 "$TL_RC"
}

test_10_asan_run_with_the_http_listener() {
	local dir port pid i codes=""
	dir=$(tl_tmpdir)
	port=$(tl_free_port)
	cat >"$dir/http.conf" <<-CONF
		database: { uri = "$TL_DB_URI"; node_uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; http_listen = "127.0.0.1:$port"; };
	CONF
	ASAN_OPTIONS=detect_leaks=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$TL_ROOT/agent/checkpoint-agent-asan" -c "$dir/http.conf" run --interval-ms 300 2>"$dir/err" &
	pid=$!
	for i in $(seq 1 100); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ] && break
		sleep 0.2
	done
	for i in /health /ready /primary /replica '/replica?lag=1MB' '/replica?lag=x' /metrics /nope '/health?a=b'; do
		codes+="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$i") "
	done
	codes+="$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x "http://127.0.0.1:$port/ready")"
	kill -HUP "$pid"
	sleep 1
	codes+=" $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")"
	kill -TERM "$pid"
	wait "$pid"
	assertEquals "run exit under ASan: $(tail -n 30 "$dir/err")" 0 $?
	assertEquals "the answers" "200 200 200 503 503 400 200 404 400 405 200" "$codes"
	assertNotContains "sanitizer report" "$(cat "$dir/err")" "Sanitizer"
	assertNotContains "UBSan report" "$(cat "$dir/err")" "runtime error"
}

tl_run
