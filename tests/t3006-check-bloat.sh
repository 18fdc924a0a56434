#!/bin/bash
# t3006-check-bloat: the bloat check driven into OK, WARNING and CRITICAL on
# a real cluster: dead tuples as a share of a checkpoint table (deletes with
# autovacuum off on the table), a table never vacuumed, the time since the
# last vacuum, and its figures in JSON and in the Prometheus output
# (promtool check metrics).

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

suite_setup() {
	tl_pg_start || return 1
	dir=$(tl_tmpdir) || return 1
	conf=$dir/agent.conf
	write_conf ""
	tl_agent -c "$conf" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
	tl_sql "ALTER TABLE checkpoints SET (autovacuum_enabled = false);
		ALTER TABLE checkpoint_blobs SET (autovacuum_enabled = false);
		ALTER TABLE checkpoint_writes SET (autovacuum_enabled = false)" >/dev/null
	tl_gen_threads t- 500 2 600 || return 1
	tl_sql "VACUUM checkpoints" >/dev/null && tl_sql "VACUUM checkpoint_blobs" >/dev/null
}

# write_conf CHECKS: the config, with CHECKS in its checks group (the suite
# judges from 100 dead tuples, the default being 10,000).
write_conf() {
	cat >"$conf" <<-CONF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		service: { state_file = "$dir/state"; data_directory = "$TL_PGDATA"; };
		checks: { $1 };
	CONF
}

# bloat [CHECKS]: the bloat check's line of a check run. (Each run's write
# probe leaves a dead tuple or two of its own, so counts are matched loosely.)
bloat() {
	case "${1:-}" in
	*dead_tuples_min*) write_conf "$1" ;;
	*) write_conf "dead_tuples_min = 100; ${1:-}" ;;
	esac
	tl_agent -c "$conf" check
	BLOAT=$(printf '%s\n' "$TL_OUT" | awk '$2 == "bloat:"')
}

# delete_share PCT: deletes rows of checkpoints until PCT percent of its tuples are dead.
delete_share() {
	tl_sql "DELETE FROM checkpoints WHERE ctid IN (SELECT ctid FROM checkpoints ORDER BY thread_id, checkpoint_id
		LIMIT (SELECT (count(*) * $1 / 100)::int FROM checkpoints))" >/dev/null
}

test_01_vacuumed_tables_are_ok_and_a_never_vacuumed_one_with_dead_rows_warns() {
	bloat
	assertContains "$BLOAT" "public.checkpoints 0.0% dead (0), vacuumed"
	# checkpoint_writes has never been vacuumed; with dead rows that is a warning.
	tl_sql "DELETE FROM checkpoint_writes WHERE idx = 1" >/dev/null
	bloat "dead_tuples_warn_pct = 90; dead_tuples_crit_pct = 95;"
	assertEquals "$BLOAT" WARNING "$(printf '%s' "$BLOAT" | awk '{print $1}')"
	assertTrue "$BLOAT" "printf '%s' \"\$BLOAT\" | grep -Eq 'public.checkpoint_writes 50.0% dead \\(1,00[0-9]\\), never vacuumed'"
	tl_sql "VACUUM checkpoint_writes" >/dev/null
	bloat
	assertEquals "after VACUUM: $BLOAT" OK "$(printf '%s' "$BLOAT" | awk '{print $1}')"
}

test_02_dead_share_warning_then_critical_then_vacuum() {
	delete_share 35
	bloat
	assertEquals "35% dead: $BLOAT" WARNING "$(printf '%s' "$BLOAT" | awk '{print $1}')"
	assertTrue "$BLOAT" "printf '%s' \"\$BLOAT\" | grep -Eq 'public.checkpoints 35.[0-9]% dead \\(35[0-9]\\)'"
	delete_share 60
	bloat
	assertEquals "74% dead: $BLOAT" CRITICAL "$(printf '%s' "$BLOAT" | awk '{print $1}')"
	tl_agent -c "$conf" check
	assertEquals "the check's exit code" 2 "$TL_RC"
	bloat "dead_tuples_min = 100000;"
	assertEquals "below dead_tuples_min nothing is judged: $BLOAT" OK "$(printf '%s' "$BLOAT" | awk '{print $1}')"
	tl_sql "VACUUM checkpoints" >/dev/null
	bloat
	assertEquals "after VACUUM: $BLOAT" OK "$(printf '%s' "$BLOAT" | awk '{print $1}')"
}

test_03_time_since_the_last_vacuum() {
	tl_sql "VACUUM checkpoint_blobs" >/dev/null
	tl_sql "DELETE FROM checkpoint_blobs WHERE channel = 'counter'" >/dev/null
	sleep 2
	bloat 'dead_tuples_warn_pct = 90; dead_tuples_crit_pct = 95; vacuum_age_warn = "1s"; vacuum_age_crit = "1h";'
	assertEquals "vacuumed 2 s ago, warn at 1 s: $BLOAT" WARNING "$(printf '%s' "$BLOAT" | awk '{print $1}')"
	bloat 'dead_tuples_warn_pct = 90; dead_tuples_crit_pct = 95; vacuum_age_warn = "1s"; vacuum_age_crit = "1s";'
	assertEquals "crit at 1 s: $BLOAT" CRITICAL "$(printf '%s' "$BLOAT" | awk '{print $1}')"
	tl_sql "VACUUM checkpoint_blobs" >/dev/null
}

test_04_json_and_prometheus_carry_the_figures() {
	local deleted dead
	deleted=$(tl_sql "WITH d AS (DELETE FROM checkpoints WHERE thread_id LIKE 't-00000%' RETURNING 1) SELECT count(*) FROM d")
	write_conf "dead_tuples_min = 100;"
	tl_agent -c "$conf" check --format json
	dead=$(printf '%s' "$TL_OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
m = [x for c in d["checks"] if c["name"] == "bloat" for x in c["metrics"]
     if x["name"] == "table_dead_tuples" and x["labels"]["table"] == "public.checkpoints"]
print(int(m[0]["value"]))')
	assertTrue "dead tuples of checkpoints in JSON: $dead for $deleted deleted" \
		"[ $dead -ge $deleted ] && [ $dead -le $((deleted + 5)) ]"
	tl_agent -c "$conf" check --format prometheus
	assertContains "$TL_OUT" 'checkpoint_agent_table_dead_tuples{table="public.checkpoints"} '
	assertContains "$TL_OUT" '# TYPE checkpoint_agent_table_dead_tuple_ratio gauge'
	assertContains "$TL_OUT" 'checkpoint_agent_table_vacuum_age_seconds{table="public.checkpoints"}'
	if command -v promtool >/dev/null; then
		assertTrue "promtool check metrics: $(printf '%s\n' "$TL_OUT" | promtool check metrics 2>&1)" \
			"printf '%s\n' \"\$TL_OUT\" | promtool check metrics"
	fi
}

tl_run
