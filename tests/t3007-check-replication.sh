#!/bin/bash
# t3007: the role-aware `replication` check and `migrate` on a standby, on a
# real leader and a real streaming standby of this machine (pg_basebackup).
#
# On the leader: not replicated (OK), a standby (its lag in bytes and
# seconds, per replica), the synchronous standby count against
# checks.sync_standbys_min, and commits that wait for a missing synchronous
# standby. Through database.node_uri, the standby's own view: streaming,
# replay paused while the leader writes (lag in bytes), thresholds, and not
# streaming once the leader is gone. Then migrate: refused on a standby after
# lock_timeout (exit 75, with the reason), and waiting on a standby until it
# is promoted, then migrating there.
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/standby.sh
. "$(dirname "$0")/lib/standby.sh"

suite_setup() {
	tl_pg_start || return 1
	# As provisioning grants it: the replication columns need it.
	tl_sql "GRANT pg_read_all_stats TO $TL_APP_ROLE" >/dev/null || return 1
	dir=$(tl_tmpdir) || return 1
	tl_agent_conf "$dir/leader.conf" || return 1
	tl_agent -c "$dir/leader.conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate: $TL_ERR"; return 1; }
}

# conf FILE URI [NODE_URI] [CHECKS]: a config for URI, this node at NODE_URI.
conf() {
	cat >"$1" <<-CONF
		database: { uri = "$2"; node_uri = "${3:-}"; password_file = "$TL_PASSWORD_FILE";
		            connect_timeout = 3; };
		migrations: { lock_timeout = ${LOCK_TIMEOUT:-60}; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; };
		checks: { ${4:-} };
	CONF
}

standby_uri() {
	printf 'postgresql://%s@127.0.0.1:%s/%s\n' "$TL_APP_ROLE" "$TL_STANDBY_PORT" "$TL_APP_DB"
}

# replication_line: the replication check's text line of the last check run.
replication_line() {
	grep ' replication: ' <<<"$TL_OUT"
}

# metric NAME: a Prometheus sample line of the last run.
metric() {
	grep "^checkpoint_agent_$1" <<<"$TL_OUT"
}

test_01_a_server_without_standbys_is_not_replicated() {
	conf "$dir/a.conf" "$TL_DB_URI"
	tl_agent -c "$dir/a.conf" check
	assertEquals "check exit (out: $TL_OUT)" 0 "$TL_RC"
	assertContains "$(replication_line)" "OK       replication: not replicated"
}

test_02_the_leader_reports_each_standby_and_its_lag() {
	tl_standby_start standby1 || fail "standby"
	tl_standby_wait_streaming 30 || fail "the standby never streamed"
	tl_sql "INSERT INTO checkpoint_agent.heartbeat (host, beat_at, beats) VALUES ('t3007', now(), 1)" >/dev/null
	conf "$dir/a.conf" "$TL_DB_URI"
	tl_agent -c "$dir/a.conf" check
	assertEquals "check exit (out: $TL_OUT)" 0 "$TL_RC"
	assertContains "$(replication_line)" "leader with 1 standby(s), 0 synchronous"
	tl_agent -c "$dir/a.conf" check --format prometheus
	assertEquals "replicas" "checkpoint_agent_replication_replicas 1" "$(metric 'replication_replicas ')"
	assertEquals "sync standbys" "checkpoint_agent_replication_sync_standbys 0" "$(metric 'replication_sync_standbys ')"
	assertContains "lag in bytes, labelled" "$(metric replication_lag_bytes)" \
		'checkpoint_agent_replication_lag_bytes{replica="standby1"} '
	assertContains "lag in seconds, labelled" "$(metric replication_lag_seconds)" \
		'checkpoint_agent_replication_lag_seconds{replica="standby1"} '
	assertEquals "the leader is not a standby" "checkpoint_agent_replication_standby 0" "$(metric 'replication_standby ')"
}

test_03_too_few_synchronous_standbys_is_critical() {
	conf "$dir/a.conf" "$TL_DB_URI" "" "sync_standbys_min = 1;"
	tl_agent -c "$dir/a.conf" check
	assertEquals "check exit with an async standby only (out: $TL_OUT)" 2 "$TL_RC"
	assertContains "$(replication_line)" "0 synchronous, fewer than 1 (checks.sync_standbys_min)"
	tl_sql "ALTER SYSTEM SET synchronous_standby_names = 'standby1'" >/dev/null
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	tl_wait_for 20 "SELECT count(*) = 1 FROM pg_stat_replication WHERE sync_state = 'sync'" || fail "never sync"
	tl_agent -c "$dir/a.conf" check --format prometheus
	assertEquals "check exit with a synchronous standby" 0 "$TL_RC"
	assertEquals "sync standbys" "checkpoint_agent_replication_sync_standbys 1" "$(metric 'replication_sync_standbys ')"
}

test_04_commits_that_wait_for_a_missing_sync_standby_are_critical() {
	conf "$dir/a.conf" "$TL_DB_URI"
	tl_sql "ALTER SYSTEM SET synchronous_standby_names = 'nobody'" >/dev/null
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	tl_wait_for 20 "SELECT current_setting('synchronous_standby_names') = 'nobody'" || fail "no reload"
	tl_agent -c "$dir/a.conf" check
	assertContains "$(replication_line)" "CRITICAL replication: leader: synchronous_standby_names is 'nobody' but no synchronous standby is connected: commits wait"
	tl_sql "ALTER SYSTEM SET synchronous_standby_names = 'standby1'" >/dev/null
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	tl_wait_for 20 "SELECT count(*) = 1 FROM pg_stat_replication WHERE sync_state = 'sync'" || fail "never sync"
}

test_05_on_a_standby_node_the_check_reports_streaming_and_replay_lag() {
	conf "$dir/s.conf" "$TL_DB_URI" "$(standby_uri)"
	tl_agent -c "$dir/s.conf" check
	assertEquals "check exit on the standby node (out: $TL_OUT)" 0 "$TL_RC"
	assertContains "$(replication_line)" "OK       replication: standby streaming from "
	tl_agent -c "$dir/s.conf" check --format prometheus
	assertEquals "a standby" "checkpoint_agent_replication_standby 1" "$(metric 'replication_standby ')"
	assertEquals "streaming" "checkpoint_agent_replication_streaming 1" "$(metric 'replication_streaming ')"
}

# Without pg_read_all_stats the leader's functions hide each sender's state:
# the check says so, and what to grant, instead of calling it healthy.
test_05b_a_role_that_cannot_see_the_standbys_state_is_told_what_to_grant() {
	conf "$dir/a.conf" "$TL_DB_URI"
	tl_sql "REVOKE pg_read_all_stats FROM $TL_APP_ROLE" >/dev/null
	tl_agent -c "$dir/a.conf" check --only replication
	tl_sql "GRANT pg_read_all_stats TO $TL_APP_ROLE" >/dev/null
	assertEquals "check exit (out: $TL_OUT)" 3 "$TL_RC"
	assertContains "$(replication_line)" \
		"UNKNOWN  replication: pg_stat_replication hides the standbys' state from $TL_APP_ROLE; grant it pg_read_all_stats"
	tl_agent -c "$dir/a.conf" check --only replication
	assertEquals "with the grant back (out: $TL_OUT)" 0 "$TL_RC"
}

test_06_paused_replay_is_a_warning_and_its_lag_grows() {
	local bytes
	# Asynchronous for this test: with replay paused a synchronous standby
	# still confirms the flush, but keep the leader's writes unhindered.
	tl_sql "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	tl_standby_sql "SELECT pg_wal_replay_pause()" >/dev/null
	tl_sql "CREATE TABLE lag_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) AS g" >/dev/null
	sleep 1
	conf "$dir/s.conf" "$TL_DB_URI" "$(standby_uri)"
	tl_agent -c "$dir/s.conf" check --format prometheus
	bytes=$(metric 'replication_replay_lag_bytes ' | awk '{print $2}')
	assertTrue "replay lag in bytes is over 1 MB while paused: $bytes" "[ '${bytes:-0}' -gt 1048576 ]"
	assertEquals "paused" "checkpoint_agent_replication_replay_paused 1" "$(metric 'replication_replay_paused ')"
	tl_agent -c "$dir/s.conf" check
	assertEquals "exit: WARNING for the pause (out: $TL_OUT)" 1 "$TL_RC"
	assertContains "$(replication_line)" "replay PAUSED"
	conf "$dir/s.conf" "$TL_DB_URI" "$(standby_uri)" "replication_lag_warn_bytes = 1000; replication_lag_crit_bytes = 100000;"
	tl_agent -c "$dir/s.conf" check
	assertEquals "exit: CRITICAL past replication_lag_crit_bytes" 2 "$TL_RC"
	tl_standby_sql "SELECT pg_wal_replay_resume()" >/dev/null
	tl_sql "DROP TABLE lag_filler" >/dev/null
}

test_07_a_standby_that_lost_its_leader_is_not_streaming() {
	conf "$dir/s.conf" "$TL_DB_URI" "$(standby_uri)"
	tl_pg_stop
	tl_agent -c "$dir/s.conf" check
	assertEquals "exit (out: $TL_OUT)" 2 "$TL_RC"
	assertContains "$(replication_line)" "CRITICAL replication: standby not streaming from the leader"
	tl_pg_restart || fail "the leader did not start again"
	tl_standby_wait_streaming 30 || fail "the standby did not stream again"
}

test_08_migrate_on_a_standby_gives_up_after_lock_timeout() {
	local start
	LOCK_TIMEOUT=2 conf "$dir/s-only.conf" "$(standby_uri)"
	start=$SECONDS
	tl_agent -c "$dir/s-only.conf" migrate
	assertEquals "exit code on a standby (err: $TL_ERR)" 75 "$TL_RC"
	assertContains "$TL_ERR" "is a standby (read-only); migrations run only on the leader: waiting up to 2 s"
	assertContains "$TL_ERR" "no writable leader was found within 2 s (migrations.lock_timeout)"
	assertTrue "it waited the 2 s, not much longer ($((SECONDS - start)) s)" "[ $((SECONDS - start)) -ge 2 ] && [ $((SECONDS - start)) -le 8 ]"
	tl_agent -c "$dir/s-only.conf" migrate --dry-run
	assertEquals "a dry run reads and is allowed on a standby (err: $TL_ERR)" 0 "$TL_RC"
}

test_09_migrate_waits_for_the_standby_to_be_promoted_then_migrates_there() {
	local pid rc
	LOCK_TIMEOUT=60 conf "$dir/s-only.conf" "$(standby_uri)"
	"$TL_AGENT" -c "$dir/s-only.conf" migrate 2>"$dir/migrate.err" &
	pid=$!
	sleep 3
	assertTrue "migrate still waits on the standby" "kill -0 $pid"
	tl_pg_stop
	runuser -u postgres -- "$TL_PGBIN/pg_ctl" -D "$TL_STANDBY_DATA" -w promote >/dev/null 2>&1 || fail "promote"
	wait "$pid"
	rc=$?
	assertEquals "migrate exit after the promotion ($(cat "$dir/migrate.err"))" 0 "$rc"
	assertContains "$(cat "$dir/migrate.err")" "is writable now: migrating there"
	assertEquals "schema at v9 on the promoted server" 9 \
		"$(tl_standby_sql 'SELECT max(v) FROM public.checkpoint_migrations')"
}

tl_run
