#!/bin/bash
# t3001: `check` on a healthy and on an unreachable database: the exit codes,
# one line per check worst first, valid JSON, and Prometheus text that
# promtool accepts.
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	write_conf "$conf" "$TL_DB_URI" "$TL_PGDATA"
	tl_agent -c "$conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

# write_conf FILE URI DATADIR: a config with a state file and the data directory.
write_conf() {
	cat >"$1" <<-CONF
		database: { uri = "$2"; password_file = "$TL_PASSWORD_FILE"; connect_timeout = 2; statement_timeout = 2000; };
		migrations: { sets = [ "langgraph", "langgraph-store" ]; };
		service: { state_file = "$dir/state"; data_directory = "$3"; };
	CONF
}

# status_of NAME: the status word of check NAME in the text report in TL_OUT.
status_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name { print $1 }'
}

test_01_healthy_database_is_ok_with_one_line_per_check() {
	tl_agent -c "$conf" check
	assertEquals "exit code; out: $TL_OUT; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "lines: the summary, then one per check" 16 "$(printf '%s\n' "$TL_OUT" | wc -l)"
	assertEquals "the summary line" "OK - 15 checks OK |" "$(printf '%s\n' "$TL_OUT" | head -n 1 | cut -d' ' -f1-6)"
	local name
	for name in connect query writable schema pool_headroom idle_in_transaction long_transactions \
		lock_waits disk size bloat wraparound wal backup replication; do
		assertEquals "$name; out: $TL_OUT" OK "$(status_of "$name")"
	done
}

test_02_json_carries_every_check_and_its_metrics() {
	tl_agent -c "$conf" check --format json
	assertEquals "exit code: $TL_ERR" 0 "$TL_RC"
	local summary
	summary=$(printf '%s' "$TL_OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
names = [c["name"] for c in d["checks"]]
conn = [m["value"] for c in d["checks"] for m in c["metrics"] if m["name"] == "connect_seconds"]
print(d["status"], d["exit_code"], len(names), "writable" in names, len(conn) == 1 and conn[0] > 0)')
	assertEquals "status, exit code, checks, connect time" "OK 0 15 True True" "$summary"
}

test_03_prometheus_passes_promtool() {
	command -v promtool >/dev/null || { startSkipping; return; }
	tl_agent -c "$conf" check --format prometheus
	assertEquals "exit code: $TL_ERR" 0 "$TL_RC"
	local lint
	lint=$(printf '%s\n' "$TL_OUT" | promtool check metrics 2>&1)
	assertEquals "promtool check metrics says: $lint" 0 $?
	assertContains "$TL_OUT" '# TYPE checkpoint_agent_check_status gauge'
	assertContains "$TL_OUT" 'checkpoint_agent_check_status{check="writable",state="ok"} 1'
	assertContains "$TL_OUT" 'checkpoint_agent_check_status_code{check="writable"} 0'
	assertContains "$TL_OUT" 'checkpoint_agent_table_size_bytes{table="public.checkpoints"}'
	assertEquals "every metric under the prefix" "" \
		"$(printf '%s\n' "$TL_OUT" | grep -v '^#' | grep -v '^checkpoint_agent_')"
}

test_04_unreachable_database_is_critical_and_the_rest_unknown() {
	local port conf2
	port=$(tl_free_port)
	conf2=$dir/down.conf
	write_conf "$conf2" "postgresql://ai_agent@127.0.0.1:$port/langgraph_checkpoints" ""
	tl_agent -c "$conf2" check
	assertEquals "exit code; out: $TL_OUT" 2 "$TL_RC"
	assertEquals "first line: the worst" "CRITICAL - connect:" "$(printf '%s\n' "$TL_OUT" | head -n 1 | awk '{print $1, $2, $3}')"
	assertEquals "connect" CRITICAL "$(status_of connect)"
	assertEquals "query" UNKNOWN "$(status_of query)"
	assertContains "$TL_OUT" "Connection refused"
}

test_05_wrong_password_is_critical_where_pg_isready_says_ok() {
	local pwfile conf2
	pwfile=$dir/wrong-password
	printf 'not-the-password\n' >"$pwfile"
	chmod 0600 "$pwfile"
	conf2=$dir/wrong.conf
	write_conf "$conf2" "$TL_DB_URI" "$TL_PGDATA"
	sed -i "s|password_file = \"[^\"]*\"|password_file = \"$pwfile\"|" "$conf2"
	"$TL_PGBIN/pg_isready" -q -h 127.0.0.1 -p "$TL_PGPORT"
	assertEquals "pg_isready answers OK" 0 $?
	tl_agent -c "$conf2" check
	assertEquals "exit code; out: $TL_OUT" 2 "$TL_RC"
	assertEquals "connect" CRITICAL "$(status_of connect)"
	assertContains "$TL_OUT" "password authentication failed"
}

test_06_missing_role_is_critical() {
	local conf2
	conf2=$dir/norole.conf
	write_conf "$conf2" "postgresql://no_such_role@127.0.0.1:$TL_PGPORT/langgraph_checkpoints" "$TL_PGDATA"
	tl_agent -c "$conf2" check
	assertEquals "exit code; out: $TL_OUT" 2 "$TL_RC"
	assertEquals "connect" CRITICAL "$(status_of connect)"
}

# A Nagios plugin's usage error is UNKNOWN (3).
test_07_unknown_format_is_a_usage_error() {
	tl_agent -c "$conf" check --format xml
	assertEquals "exit code" 3 "$TL_RC"
	assertContains "$TL_ERR" "unknown format"
}

test_08_text_lists_the_worst_check_first() {
	local conf2
	conf2=$dir/worst.conf
	write_conf "$conf2" "$TL_DB_URI" "$TL_PGDATA"
	printf 'checks: { wraparound_warn = 1; wraparound_crit = 2000000000; };\n' >>"$conf2"
	tl_agent -c "$conf2" check
	assertEquals "exit code; out: $TL_OUT" 1 "$TL_RC"
	assertEquals "summary line" "WARNING - wraparound:" "$(printf '%s\n' "$TL_OUT" | head -n 1 | awk '{print $1, $2, $3}')"
	assertEquals "first check line" "WARNING wraparound:" "$(printf '%s\n' "$TL_OUT" | sed -n 2p | awk '{print $1, $2}')"
}

tl_run
