#!/bin/bash
# t1021-faults-migrate.sh: migrate and rollback under faults, measured, on
# one cluster that every trial reuses (a trial resets the schemas, which
# takes milliseconds, not a new initdb):
#
# - 20 rounds of 8 concurrent `migrate` on an empty database: every round
#   8 of 8 exit 0, versions 0..9 recorded once, each applied once (one 'up'
#   ledger row), no INVALID index;
# - 50 trials of SIGKILL at a random moment of `migrate` (40 from an empty
#   database at a random delay within a whole migrate's duration, 10 while
#   v6's index build waits on an old transaction), then `migrate` again:
#   every trial converges, verify clean, no INVALID index;
# - 10 trials of SIGKILL at a random moment of `rollback --to -1` of a set
#   holding rows, then the rollback again: no row lost (the rows are in the
#   quarantine schemas).
#
# Environment: T1021_ROUNDS (20), T1021_KILLS (40), T1021_BLOCKED_KILLS (10),
# T1021_ROLLBACK_KILLS (10). The figures are printed (tl_log) for the README.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

ROUNDS=${T1021_ROUNDS:-20}
KILLS=${T1021_KILLS:-40}
BLOCKED_KILLS=${T1021_BLOCKED_KILLS:-10}
ROLLBACK_KILLS=${T1021_ROLLBACK_KILLS:-10}
AGENTS=8

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	CONF=$WORK/agent.conf
	tl_agent_conf "$CONF" "lock_timeout = 60;"
}

suite_teardown() {
	tl_session_close
}

now_ms() {
	date +%s%3N
}

reset_database() {
	tl_psql_super -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE;
		CREATE SCHEMA public AUTHORIZATION pg_database_owner; DROP SCHEMA IF EXISTS checkpoint_agent CASCADE;
		DO \$\$ DECLARE r record; BEGIN
			FOR r IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'checkpoint\\_quarantine\\_%' LOOP
				EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
			END LOOP;
		END \$\$;" >/dev/null
}

versions() {
	tl_sql "SELECT coalesce(string_agg(v::text, ',' ORDER BY v), '') FROM public.checkpoint_migrations" 2>/dev/null
}

invalid_indexes() {
	tl_sql "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
}

# sleep_ms MS
sleep_ms() {
	sleep "$(awk -v ms="$1" 'BEGIN { printf "%.3f", ms / 1000 }')"
}

# converged WHAT: migrate again, then v0..9, verify clean, no INVALID index; returns 1 and says why otherwise.
converged() {
	tl_agent -c "$CONF" migrate
	[ "$TL_RC" = 0 ] || { tl_log "$1: migrate again exited $TL_RC: $TL_ERR"; return 1; }
	[ "$(versions)" = "0,1,2,3,4,5,6,7,8,9" ] || { tl_log "$1: versions $(versions)"; return 1; }
	[ "$(invalid_indexes)" = 0 ] || { tl_log "$1: an INVALID index is left"; return 1; }
	tl_agent -c "$CONF" verify
	[ "$TL_RC" = 0 ] || { tl_log "$1: verify: $TL_OUT $TL_ERR"; return 1; }
	return 0
}

test_01_eight_concurrent_migrates_twenty_rounds() {
	local round i good=0 bad="" pids rc start
	start=$SECONDS
	for round in $(seq 1 "$ROUNDS"); do
		reset_database
		pids=()
		for i in $(seq 1 "$AGENTS"); do
			"$TL_AGENT" -c "$CONF" migrate >/dev/null 2>"$WORK/c.$i.err" &
			pids+=("$!")
		done
		rc=0
		for i in "${pids[@]}"; do
			wait "$i" || rc=$?
		done
		if [ "$rc" = 0 ] && [ "$(versions)" = "0,1,2,3,4,5,6,7,8,9" ] && [ "$(invalid_indexes)" = 0 ] &&
			[ "$(tl_sql "SELECT count(*) FROM checkpoint_agent.ledger WHERE direction = 'up'")" = 12 ] &&
			[ -z "$(tl_sql "SELECT version FROM checkpoint_agent.ledger GROUP BY set_name, version HAVING count(*) > 1")" ]; then
			good=$((good + 1))
		else
			bad="$bad round $round (exit $rc: $(cat "$WORK"/c.*.err | grep -i error | head -n 2))"
		fi
	done
	tl_log "concurrent migrate: $good of $ROUNDS rounds had $AGENTS of $AGENTS agents exit 0 with v0-9 once and no INVALID index ($((SECONDS - start)) s)"
	assertEquals "every round converged:$bad" "$ROUNDS" "$good"
}

test_02_sigkill_at_a_random_moment_of_migrate() {
	local trial t0 full delay good=0 bad="" start=$SECONDS pid
	reset_database
	t0=$(now_ms)
	tl_agent -c "$CONF" migrate
	full=$(( $(now_ms) - t0 ))
	for trial in $(seq 1 "$KILLS"); do
		reset_database
		delay=$(( RANDOM % (full + 1) ))
		"$TL_AGENT" -c "$CONF" migrate >/dev/null 2>&1 &
		pid=$!
		sleep_ms "$delay"
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		if converged "kill at $delay ms"; then
			good=$((good + 1))
		else
			bad="$bad $delay ms"
		fi
	done
	tl_log "SIGKILL during migrate (random moment within $full ms): $good of $KILLS converged ($((SECONDS - start)) s)"
	assertEquals "every trial converged; failed at:$bad" "$KILLS" "$good"
}

test_03_sigkill_while_an_index_build_waits_on_an_old_transaction() {
	local trial good=0 bad="" start=$SECONDS pid backend
	for trial in $(seq 1 "$BLOCKED_KILLS"); do
		reset_database
		tl_agent -c "$CONF" migrate --to 5
		tl_session_open t1021-blocker
		tl_session_sql "BEGIN; INSERT INTO public.checkpoints (thread_id, checkpoint_id, checkpoint) VALUES ('b', 'c', '{}');"
		tl_wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 't1021-blocker'
			AND state = 'idle in transaction')"
		"$TL_AGENT" -c "$CONF" migrate >/dev/null 2>&1 7>&- &
		pid=$!
		tl_wait_for 20 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query ILIKE '%CREATE INDEX CONCURRENTLY%'
			AND state = 'active')"
		backend=$(tl_sql "SELECT pid FROM pg_stat_activity WHERE query ILIKE '%CREATE INDEX CONCURRENTLY%'
			AND state = 'active' AND pid <> pg_backend_pid() LIMIT 1")
		sleep_ms $(( RANDOM % 500 ))
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		tl_session_sql "ROLLBACK;"
		tl_session_close
		if converged "blocked build killed (backend ${backend:-?})"; then
			good=$((good + 1))
		else
			bad="$bad trial $trial"
		fi
	done
	tl_log "SIGKILL while v6's build waits on an old transaction: $good of $BLOCKED_KILLS converged ($((SECONDS - start)) s)"
	assertEquals "every trial converged:$bad" "$BLOCKED_KILLS" "$good"
}

# rows_everywhere: rows of the three LangGraph tables, live and in every quarantine schema.
rows_everywhere() {
	local t n=0
	for t in $(tl_sql "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'
		AND c.relname IN ('checkpoints', 'checkpoint_blobs', 'checkpoint_writes')
		AND (n.nspname = 'public' OR n.nspname LIKE 'checkpoint\_quarantine\_%')"); do
		n=$((n + $(tl_sql "SELECT count(*) FROM $t")))
	done
	printf '%s\n' "$n"
}

fill_tables() {
	tl_sql "INSERT INTO public.checkpoints (thread_id, checkpoint_id, checkpoint)
			SELECT 't' || g, 'c', '{}' FROM generate_series(1, 5) g;
		INSERT INTO public.checkpoint_blobs (thread_id, channel, version, type, blob)
			SELECT 't' || g, 'ch', '1', 'bytes', 'x' FROM generate_series(1, 5) g;
		INSERT INTO public.checkpoint_writes (thread_id, checkpoint_id, task_id, idx, channel, blob)
			SELECT 't' || g, 'c', 'task', 0, 'ch', 'x' FROM generate_series(1, 5) g" >/dev/null
}

test_04_sigkill_during_rollback_loses_no_row() {
	local trial t0 full delay good=0 bad="" start=$SECONDS pid rows
	reset_database
	tl_agent -c "$CONF" migrate
	fill_tables
	t0=$(now_ms)
	tl_agent -c "$CONF" rollback --to -1
	full=$(( $(now_ms) - t0 ))
	for trial in $(seq 1 "$ROLLBACK_KILLS"); do
		reset_database
		tl_agent -c "$CONF" migrate
		fill_tables
		delay=$(( RANDOM % (full + 1) ))
		"$TL_AGENT" -c "$CONF" rollback --to -1 >/dev/null 2>&1 &
		pid=$!
		sleep_ms "$delay"
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		tl_agent -c "$CONF" rollback --to -1
		rows=$(rows_everywhere)
		if [ "$TL_RC" = 0 ] && [ "$rows" = 15 ] && [ "$(versions)" = "" ]; then
			good=$((good + 1))
		else
			bad="$bad [kill at $delay ms: rollback again exit $TL_RC, $rows of 15 rows: $TL_ERR]"
		fi
	done
	tl_log "SIGKILL during rollback --to -1 (random moment within $full ms): $good of $ROLLBACK_KILLS lost no row ($((SECONDS - start)) s)"
	assertEquals "every trial kept its 15 rows:$bad" "$ROLLBACK_KILLS" "$good"
}

tl_run
