#!/bin/bash
# t3004: the disk, size, wraparound and connect checks in OK, WARNING and
# CRITICAL, the disk check's UNKNOWN when the configured data directory is
# wrong (SKIPPED when none is known), and the size growth that the state file
# carries between runs.
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
}

# write_conf CHECKS [DATADIR]: the config, with CHECKS inside its checks group.
write_conf() {
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		service: { state_file = "$dir/state"; data_directory = "${2-$TL_PGDATA}"; };
		checks: { $1 };
	CONF
}

status_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name { print $1 }'
}

check_with() {
	write_conf "$@"
	tl_agent -c "$conf" check
}

test_01_disk_ok_warning_critical() {
	check_with ""
	assertEquals "out: $TL_OUT" OK "$(status_of disk)"
	assertContains "$TL_OUT" "$TL_PGDATA: "
	check_with "disk_free_warn_pct = 100; disk_free_crit_pct = 0;"
	assertEquals "out: $TL_OUT" WARNING "$(status_of disk)"
	check_with "disk_free_warn_pct = 100; disk_free_crit_pct = 100;"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of disk)"
	check_with "inodes_free_warn_pct = 100; inodes_free_crit_pct = 100;"
	assertEquals "inodes; out: $TL_OUT" CRITICAL "$(status_of disk)"
}

test_02_disk_skipped_without_a_data_directory() {
	check_with "" ""
	assertEquals "the role may not see data_directory, so the check does not apply; out: $TL_OUT" \
		SKIPPED "$(status_of disk)"
	assertContains "$TL_OUT" "service.data_directory is not set"
	assertEquals "and does not make the run UNKNOWN" 0 "$TL_RC"
}

test_03_disk_unknown_when_the_folder_is_not_the_servers() {
	check_with "" "$dir"
	assertEquals "out: $TL_OUT" UNKNOWN "$(status_of disk)"
	assertContains "$TL_OUT" "not a PostgreSQL data directory"
	check_with "" "/nonexistent/data"
	assertEquals "out: $TL_OUT" UNKNOWN "$(status_of disk)"
	assertContains "$TL_OUT" "is not a folder on this machine"
}

# grow_blobs MIB: adds about MIB MiB of incompressible rows to checkpoint_blobs.
grow_blobs() {
	tl_sql "INSERT INTO public.checkpoint_blobs (thread_id, channel, version, type, blob)
		SELECT 'grow', 'c' || g || '-' || random(), '1', 'bytes',
			(SELECT decode(string_agg(md5(random()::text || g || i), ''), 'hex') FROM generate_series(1, 6554) i)
		FROM generate_series(1, $(($1 * 10))) g" >/dev/null
}

# backdate_state SECONDS: moves every size sample in the state file SECONDS into the past.
backdate_state() {
	awk -F'\t' -v OFS='\t' -v d="$1" '$3 ~ /^size/ { $2 -= d } { print }' "$dir/state" >"$dir/state.new" &&
		mv "$dir/state.new" "$dir/state"
}

# Growth is per hour, measured against a sample at least 5 minutes old.
test_04_size_growth_ok_warning_critical_per_hour() {
	check_with "growth_warn_mb = 6; growth_crit_mb = 24;"
	assertEquals "first run; out: $TL_OUT" OK "$(status_of size)"
	assertTrue "the state file is written" "[ -s '$dir/state' ]"
	assertContains "no rate yet" "$TL_OUT" "measured from 300 s"
	backdate_state 600
	tl_agent -c "$conf" check
	assertEquals "no growth; out: $TL_OUT" OK "$(status_of size)"
	assertContains "$TL_OUT" "public.checkpoint_blobs"
	backdate_state 600
	grow_blobs 2
	tl_agent -c "$conf" check
	assertEquals "2 MiB in 10 min = 12 MiB/h; out: $TL_OUT" WARNING "$(status_of size)"
	backdate_state 600
	grow_blobs 5
	tl_agent -c "$conf" check
	assertEquals "5 MiB in 10 min = 30 MiB/h; out: $TL_OUT" CRITICAL "$(status_of size)"
	backdate_state 600
	tl_agent -c "$conf" check
	assertEquals "then still; out: $TL_OUT" OK "$(status_of size)"
}

test_05_size_prometheus_carries_size_and_growth() {
	write_conf ""
	tl_agent -c "$conf" check
	backdate_state 600
	tl_agent -c "$conf" check --format prometheus
	assertTrue "growth sample; out: $TL_OUT" \
		"printf '%s\n' \"\$TL_OUT\" | grep -Eq '^checkpoint_agent_table_growth_bytes_per_second\{table=\"public.checkpoint_blobs\"\} -?[0-9.e+-]+$'"
	assertContains "$TL_OUT" 'checkpoint_agent_table_size_bytes{table="public.checkpoint_blobs"}'
}

test_06_wraparound_ok_warning_critical() {
	check_with ""
	assertEquals "out: $TL_OUT" OK "$(status_of wraparound)"
	check_with "wraparound_warn = 1; wraparound_crit = 2000000000;"
	assertEquals "out: $TL_OUT" WARNING "$(status_of wraparound)"
	check_with "wraparound_warn = 1; wraparound_crit = 1;"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of wraparound)"
}

test_07_connect_ok_warning_critical() {
	check_with ""
	assertEquals "out: $TL_OUT" OK "$(status_of connect)"
	check_with "connect_warn_ms = 1; connect_crit_ms = 3600000;"
	assertEquals "out: $TL_OUT" WARNING "$(status_of connect)"
	check_with "connect_warn_ms = 1; connect_crit_ms = 1;"
	assertEquals "out: $TL_OUT" CRITICAL "$(status_of connect)"
}

test_08_threshold_out_of_order_is_a_config_error() {
	check_with "lock_waits_warn = 5; lock_waits_crit = 1;"
	assertEquals "exit code" 78 "$TL_RC"
	assertContains "$TL_ERR" "warning threshold is beyond its critical one"
}

tl_run
