#!/bin/bash
# t3009-check-wal: the wal check on a real cluster: the WAL rate measured
# from real writes against the state file's sample (moved 10 minutes into the
# past, as a check 10 minutes earlier would have left it), the share of
# max_wal_size a checkpoint cycle needs at that rate (OK, then WARNING and
# CRITICAL once max_wal_size is made small with ALTER SYSTEM), the
# checkpoint counters, a WAL position that went back, thresholds from the
# config and from -w/-c, and the Prometheus output (promtool).

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	write_conf ""
	tl_agent -c "$conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

setUp() {
	rm -f "$dir/state"
	set_server "max_wal_size = '1GB'"
}

# write_conf CHECKS: the config, with CHECKS in its checks group.
write_conf() {
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; };
		checks: { $1 };
	CONF
}

# set_server "NAME = VALUE": ALTER SYSTEM and a reload.
set_server() {
	tl_sql "ALTER SYSTEM SET $1" >/dev/null
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	sleep 0.3
}

# wal [ARGS...]: the wal check's line of `check --only wal ARGS`.
wal() {
	tl_agent -c "$conf" check --only wal "$@"
	WAL=$(printf '%s\n' "$TL_OUT" | awk '$2 == "wal:"')
}

wal_status() { printf '%s' "$WAL" | awk '{print $1}'; }

lsn_bytes() { tl_sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint" | tr -d ' '; }

# backdate_wal SECONDS: moves the wal and checkpoint samples SECONDS into the past.
backdate_wal() {
	awk -F'\t' -v OFS='\t' -v d="$1" '$3 ~ /^(wal|ckpt)/ { $2 -= d } { print }' "$dir/state" >"$dir/state.new" &&
		mv "$dir/state.new" "$dir/state"
}

# write_wal MB: about MB megabytes of WAL, from a real insert (then dropped).
write_wal() {
	tl_sql "CREATE TABLE IF NOT EXISTS wal_filler (b text); INSERT INTO wal_filler
		SELECT md5(i::text) || repeat('x', 1000) FROM generate_series(1, $1 * 900) i; DROP TABLE wal_filler" >/dev/null
}

# The WAL per second that the check printed, as a whole number.
printed_rate() {
	printf '%s\n' "$TL_OUT" | grep -o 'wal_bytes_per_second=[0-9.e+]*' | cut -d= -f2 | awk '{ printf "%d\n", $1 }'
}

test_01_first_run_keeps_a_sample_and_says_when_the_rate_comes() {
	wal
	assertEquals "exit; out: $TL_OUT" 0 "$TL_RC"
	assertEquals "$WAL" OK "$(wal_status)"
	assertContains "$WAL" "WAL rate: first sample 0 s old, measured from 300 s; max_wal_size 1.0 GiB"
	assertTrue "a WAL sample in the state file" "grep -Eq '^[0-9]+	[0-9]+	wal ' '$dir/state'"
	assertTrue "checkpoint counters in the state file" "grep -q '	ckpt-req ' '$dir/state'"
	assertContains "perfdata: $TL_OUT" "$TL_OUT" "max_wal_size_bytes=1073741824B"
}

test_02_the_rate_is_the_wal_written_since_the_sample_divided_by_its_age() {
	local before after rate expect_lo expect_hi
	wal
	before=$(lsn_bytes)
	write_wal 40
	after=$(lsn_bytes)
	backdate_wal 600
	wal
	rate=$(printed_rate)
	# the check's own sample was taken just before $before, and its second one just after $after
	expect_lo=$(((after - before) / 610))
	expect_hi=$(((after - before + 1048576) / 598))
	assertEquals "$WAL" OK "$(wal_status)"
	assertTrue "rate $rate B/s within [$expect_lo, $expect_hi]; $WAL" \
		"[ '$rate' -ge '$expect_lo' ] && [ '$rate' -le '$expect_hi' ]"
	assertContains "$WAL" "a checkpoint cycle (5m x 1.9) needs"
	assertTrue "$WAL" "printf '%s' \"\$WAL\" | grep -q 'of WAL over 6[01][0-9] s'"
}

test_03_a_small_max_wal_size_warns_then_is_critical() {
	wal
	write_wal 40
	backdate_wal 600
	set_server "max_wal_size = '32MB'"
	# 40 MB in 600 s is 67 KiB/s: 38 MB per 5-minute cycle x 1.9, about 118% of 32 MB
	wal
	assertEquals "$WAL" WARNING "$(wal_status)"
	assertContains "$WAL" "checkpoints come early by WAL volume: raise max_wal_size"
	assertEquals "a WARNING exits 1; out: $TL_OUT" 1 "$TL_RC"
	write_conf "wal_fill_warn_pct = 50; wal_fill_crit_pct = 100;"
	wal
	assertEquals "$WAL" CRITICAL "$(wal_status)"
	assertEquals "a CRITICAL exits 2" 2 "$TL_RC"
	write_conf ""
	wal -w 500 -c 900
	assertEquals "-w/-c raise the thresholds: $WAL" OK "$(wal_status)"
	assertContains "$WAL" "(warn 500%, crit 900%)"
}

test_04_a_checkpoint_command_is_counted_as_requested() {
	wal
	tl_sql "CHECKPOINT" >/dev/null
	backdate_wal 600
	wal
	assertContains "$WAL" "checkpoints since: 0 timed, 1 requested"
	assertTrue "counter in perfdata: $TL_OUT" \
		"printf '%s' \"\$TL_OUT\" | grep -Eq 'checkpoints_requested_total=[1-9][0-9]*c'"
}

test_05_a_position_that_went_back_starts_again_instead_of_a_negative_rate() {
	wal
	awk -F'\t' -v OFS='\t' '$3 ~ /^wal / { $1 = $1 * 1000 } { print }' "$dir/state" >"$dir/state.new" &&
		mv "$dir/state.new" "$dir/state"
	backdate_wal 600
	wal
	assertEquals "$WAL" OK "$(wal_status)"
	assertContains "$WAL" "WAL rate: first sample 0 s old"
	wal
	assertNotContains "no negative rate: $TL_OUT" "$TL_OUT" "wal_bytes_per_second=-"
}

test_06_thresholds_out_of_order_are_a_config_error() {
	write_conf "wal_fill_warn_pct = 300; wal_fill_crit_pct = 200;"
	wal
	assertEquals "exit; err: $TL_ERR" 78 "$TL_RC"
	assertContains "$TL_ERR" "wal_fill"
	write_conf ""
}

test_07_prometheus_output_is_valid_and_carries_the_figures() {
	local prom
	wal
	write_wal 5
	backdate_wal 600
	tl_agent -c "$conf" check --only wal --format prometheus
	prom=$TL_OUT
	assertContains "$prom" "checkpoint_agent_wal_bytes_per_second "
	assertContains "$prom" "checkpoint_agent_wal_cycle_bytes "
	assertContains "$prom" "# TYPE checkpoint_agent_checkpoints_requested_total counter"
	assertContains "$prom" "# TYPE checkpoint_agent_checkpoints_timed_total counter"
	assertContains "$prom" "checkpoint_agent_checkpoints_requested_total "
	assertContains "a gauge stays a gauge" "$prom" "# TYPE checkpoint_agent_wal_position_bytes gauge"
	if command -v promtool >/dev/null; then
		assertTrue "promtool: $prom" "printf '%s\n' \"\$prom\" | promtool check metrics >/dev/null 2>&1 ||
			printf '%s\n' \"\$prom\" | promtool check metrics 2>&1 | grep -qv error"
	fi
}

tl_run "$@"
