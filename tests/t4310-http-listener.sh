#!/bin/bash
# t4310: the HTTP listener of `run` (service.http_listen) and the service
# following the leader, on a real leader and a real streaming standby of this
# machine (no Patroni: the test promotes the standby itself).
#
# Two agents, as on two nodes of a cluster: A watches the leader's node, B
# the standby's node, and both reach the database through the multi-host URI
# (target_session_attrs=read-write). The endpoints' answers on the leader,
# the replica, a lagging replica (replay paused while the leader writes) and
# a node whose PostgreSQL is down; bad requests (400, 404, 405) that never
# crash it; a bounded load test from loopback with the agent's anonymous
# memory measured before and after; then a failover: the leader stopped, the
# standby promoted, and agent B following it without a restart (STATUS=, the
# endpoints, the watchdog fed throughout).
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/standby.sh
. "$(dirname "$0")/lib/standby.sh"

LISTEN=$TL_ROOT/tests/tools/notify-listen
LOAD=$TL_ROOT/tests/tools/http-load.py

suite_setup() {
	make -s -C "$TL_ROOT" tests/tools/notify-listen >/dev/null || return 1
	tl_pg_start || return 1
	tl_sql "GRANT pg_read_all_stats TO $TL_APP_ROLE" >/dev/null || return 1
	dir=$(tl_tmpdir) || return 1
	tl_standby_start standby1 || return 1
	tl_standby_wait_streaming 30 || { tl_log "the standby never streamed"; return 1; }
	CLUSTER_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT,127.0.0.1:$TL_STANDBY_PORT/$TL_APP_DB?target_session_attrs=read-write"
	PORT_A=$(tl_free_port) || return 1
	PORT_B=$(tl_free_port) || return 1
	while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(tl_free_port) || return 1; done
	start_agent a "$(node_uri "$TL_PGPORT")" "$PORT_A" || return 1
	start_agent b "$(node_uri "$TL_STANDBY_PORT")" "$PORT_B" || return 1
	wait_until 300 both_ready ||
		{ tl_log "the agents were not ready: $(tail -n 5 "$dir"/agent-*.log)"; return 1; }
}

suite_teardown() {
	local pid
	for pid in "${AGENT_PIDS[@]}" "${LISTEN_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	return 0
}

both_ready() {
	[ "$(code "$PORT_A" /ready)" = 200 ] && [ "$(code "$PORT_B" /ready)" = 200 ]
}

# wait_code TENTHS PORT PATH WANT: polls until PATH answers WANT.
wait_code() {
	local i
	for i in $(seq 1 "$1"); do
		[ "$(code "$2" "$3")" = "$4" ] && return 0
		sleep 0.1
	done
	return 1
}

node_uri() {
	printf 'postgresql://%s@127.0.0.1:%s/%s\n' "$TL_APP_ROLE" "$1" "$TL_APP_DB"
}

AGENT_PIDS=()
LISTEN_PIDS=()

# start_agent NAME NODE_URI PORT: the service, cycling every second, with its notify socket.
start_agent() {
	local name=$1 conf=$dir/$1.conf
	cat >"$conf" <<-CONF
		database: { uri = "$CLUSTER_URI"; node_uri = "$2"; password_file = "$TL_PASSWORD_FILE";
		            connect_timeout = 2; statement_timeout = 3000; application_name = "cpa-t4310-$name"; };
		service: { state_file = "$dir/$name.state"; data_directory = "$TL_PGDATA"; startup_timeout = 60;
		           http_listen = "127.0.0.1:$3"; };
	CONF
	"$LISTEN" "$dir/$name.sock" >"$dir/notify-$name.log" &
	LISTEN_PIDS+=("$!")
	wait_until 50 "[ -S '$dir/$name.sock' ]" || return 1
	env NOTIFY_SOCKET="$dir/$name.sock" WATCHDOG_USEC=2000000 "$TL_AGENT" -c "$conf" run --interval-ms 1000 \
		2>>"$dir/agent-$name.log" &
	AGENT_PIDS+=("$!")
	eval "PID_${name^^}=$!"
}

wait_until() {
	local i
	for i in $(seq 1 "$1"); do
		eval "$2" && return 0
		sleep 0.1
	done
	return 1
}

# code PORT PATH [curl args]: the status code of a request; the body lands in $dir/body.
code() {
	local port=$1 path=$2
	shift 2
	curl -s -o "$dir/body" -w '%{http_code}' --max-time 10 "$@" "http://127.0.0.1:$port$path"
}

body() {
	cat "$dir/body"
}

rss_anon_kb() {
	awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"
}

test_01_leader_node_endpoints() {
	assertEquals "/health" 200 "$(code "$PORT_A" /health)"
	assertContains "the role in the body" "$(body)" '"role":"primary"'
	assertEquals "/primary" 200 "$(code "$PORT_A" /primary)"
	assertEquals "/leader (Patroni's name)" 200 "$(code "$PORT_A" /leader)"
	assertEquals "/replica on the leader" 503 "$(code "$PORT_A" /replica)"
	assertEquals "/ready" 200 "$(code "$PORT_A" /ready)"
	assertContains "$(body)" '"ready":true'
	assertEquals "/metrics" 200 "$(code "$PORT_A" /metrics)"
	assertContains "the Prometheus text" "$(body)" 'checkpoint_agent_replication_lag_bytes{replica="standby1"}'
	assertContains "the content type" "$(curl -s -I "http://127.0.0.1:$PORT_A/metrics")" "text/plain; version=0.0.4"
}

test_02_replica_node_endpoints() {
	assertEquals "/health" 200 "$(code "$PORT_B" /health)"
	assertContains "the role in the body" "$(body)" '"state":"running","role":"replica"'
	assertEquals "/primary on the replica" 503 "$(code "$PORT_B" /primary)"
	assertEquals "/replica" 200 "$(code "$PORT_B" /replica)"
	assertContains "$(body)" '"replication_state":"streaming"'
	assertEquals "/replica?lag=1MB" 200 "$(code "$PORT_B" '/replica?lag=1MB')"
	assertEquals "/ready: the database (the leader) is writable" 200 "$(code "$PORT_B" /ready)"
	assertEquals "/metrics" 200 "$(code "$PORT_B" /metrics)"
	assertContains "the replica's own figures" "$(body)" "checkpoint_agent_replication_streaming 1"
}

test_03_a_lagging_replica_fails_replica_with_lag() {
	tl_standby_sql "SELECT pg_wal_replay_pause()" >/dev/null
	tl_sql "CREATE TABLE lag_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) AS g" >/dev/null
	# The node state is cached for a second.
	wait_code 50 "$PORT_B" '/replica?lag=1MB' 503
	assertEquals "/replica?lag=1MB while replay is paused" 503 "$(code "$PORT_B" '/replica?lag=1MB')"
	assertContains "$(body)" '"replay_paused":true'
	assertEquals "/replica?lag=100MB" 200 "$(code "$PORT_B" '/replica?lag=100MB')"
	assertEquals "/replica?lag=104857600 (bytes)" 200 "$(code "$PORT_B" '/replica?lag=104857600')"
	assertEquals "/replica without lag: still a streaming replica" 200 "$(code "$PORT_B" /replica)"
	tl_standby_sql "SELECT pg_wal_replay_resume()" >/dev/null
	tl_sql "DROP TABLE lag_filler" >/dev/null
	wait_code 100 "$PORT_B" '/replica?lag=1MB' 200
	assertEquals "/replica?lag=1MB after the replay caught up" 200 "$(code "$PORT_B" '/replica?lag=1MB')"
}

test_04_bad_requests_get_400_404_405() {
	local long
	assertEquals "POST" 405 "$(code "$PORT_A" /ready -X POST -d x=1)"
	assertContains "the Allow header" "$(curl -s -D - -o /dev/null -X DELETE "http://127.0.0.1:$PORT_A/health")" \
		"Allow: GET, HEAD, OPTIONS"
	assertEquals "an unknown path" 404 "$(code "$PORT_A" /nope)"
	assertEquals "lag=abc" 400 "$(code "$PORT_B" '/replica?lag=abc')"
	assertEquals "lag=-1" 400 "$(code "$PORT_B" '/replica?lag=-1')"
	assertEquals "lag=5 parsecs" 400 "$(code "$PORT_B" '/replica?lag=5pc')"
	assertEquals "an unknown parameter" 400 "$(code "$PORT_A" '/health?verbose=1')"
	assertEquals "a GET with a body" 400 "$(code "$PORT_A" /ready -X GET --data-binary hello)"
	assertEquals "HEAD" 200 "$(code "$PORT_A" /primary -I)"
	assertEquals "OPTIONS, as HAProxy's httpchk sends it" 200 "$(code "$PORT_A" /primary -X OPTIONS)"
	assertEquals "OPTIONS has no body" "" "$(body)"
	long=$(code "$PORT_A" "/$(head -c 20000 /dev/zero | tr '\0' a)")
	assertTrue "a 20 kB URL is refused ($long)" "[ '$long' -ge 400 ] && [ '$long' -lt 500 ]"
	printf '\x00\xff garbage\r\n\r\n' | timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/$PORT_A" 2>/dev/null
	assertTrue "agent A still runs" "kill -0 $PID_A"
	assertEquals "and answers" 200 "$(code "$PORT_A" /health)"
}

test_05_a_node_whose_postgresql_is_down() {
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_STANDBY_DATA" -m immediate -w stop >/dev/null 2>&1
	wait_code 50 "$PORT_B" /health 503
	assertEquals "/health" 503 "$(code "$PORT_B" /health)"
	assertContains "$(body)" '"state":"down"'
	assertEquals "/replica" 503 "$(code "$PORT_B" /replica)"
	assertEquals "/primary" 503 "$(code "$PORT_B" /primary)"
	assertEquals "/ready: the database is the leader, still writable" 200 "$(code "$PORT_B" /ready)"
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_STANDBY_DATA" -o "-p $TL_STANDBY_PORT" \
		-l "$TL_STANDBY_DIR/server.log" -w -t 30 start >/dev/null 2>&1 || fail "the standby did not start again"
	tl_standby_wait_streaming 30 || fail "the standby did not stream again"
	wait_code 50 "$PORT_B" /replica 200
	assertEquals "/replica once it is back" 200 "$(code "$PORT_B" /replica)"
}

test_06_load_test_memory_stays_flat() {
	local before after out
	# Warm-up: the allocator's arenas and libpq's buffers reach their size.
	python3 "$LOAD" 127.0.0.1 "$PORT_A" 10 1000 4 >/dev/null
	before=$(rss_anon_kb "$PID_A")
	out=$(python3 "$LOAD" 127.0.0.1 "$PORT_A" 30 10000 8)
	assertEquals "load test: every request got an expected answer: $out" 0 $?
	after=$(rss_anon_kb "$PID_A")
	tl_log "load test: $out; RssAnon ${before} kB before, ${after} kB after"
	assertTrue "agent A survived the load" "kill -0 $PID_A"
	assertTrue "RssAnon grew by at most 256 kB (${before} -> ${after} kB)" "[ $((after - before)) -le 256 ]"
	assertEquals "and still answers" 200 "$(code "$PORT_A" /ready)"
}

# gaps LOG: the longest time between two WATCHDOG=1 messages, in ms.
longest_watchdog_gap() {
	awk '$2 == "WATCHDOG=1" { if (last != "") { g = $1 - last; if (g > max) max = g } last = $1 } END { print max + 0 }' "$1"
}

b_follows() {
	[ "$(code "$PORT_B" /ready)" = 200 ] && grep -q 'STATUS=leader moved' "$dir/notify-b.log"
}

test_07_the_service_follows_a_failover_without_a_restart() {
	local start ready_s
	tl_pg_stop
	start=$(date +%s.%N)
	sleep 2
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_STANDBY_DATA" -w promote >/dev/null 2>&1 || fail "promote"
	wait_until 300 b_follows
	ready_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	tl_log "agent B ready on the new leader ${ready_s}s after the old one stopped (2 s of which before the promotion)"
	assertContains "STATUS= says the leader moved" "$(grep 'STATUS=leader moved' "$dir/notify-b.log")" \
		"STATUS=leader moved from 127.0.0.1:$TL_PGPORT to 127.0.0.1:$TL_STANDBY_PORT; "
	assertContains "the log says it too" "$(cat "$dir/agent-b.log")" "the leader moved: from 127.0.0.1:$TL_PGPORT"
	assertTrue "agent B never exited" "kill -0 $PID_B"
	assertEquals "/ready on B" 200 "$(code "$PORT_B" /ready)"
	assertEquals "/primary on B: its node leads now" 200 "$(code "$PORT_B" /primary)"
	assertTrue "the watchdog was fed throughout: longest gap $(longest_watchdog_gap "$dir/notify-b.log") ms (< 2000)" \
		"[ $(longest_watchdog_gap "$dir/notify-b.log") -lt 2000 ]"
	assertEquals "READY=1 was sent once (no restart)" 1 "$(grep -c '^[0-9]* READY=1$' "$dir/notify-b.log")"
}

tl_run
