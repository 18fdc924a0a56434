#!/bin/bash
# t3010-review-defects-check.sh: defects a review found in `check`, one test
# each (each failed against the agent before its fix):
#
# - parameters of the user's URI were overridden by the agent's own: a URI
#   with options=-c default_transaction_read_only=on (psql is read-only
#   with it) still passed `writable`, and a URI's application_name was lost;
# - growth was the difference to the previous sample whatever its age: the
#   first check after an outage, or a CLI check a few seconds after the
#   service's, raised false alarms. It is per hour now, against a sample at
#   least 5 minutes old;
# - a schema name libpq cannot quote (invalid UTF-8) made `check` exit 70
#   from inside the library; it is a check result now.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	write_conf ""
	tl_agent -c "$conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
	DB_KEY="127.0.0.1:$TL_PGPORT/$TL_APP_DB"
}

suite_teardown() {
	tl_session_close
}

# write_conf CHECKS: the config, with CHECKS inside its checks group.
write_conf() {
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		migrations: { lock_timeout = 3; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; };
		checks: { $1 };
	CONF
}

status_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name { print $1 }'
}

# grow_blobs MIB: adds about MIB MiB of incompressible rows to checkpoint_blobs.
grow_blobs() {
	tl_sql "INSERT INTO public.checkpoint_blobs (thread_id, channel, version, type, blob)
		SELECT 'grow', 'c' || g || '-' || random(), '1', 'bytes',
			(SELECT decode(string_agg(md5(random()::text || g || i), ''), 'hex') FROM generate_series(1, 6554) i)
		FROM generate_series(1, $(($1 * 10))) g" >/dev/null
}

# blobs_total: checkpoint_blobs' size with TOAST and indexes, as the size check measures it.
blobs_total() {
	tl_sql "SELECT pg_total_relation_size('public.checkpoint_blobs')"
}

# state_with AGE BYTES: a state file whose only sample of checkpoint_blobs is AGE seconds old.
state_with() {
	printf '%s\t%s\tsize %s public.checkpoint_blobs\n' "$2" "$(( $(date +%s) - $1 ))" "$DB_KEY" >"$dir/state"
}

test_01_read_only_options_in_the_uri_make_writable_critical() {
	local uri="$TL_DB_URI?options=-c%20default_transaction_read_only%3Don"
	CHECKPOINT_DB_URI=$uri tl_agent -c "$conf" check
	assertEquals "writable with a read-only session; out: $TL_OUT" CRITICAL "$(status_of writable)"
	assertContains "it says why" "$TL_OUT" "read-only transaction"
	assertEquals "exit code" 2 "$TL_RC"
}

test_02_the_uris_application_name_is_kept() {
	local name
	tl_session_open t1010-holder tl_psql_super
	tl_session_sql "SELECT pg_advisory_lock(1129333063, 1);"
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted)" ||
		fail "could not take the migration lock"
	CHECKPOINT_DB_URI="$TL_DB_URI?application_name=from-the-uri" \
		"$TL_AGENT" -c "$conf" migrate >/dev/null 2>&1 7>&- &
	local pid=$!
	tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE usename = '$TL_APP_ROLE')"
	name=$(tl_sql "SELECT string_agg(application_name, ',') FROM pg_stat_activity WHERE usename = '$TL_APP_ROLE'")
	tl_session_close
	wait "$pid"
	assertEquals "the agent's session carries the URI's application_name" from-the-uri "$name"
}

test_10_growth_after_an_outage_is_no_alarm() {
	write_conf "growth_warn_mb = 1; growth_crit_mb = 2;"
	grow_blobs 3
	state_with 259200 0	# three days ago, an empty table
	tl_agent -c "$conf" check
	assertEquals "3 MiB in 3 days; out: $TL_OUT" OK "$(status_of size)"
	assertContains "it says the rate and its window" "$TL_OUT" "/h over 2592"
}

test_11_a_check_seconds_after_another_is_no_alarm() {
	write_conf "growth_warn_mb = 1; growth_crit_mb = 2;"
	state_with 10 $(( $(blobs_total) - 3 * 1048576 ))
	tl_agent -c "$conf" check
	assertEquals "a sample 10 s old is not measured against; out: $TL_OUT" OK "$(status_of size)"
	assertContains "it says growth is measured later" "$TL_OUT" "measured from 300 s"
}

test_12_real_growth_is_still_seen() {
	write_conf "growth_warn_mb = 1; growth_crit_mb = 2;"
	state_with 600 $(( $(blobs_total) - 3 * 1048576 ))
	tl_agent -c "$conf" check
	assertEquals "3 MiB in 10 minutes = 18 MiB/h; out: $TL_OUT" CRITICAL "$(status_of size)"
}

test_20_a_name_libpq_cannot_quote_is_a_check_result() {
	local bad=$dir/bad-schema.conf
	cat >"$bad" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		migrations: { agent_schema = "bad\\xff"; };
	CONF
	tl_agent -c "$bad" check
	assertTrue "check exits with a Nagios code, not 70: $TL_RC; $TL_ERR" "[ $TL_RC -le 3 ]"
	assertContains "the report names the problem" "$TL_OUT$TL_ERR" "cannot quote"
}

tl_run
