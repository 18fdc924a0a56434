#!/bin/bash
# t7001-prune: `checkpoint-agent prune` against a real throwaway cluster:
# bad input (64, naming the argument), a schema version it does not know (65,
# nothing changed), the dry run, both strategies, batches as separate
# transactions, --max-duration, --thread, threads with a delta channel in
# each of the forms the Python library has written (left whole by
# keep-latest), the agentos set and the store's expired rows, rows locked by
# another session (75), a second pruner (75), progress on a terminal and in
# STATUS=, the journal's priorities, and `usage`.
#
# Threads are written by tests/lib/gen-checkpoints.sql, the way the JS saver
# writes them; tests/t2002 has the real JS client judge the result.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

DAY=86400
OLD_AGE=$((40 * DAY))	# older than the 30d used below
LISTEN=$TL_ROOT/tests/tools/notify-listen

suite_setup() {
	make -s -C "$TL_ROOT" tests/tools/notify-listen >/dev/null || return 1
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	CONF=$WORK/agent.conf
	tl_agent_conf "$CONF" 'sets = [ "langgraph", "langgraph-store", "agentos" ];'
	tl_agent -c "$CONF" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
}

setUp() {
	tl_sql "TRUNCATE public.checkpoints, public.checkpoint_blobs, public.checkpoint_writes, public.store,
		agentos.checkpoints" >/dev/null
}

tearDown() {
	tl_session_close
}

# gen PREFIX THREADS STEPS AGE_SECONDS: synthetic threads (tl_gen_threads).
gen() {
	tl_gen_threads "$@" || fail "generating $1 threads failed"
}

# rows PREFIX: "checkpoints blobs writes" of the threads whose id starts with PREFIX.
rows() {
	tl_sql "SELECT (SELECT count(*) FROM checkpoints WHERE thread_id LIKE '$1%') || ' ' ||
		(SELECT count(*) FROM checkpoint_blobs WHERE thread_id LIKE '$1%') || ' ' ||
		(SELECT count(*) FROM checkpoint_writes WHERE thread_id LIKE '$1%')"
}

# summary_value LABEL: the number on the summary line of TL_OUT that starts with LABEL.
summary_value() {
	printf '%s\n' "$TL_OUT" | awk -v l="$1" '$1 == l { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9,]+$/) {
		gsub(",", "", $i); print $i; exit } }'
}

prune() {
	tl_agent -c "$CONF" prune "$@"
}

test_01_bad_input_is_64_and_names_the_argument() {
	local args arg
	while IFS='|' read -r args arg; do
		# shellcheck disable=SC2086 # the words are separate arguments
		prune $args
		assertEquals "exit for: $args; err: $TL_ERR" 64 "$TL_RC"
		assertContains "the message names $arg: $TL_ERR" "$TL_ERR" "$arg"
		assertEquals "nothing on stdout for: $args" "" "$TL_OUT"
	done <<-'EOF'
		--older-than -5d|--older-than -5d
		--older-than 30|--older-than 30
		--older-than 30x|--older-than 30x
		--older-than 1.5d|--older-than 1.5d
		--older-than 0s|--older-than 0s
		--strategy archive --older-than 30d|--strategy archive
		--batch 0 --older-than 30d|--batch 0
		--batch ten --older-than 30d|--batch ten
		--max-duration 0 --older-than 30d|--max-duration 0
		--lock-timeout 1 --older-than 30d|--lock-timeout 1
		--older-than 30d --thread t1|--thread
		--colour red|--colour
		--dry-run|--older-than
	EOF
}

test_02_a_schema_version_it_does_not_know_is_65_and_nothing_changes() {
	gen old- 5 3 "$OLD_AGE"
	tl_sql "INSERT INTO checkpoint_migrations VALUES (10)" >/dev/null
	prune --older-than 30d
	assertEquals "exit; err: $TL_ERR" 65 "$TL_RC"
	assertContains "$TL_ERR" "version 10"
	assertEquals "nothing deleted" "15 25 30" "$(rows old-)"
	tl_sql "DELETE FROM checkpoint_migrations WHERE v = 10; ALTER TABLE agentos.checkpoints RENAME TO cp_moved;
		DELETE FROM agentos.agentos_migrations WHERE v = 1" >/dev/null
	prune --older-than 30d
	assertEquals "agentos set not migrated; err: $TL_ERR" 65 "$TL_RC"
	assertContains "$TL_ERR" "migrate"
	assertEquals "nothing deleted" "15 25 30" "$(rows old-)"
	tl_sql "ALTER TABLE agentos.cp_moved RENAME TO checkpoints; INSERT INTO agentos.agentos_migrations VALUES (1)" >/dev/null
}

test_03_dry_run_counts_what_would_go_and_changes_nothing() {
	gen old- 20 5 "$OLD_AGE"
	gen new- 10 5 3600
	local before expected
	before=$(rows '')
	expected=$(tl_sql "SELECT (SELECT count(*) FROM checkpoints WHERE thread_id LIKE 'old-%') + (SELECT count(*)
		FROM checkpoint_blobs WHERE thread_id LIKE 'old-%') + (SELECT count(*) FROM checkpoint_writes
		WHERE thread_id LIKE 'old-%')")
	prune --older-than 30d --dry-run
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertContains "$TL_OUT" "dry run: nothing was changed"
	assertContains "$TL_OUT" "30 scanned, 20 would be pruned"
	assertEquals "rows that would go" "$expected" "$(summary_value total)"
	assertEquals "checkpoint rows" 100 "$(summary_value checkpoints)"
	assertEquals "nothing changed" "$before" "$(rows '')"
}

test_04_delete_removes_old_threads_whole_and_leaves_young_ones() {
	gen old- 20 5 "$OLD_AGE"
	gen new- 10 5 3600
	gen mid- 5 5 $((20 * DAY))
	prune --older-than 30d
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "old threads gone from every table" "0 0 0" "$(rows old-)"
	assertEquals "young threads untouched" "50 80 100" "$(rows new-)"
	assertEquals "20-day-old threads untouched" "25 40 50" "$(rows mid-)"
	assertContains "$TL_OUT" "35 scanned, 20 pruned"
	assertEquals "checkpoints in the summary" 100 "$(summary_value checkpoints)"
	assertEquals "blobs in the summary" 160 "$(summary_value checkpoint_blobs)"
	assertEquals "writes in the summary" 200 "$(summary_value checkpoint_writes)"
	prune --older-than 15d
	assertEquals "a shorter TTL takes the 20-day-old ones" "0 0 0" "$(rows mid-)"
}

test_05_each_batch_is_a_transaction_of_its_own() {
	gen old- 30 3 "$OLD_AGE"
	tl_agent -v -c "$CONF" prune --older-than 30d --batch 7
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "batch sizes" "7 7 7 7 2" \
		"$(printf '%s\n' "$TL_ERR" | sed -n 's/.*batch of \([0-9]*\) threads in .*/\1/p' | tr '\n' ' ' | sed 's/ $//')"
	assertContains "5 batches, and the store's one statement" "$TL_OUT" "6 transactions"
	# A batch that is rolled back leaves its threads whole: lock one thread
	# so its batch fails, and look at the others of that batch.
	gen lk- 4 3 "$OLD_AGE"
	tl_session_open t7001-lock tl_psql_super
	tl_session_sql "BEGIN; SELECT 1 FROM checkpoint_writes WHERE thread_id = 'lk-000003' FOR UPDATE;"
	tl_wait_for 10 "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE a.application_name = 't7001-lock' AND l.mode = 'RowShareLock'" || fail "the lock was not taken"
	prune --older-than 30d --batch 4 --lock-timeout 100
	assertEquals "exit 75: a thread was left locked; err: $TL_ERR" 75 "$TL_RC"
	assertEquals "the locked thread is whole" "3 5 6" "$(rows lk-000003)"
	assertEquals "the others of its batch went, in smaller batches" "0 0 0" \
		"$(tl_sql "SELECT count(*) || ' ' || 0 || ' ' || 0 FROM checkpoints WHERE thread_id LIKE 'lk-%' AND thread_id <> 'lk-000003'")"
	assertContains "$TL_OUT" "1 threads (or store batches) whose rows stayed locked"
	tl_session_close
}

test_06_max_duration_stops_early_and_a_second_run_goes_on() {
	gen old- 1500 2 "$OLD_AGE"
	prune --older-than 30d --batch 1 --max-duration 1
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertContains "$TL_OUT" "stopped before the end: --max-duration reached"
	local left
	left=$(tl_sql "SELECT count(DISTINCT thread_id) FROM checkpoints WHERE thread_id LIKE 'old-%'")
	assertTrue "some threads are left after 1 s ($left)" "[ $left -gt 0 ] && [ $left -lt 1500 ]"
	assertEquals "every thread left is whole" 0 "$(tl_sql "SELECT count(*) FROM (SELECT thread_id FROM checkpoints
		WHERE thread_id LIKE 'old-%' GROUP BY thread_id HAVING count(*) <> 2) x")"
	prune --older-than 30d
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "the second run finishes" "0 0 0" "$(rows old-)"
}

test_07_keep_latest_keeps_the_newest_checkpoint_its_writes_and_its_blobs() {
	gen old- 10 6 "$OLD_AGE"
	gen new- 3 6 600
	local newest
	newest=$(tl_sql "SELECT string_agg(m, ',' ORDER BY m) FROM (SELECT max(checkpoint_id) m FROM checkpoints
		WHERE thread_id LIKE 'old-%' GROUP BY thread_id) x")
	prune --older-than 30d --strategy keep-latest
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "one checkpoint, its two blobs (messages v6, counter v3) and two writes per thread" \
		"10 20 20" "$(rows old-)"
	assertEquals "the kept ones are the newest" "$newest" \
		"$(tl_sql "SELECT string_agg(checkpoint_id, ',' ORDER BY checkpoint_id) FROM checkpoints WHERE thread_id LIKE 'old-%'")"
	assertEquals "every version a kept checkpoint names has its blob" 0 "$(tl_sql "SELECT count(*) FROM checkpoints c
		CROSS JOIN LATERAL jsonb_each_text(c.checkpoint->'channel_versions') v(channel, version)
		LEFT JOIN checkpoint_blobs b ON b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns
		 AND b.channel = v.channel AND b.version = v.version WHERE b.thread_id IS NULL")"
	assertEquals "no blob is left that no checkpoint names" 0 "$(tl_sql "SELECT count(*) FROM checkpoint_blobs b
		WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id
		 AND c.checkpoint_ns = b.checkpoint_ns AND c.checkpoint->'channel_versions'->>b.channel = b.version)")"
	assertEquals "young threads untouched" "18 27 36" "$(rows new-)"
	prune --older-than 30d --strategy keep-latest
	assertContains "a second run finds nothing to trim" "$TL_OUT" "13 scanned, 0 pruned"
}

# A thread in each form LangGraph's Python library has stored a DeltaChannel
# in (agent/prune_sql.c), and two that only look alike.
make_delta_threads() {
	local p
	for p in py-absent- py-type- py-ext8- py-snap- py-ephem-; do
		gen "$p" 1 3 "$OLD_AGE"
	done
	tl_sql "
		-- today: no value stored at all; the writes of each step hold the messages
		DELETE FROM checkpoint_blobs WHERE thread_id = 'py-absent-000001' AND channel = 'messages';
		-- its first form: blobs of type 'delta'
		UPDATE checkpoint_blobs SET type = 'delta', blob = NULL
		 WHERE thread_id = 'py-type-000001' AND channel = 'messages';
		-- its second: the msgpack extension type 8, the delta sentinel
		UPDATE checkpoint_blobs SET type = 'msgpack', blob = decode('c70008', 'hex')
		 WHERE thread_id = 'py-ext8-000001' AND channel = 'messages';
		-- a snapshot (extension type 7, inline marker true) holds the whole value: safe
		UPDATE checkpoint_blobs SET type = 'msgpack', blob = decode('c7040791a178', 'hex')
		 WHERE thread_id = 'py-snap-000001' AND channel = 'messages' AND version = '3';
		DELETE FROM checkpoint_blobs WHERE thread_id = 'py-snap-000001' AND channel = 'messages' AND version <> '3';
		UPDATE checkpoints SET checkpoint = jsonb_set(checkpoint, '{channel_values}', '{\"messages\": true}')
		 WHERE thread_id = 'py-snap-000001';
		-- an emptied ephemeral channel: a version with no value and no write behind it: safe
		UPDATE checkpoints SET checkpoint = jsonb_set(checkpoint, '{channel_versions,branch:to:agent}', '\"9\"')
		 WHERE thread_id = 'py-ephem-000001';" >/dev/null
}

test_08_keep_latest_leaves_threads_with_a_delta_channel_whole() {
	make_delta_threads
	local before
	before=$(rows py-)
	prune --older-than 30d --strategy keep-latest
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertContains "$TL_OUT" "skipped: 3 threads whose newest checkpoint needs their history"
	assertEquals "today's form: whole" "3 2 6" "$(rows py-absent-)"
	assertEquals "the 'delta' type: whole" "3 5 6" "$(rows py-type-)"
	assertEquals "the ext 8 sentinel: whole" "3 5 6" "$(rows py-ext8-)"
	assertEquals "the snapshot thread is trimmed, its snapshot kept" "1 2 2" "$(rows py-snap-)"
	assertEquals "the ephemeral thread is trimmed" "1 2 2" "$(rows py-ephem-)"
	prune --older-than 30d --strategy keep-latest --dry-run
	assertContains "the dry run says the same" "$TL_OUT" "skipped: 3 threads whose newest checkpoint needs"
	prune --older-than 30d
	assertEquals "delete removes them all, whole" "0 0 0" "$(rows py-)"
	assertNotEquals "$before" "0 0 0"
}

test_09_the_agentos_set_by_created_at() {
	tl_sql "INSERT INTO agentos.checkpoints (thread_id, checkpoint_id, step, created_at, messages_blob)
		SELECT 'a-' || t, 'a-' || t || '-' || s, s, now() - interval '40 days' + s * interval '1 minute', '[\"m\"]'
		FROM generate_series(1, 8) t, generate_series(1, 4) s;
		INSERT INTO agentos.checkpoints (thread_id, checkpoint_id, step, created_at)
		SELECT 'b-' || t, 'b-' || t || '-' || s, s, now() - s * interval '1 minute'
		FROM generate_series(1, 3) t, generate_series(1, 4) s;" >/dev/null
	prune --older-than 30d --strategy keep-latest
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "the newest row (step 4) of each old thread is kept" "8 4" \
		"$(tl_sql "SELECT count(*) || ' ' || min(step) FROM agentos.checkpoints WHERE thread_id LIKE 'a-%'")"
	assertEquals "agentos rows in the summary" 24 "$(summary_value agentos)"
	prune --older-than 30d
	assertEquals "delete takes the old threads" 0 "$(tl_sql "SELECT count(*) FROM agentos.checkpoints WHERE thread_id LIKE 'a-%'")"
	assertEquals "young threads stay" 12 "$(tl_sql "SELECT count(*) FROM agentos.checkpoints WHERE thread_id LIKE 'b-%'")"
}

test_10_expired_store_rows_go_in_batches() {
	tl_sql "INSERT INTO store (prefix, key, value, expires_at, ttl_minutes)
		SELECT 'users.' || (i % 7), 'k' || i, '{\"v\": 1}', now() - interval '1 minute', 60 FROM generate_series(1, 2500) i;
		INSERT INTO store (prefix, key, value, expires_at, ttl_minutes)
		SELECT 'users.1', 'live' || i, '{}', now() + interval '1 day', 60 FROM generate_series(1, 40) i;
		INSERT INTO store (prefix, key, value) VALUES ('users.2', 'forever', '{}')" >/dev/null
	prune --older-than 30d --dry-run
	assertEquals "rows that would expire" 2500 "$(summary_value store)"
	assertEquals "the dry run changed nothing" 2541 "$(tl_sql "SELECT count(*) FROM store")"
	tl_agent -v -c "$CONF" prune --older-than 30d --batch 50
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "the unexpired rows and the one without a TTL stay" 41 "$(tl_sql "SELECT count(*) FROM store")"
	assertContains "in batches of 1000 rows (20 x --batch): 3 transactions" "$TL_OUT" "3 transactions"
}

test_11_another_pruner_is_75_and_named() {
	gen old- 3 3 "$OLD_AGE"
	tl_session_open t7001-pruner tl_psql_super
	tl_session_sql "SELECT pg_advisory_lock(1129333063, 2);"
	tl_wait_for 10 "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 2 AND granted" ||
		fail "the prune lock was not taken"
	prune --older-than 30d
	assertEquals "exit; err: $TL_ERR" 75 "$TL_RC"
	assertContains "$TL_ERR" "another prune or retention sweep is running (pid $(tl_session_pid))"
	assertEquals "nothing deleted" "9 15 18" "$(rows old-)"
	prune --older-than 30d --dry-run
	assertEquals "a dry run needs no lock" 0 "$TL_RC"
	tl_session_close
	prune --older-than 30d
	assertEquals "afterwards it runs" 0 "$TL_RC"
}

test_12_thread_ids_ignore_the_ttl() {
	gen new- 4 3 600
	prune --thread new-000002 --thread new-000004 --thread nobody
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "the named young threads are gone" "0 0 0" "$(rows new-000002)"
	assertEquals "the other named one too" "0 0 0" "$(rows new-000004)"
	assertEquals "the others stay" "6 10 12" "$(tl_sql "SELECT (SELECT count(*) FROM checkpoints) || ' ' ||
		(SELECT count(*) FROM checkpoint_blobs) || ' ' || (SELECT count(*) FROM checkpoint_writes)")"
	assertContains "$TL_OUT" "not found: 1 of the named threads"
	assertContains "$TL_ERR" "nobody"
}

test_13_progress_in_status_and_on_a_terminal() {
	gen old- 200 2 "$OLD_AGE"
	local sock=$WORK/notify.sock log=$WORK/notify.log pid
	"$LISTEN" "$sock" >"$log" &
	pid=$!
	for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.1; done
	NOTIFY_SOCKET=$sock tl_agent -c "$CONF" prune --older-than 30d --batch 1
	kill "$pid"
	wait "$pid" 2>/dev/null
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertTrue "STATUS= lines during the run: $(head -n 3 "$log")" \
		"grep -Eq 'STATUS=prune (scanning|pruning): .* threads scanned, .* pruned' '$log'"
	assertTrue "the last STATUS= is the end: $(tail -n 1 "$log")" \
		"tail -n 1 '$log' | grep -Eq 'STATUS=finished \\(exit 0\\): prune done: 200 (of|threads)'"
	# On a terminal (script gives it one): a line rewritten in place.
	gen old- 200 2 "$OLD_AGE"
	script -qec "$TL_AGENT -c $CONF prune --older-than 30d --batch 1" "$WORK/tty.log" >/dev/null 2>&1
	assertTrue "a progress line on the terminal" "grep -aq 'threads scanned, ' '$WORK/tty.log'"
	gen old- 200 2 "$OLD_AGE"
	tl_agent -c "$CONF" prune --older-than 30d --batch 1
	assertNotContains "no progress line when stderr is not a terminal" "$TL_ERR" "threads scanned, "
}

test_14_errors_carry_their_priority_in_the_journal() {
	local err=$WORK/journal.err stream
	: >"$err"
	stream=$(stat -c '%d:%i' "$err")
	JOURNAL_STREAM=$stream "$TL_AGENT" -c "$CONF" prune --batch 0 >/dev/null 2>>"$err"
	assertEquals "usage error exit" 64 $?
	assertTrue "the error line is <3>: $(cat "$err")" "grep -q '^<3>prune: --batch 0' '$err'"
	assertEquals "every line has a priority" "" "$(grep -v '^<[0-7]>' "$err")"
}

test_15_usage_shows_tables_ages_and_the_largest_threads() {
	gen old- 12 4 "$OLD_AGE"
	gen new- 5 8 600
	gen week- 3 2 $((10 * DAY))
	gen big- 1 12 600
	tl_sql "INSERT INTO store (prefix, key, value, expires_at) VALUES ('p', 'gone', '{}', now() - interval '1 hour')" >/dev/null
	tl_agent -c "$CONF" usage
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertContains "$TL_OUT" "langgraph: 21 threads"
	assertEquals "the 30d-90d bucket" 12 "$(printf '%s\n' "$TL_OUT" | awk '$1 == "30d" && $2 == "-" { print $4; exit }')"
	assertContains "$TL_OUT" "store: 1 rows past their expires_at"
	tl_agent -c "$CONF" usage --json --top 3
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "counts, buckets, largest threads, store" "21 0 6 3 12 3 big-000001 12 1" "$(printf '%s' "$TL_OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
t = d["threads"]["langgraph"]
h = {b["label"]: b["threads"] for b in t["age_histogram"]}
top = d["largest_threads"]
print(t["count"], t["unknown_age"], h["< 1h"], h["7d - 30d"], h["30d - 90d"], len(top), top[0]["thread_id"],
      top[0]["checkpoints"], d["store"]["expired_rows"])')"
	assertEquals "every table has its sizes" "5" "$(printf '%s' "$TL_OUT" | python3 -c '
import json, sys
print(sum(1 for t in json.load(sys.stdin)["tables"] if t["exists"] and t["total_bytes"] > 0))')"
	tl_agent -c "$CONF" usage --top x
	assertEquals "a bad --top is 64" 64 "$TL_RC"
}


# prune_then_signal SIG PREFIX: a prune of many one-thread batches, stopped by
# SIG once it has deleted some of the 1,500 PREFIX threads; its exit code in
# STOP_RC, its output in STOP_OUT.
prune_then_signal() {
	local pid
	"$TL_AGENT" -c "$CONF" prune --older-than 30d --batch 1 >"$WORK/stop.out" 2>"$WORK/stop.err" &
	pid=$!
	tl_wait_for 30 "SELECT count(DISTINCT thread_id) < 1500 FROM checkpoints WHERE thread_id LIKE '$2%'" ||
		fail "prune deleted nothing in 30 s"
	kill -"$1" "$pid"
	STOP_RC=0
	wait "$pid" || STOP_RC=$?
	STOP_OUT=$(cat "$WORK/stop.out" "$WORK/stop.err")
}

test_16_a_signal_stops_prune_after_its_batch_with_130_or_143() {
	local left
	gen old- 1500 2 "$OLD_AGE"
	prune_then_signal INT old-
	assertEquals "SIGINT: exit; out: $STOP_OUT" 130 "$STOP_RC"
	assertContains "the summary says why" "$STOP_OUT" "stopped before the end: asked to stop; run prune again to go on"
	left=$(tl_sql "SELECT count(DISTINCT thread_id) FROM checkpoints WHERE thread_id LIKE 'old-%'")
	assertTrue "some threads were pruned, not all ($left left)" "[ '$left' -gt 0 ] && [ '$left' -lt 1500 ]"
	assertEquals "every thread left is whole" 0 "$(tl_sql "SELECT count(*) FROM (SELECT thread_id FROM checkpoints
		WHERE thread_id LIKE 'old-%' GROUP BY thread_id HAVING count(*) <> 2) x")"
	gen old2- 1500 2 "$OLD_AGE"
	prune_then_signal TERM old2-
	assertEquals "SIGTERM: exit; out: $STOP_OUT" 143 "$STOP_RC"
	assertContains "$STOP_OUT" "stopped before the end: asked to stop"
	prune --older-than 30d
	assertEquals "a second prune finishes: $TL_ERR" 0 "$TL_RC"
	assertEquals "and nothing old is left" "0 0 0" "$(rows old)"
}

tl_run
