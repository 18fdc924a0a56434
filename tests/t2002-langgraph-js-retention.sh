#!/bin/bash
# t2002-langgraph-js-retention: the real LangGraph JS checkpointer judges
# `checkpoint-agent prune` (tests/js/retention-judge.cjs). Threads are written
# through its own put/putWrites: several steps, channels that change at
# different steps, pending writes, a subgraph namespace, a thread of checkpoint
# format v1 (whose pending sends come from its parent's writes), and threads
# with a delta channel (no stored value; the client rebuilds it with
# getDeltaChannelHistory).
#   keep-latest  getTuple of every namespace returns exactly what it returned
#                before (checkpoint, channel values, pending writes, metadata,
#                parent), list gives one checkpoint per namespace; delta
#                threads and young threads are exactly as before; no blob is
#                left that no checkpoint names, and none a checkpoint names is
#                missing
#   delete       getTuple finds nothing of the old threads, the others are
#                untouched
#   a writer     the JS client writing to a thread while it is pruned loses
#                nothing: once during the batch statement (the re-check before
#                commit), once between the decision and the statement (the
#                re-check in the statement), and in a race with a long prune
#
# The npm packages come from tests/js/install.sh's cache, as in t2001.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

JUDGE=$TL_ROOT/tests/js/retention-judge.cjs

suite_setup() {
	NODE_PATH=$("$TL_ROOT/tests/js/install.sh") || return 1
	JS_NODE=$("$TL_ROOT/tests/js/install.sh" --node) || return 1
	export NODE_PATH JS_NODE
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	CONF=$WORK/agent.conf
	tl_agent_conf "$CONF"
	tl_agent -c "$CONF" migrate
	[ "$TL_RC" -eq 0 ] || { tl_log "migrate failed: $TL_ERR"; return 1; }
	judge --action seed --prefix old-plain- --count 4 --age-days 40 || return 1
	judge --action seed --prefix old-legacy- --count 1 --age-days 40 --kind legacy || return 1
	judge --action seed --prefix old-delta- --count 2 --age-days 40 --kind delta || return 1
	judge --action seed --prefix young- --count 3 --age-days 0.01 || return 1
	TRIM=old-plain-1,old-plain-2,old-plain-3,old-plain-4,old-legacy-1
	DELTA=old-delta-1,old-delta-2
	judge --action capture --threads "$TRIM" --file "$WORK/trim.json" || return 1
	judge --action capture --threads "$DELTA" --file "$WORK/delta.json" || return 1
	judge --action capture --threads young-1,young-2 --file "$WORK/young12.json" || return 1
	judge --action capture --threads "$TRIM,$DELTA,young-1,young-2,young-3" --file "$WORK/all.json" || return 1
}

tearDown() {
	tl_session_close
}

# judge ARGS...: the JS judge; JS_OUT (its JSON) and JS_RC, and the JSON goes to the log on failure.
judge() {
	JS_RC=0
	JS_OUT=$(PGPASSFILE=$TL_PGPASSFILE "$JS_NODE" "$JUDGE" --uri "$TL_DB_URI" "$@" 2>&1) || JS_RC=$?
	[ "$JS_RC" -eq 0 ] || tl_log "retention-judge $*: $JS_OUT"
	return "$JS_RC"
}

prune() {
	tl_agent -c "$CONF" prune "$@"
}

# count_rows LIKE: "checkpoints blobs writes" of the threads matching LIKE.
count_rows() {
	tl_sql "SELECT (SELECT count(*) FROM checkpoints WHERE thread_id LIKE '$1') || ' ' ||
		(SELECT count(*) FROM checkpoint_blobs WHERE thread_id LIKE '$1') || ' ' ||
		(SELECT count(*) FROM checkpoint_writes WHERE thread_id LIKE '$1')"
}

missing_blobs() {
	tl_sql "SELECT count(*) FROM checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.checkpoint->'channel_versions')
		v(channel, version) LEFT JOIN checkpoint_blobs b ON b.thread_id = c.thread_id
		AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.channel AND b.version = v.version
		WHERE b.thread_id IS NULL"
}

orphaned_blobs() {
	tl_sql "SELECT count(*) FROM checkpoint_blobs b WHERE NOT EXISTS (SELECT 1 FROM checkpoints c
		WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
		AND c.checkpoint->'channel_versions'->>b.channel = b.version)"
}

# orphaned_writes: writes whose checkpoint is gone, but for the __pregel_tasks
# writes of a kept v1 checkpoint's parent (its pending sends).
orphaned_writes() {
	tl_sql "SELECT count(*) FROM checkpoint_writes w WHERE NOT EXISTS (SELECT 1 FROM checkpoints c
		WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns AND c.checkpoint_id = w.checkpoint_id)
		AND NOT (w.channel = '__pregel_tasks' AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = w.thread_id
		 AND c.parent_checkpoint_id = w.checkpoint_id AND (c.checkpoint->>'v')::int < 4))"
}

test_01_the_seeded_threads_are_complete() {
	assertEquals "no blob missing before" 0 "$(missing_blobs)"
	assertEquals "no blob orphaned before" 0 "$(orphaned_blobs)"
	assertEquals "no write orphaned before" 0 "$(orphaned_writes)"
	assertEquals "old-plain-1: root 6 and subgraph 3 checkpoints" 9 \
		"$(tl_sql "SELECT count(*) FROM checkpoints WHERE thread_id = 'old-plain-1'")"
	assertEquals "delta channel: an 'empty' blob for each of its versions" 6 \
		"$(tl_sql "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = 'old-delta-1' AND channel = 'messages'
			AND type = 'empty'")"
}

test_02_keep_latest_dry_run_changes_nothing() {
	prune --older-than 30d --strategy keep-latest --dry-run
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertContains "$TL_OUT" "10 scanned, 5 would be pruned"
	judge --action verify-same --file "$WORK/all.json"
	assertEquals "every thread as the client saw it before: $JS_OUT" 0 "$JS_RC"
}

test_03_keep_latest_get_tuple_returns_exactly_what_it_did() {
	prune --older-than 30d --strategy keep-latest
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	assertContains "$TL_OUT" "10 scanned, 5 pruned"
	assertContains "$TL_OUT" "skipped: 2 threads whose newest checkpoint needs their history"
	judge --action verify-latest --file "$WORK/trim.json"
	assertEquals "getTuple per namespace unchanged, list one per namespace: $JS_OUT" 0 "$JS_RC"
	assertEquals "5 threads: root and subgraph (4), root (1)" 9 \
		"$(tl_sql "SELECT count(*) FROM checkpoints WHERE thread_id LIKE 'old-plain-%' OR thread_id LIKE 'old-legacy-%'")"
}

test_04_keep_latest_leaves_delta_threads_whole() {
	judge --action verify-same --file "$WORK/delta.json"
	assertEquals "getTuple, list and getDeltaChannelHistory as before: $JS_OUT" 0 "$JS_RC"
}

test_05_keep_latest_leaves_young_threads_alone() {
	judge --action verify-same --file "$WORK/young12.json"
	assertEquals "young threads as before: $JS_OUT" 0 "$JS_RC"
}

test_06_no_blob_orphaned_or_missing_after_keep_latest() {
	assertEquals "every version a checkpoint names has its blob" 0 "$(missing_blobs)"
	assertEquals "no blob no checkpoint names" 0 "$(orphaned_blobs)"
	assertEquals "no write without its checkpoint (but the v1 pending sends)" 0 "$(orphaned_writes)"
	assertEquals "the v1 thread keeps its parent's pending sends" 1 \
		"$(tl_sql "SELECT count(*) FROM checkpoint_writes WHERE thread_id = 'old-legacy-1' AND channel = '__pregel_tasks'")"
	prune --older-than 30d --strategy keep-latest
	assertContains "a second run has nothing to trim" "$TL_OUT" "0 pruned"
}

test_07_delete_removes_old_threads_and_nothing_else() {
	prune --older-than 30d
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	judge --action verify-gone --threads "$TRIM,$DELTA"
	assertEquals "getTuple finds none of the old threads: $JS_OUT" 0 "$JS_RC"
	assertEquals "no row of them anywhere" "0 0 0" "$(count_rows 'old-%')"
	judge --action verify-same --file "$WORK/young12.json"
	assertEquals "the others as before: $JS_OUT" 0 "$JS_RC"
}

test_08_a_thread_by_id() {
	prune --thread young-3
	assertEquals "exit; err: $TL_ERR" 0 "$TL_RC"
	judge --action verify-gone --threads young-3
	assertEquals "young-3 is gone: $JS_OUT" 0 "$JS_RC"
	judge --action verify-same --file "$WORK/young12.json"
	assertEquals "young-1 and young-2 as before: $JS_OUT" 0 "$JS_RC"
}

# hold SQL: a superuser session that runs SQL (taking a lock, in a transaction
# it leaves open) and stays open until tearDown; returns once it holds it.
hold() {
	tl_session_open t2002-holder tl_psql_super
	tl_session_sql "$1"
	tl_wait_for 20 "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 't2002-holder'
		AND state = 'idle in transaction'" || fail "the holding session did not take its lock"
}

# wait_prune_blocked: until the agent's session waits for a lock.
wait_prune_blocked() {
	tl_wait_for 20 "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'checkpoint-agent'
		AND wait_event_type = 'Lock'" || fail "prune never waited for the held lock"
}

# race_one STRATEGY THREAD LOCK_SQL: prune THREAD while LOCK_SQL holds it up,
# and let the JS client write to THREAD meanwhile.
race_one() {
	local strategy=$1 thread=$2 before out
	judge --action seed --prefix "$thread" --count 1 --age-days 40 || fail "seeding $thread"
	thread=${thread}1
	before=$(tl_sql "SELECT count(*) FROM checkpoints WHERE thread_id = '$thread'")
	hold "$3"
	out=$WORK/prune.$thread.out
	# The statement waits while node starts and writes: statement_timeout well above that.
	sed 's/connect_timeout = 5;/connect_timeout = 5; statement_timeout = 60000;/' "$CONF" >"$WORK/race.conf"
	"$TL_AGENT" -c "$WORK/race.conf" prune --thread "$thread" --strategy "$strategy" --lock-timeout 50000 \
		>"$out" 2>&1 &
	local pid=$!
	wait_prune_blocked
	# The client writes while prune waits: put (checkpoints, blobs), then putWrites.
	PGPASSFILE=$TL_PGPASSFILE "$JS_NODE" "$JUDGE" --uri "$TL_DB_URI" --action writer --threads "$thread" \
		--duration-ms 1 --file "$WORK/written.$thread" >"$WORK/writer.$thread.out" 2>&1 &
	local writer=$!
	tl_wait_for 20 "SELECT count(*) > $before FROM checkpoints WHERE thread_id = '$thread'" ||
		fail "the writer's checkpoint did not commit"
	tl_session_close
	wait "$pid"
	RACE_RC=$?
	wait "$writer"
	RACE_OUT=$(cat "$out")
	assertEquals "prune exit; $RACE_OUT" 0 "$RACE_RC"
	assertContains "$RACE_OUT" "skipped: 1 threads that received a checkpoint after the decision (left whole)"
	assertEquals "the thread keeps every checkpoint, and the new one" "$((before + 1))" \
		"$(tl_sql "SELECT count(*) FROM checkpoints WHERE thread_id = '$thread'")"
	judge --action verify-written --file "$WORK/written.$thread"
	assertEquals "what the client wrote is intact: $JS_OUT" 0 "$JS_RC"
	assertEquals "no blob missing" 0 "$(missing_blobs)"
}

test_09_a_checkpoint_written_during_the_batch_statement_survives() {
	# The statement waits on one locked write row; the client commits a new
	# checkpoint meanwhile; the re-check before commit sees it and rolls back.
	race_one delete during-stmt- "BEGIN; SELECT 1 FROM checkpoint_writes WHERE thread_id = 'during-stmt-1' FOR UPDATE;"
	race_one keep-latest during-keep- "BEGIN; SELECT 1 FROM checkpoint_writes WHERE thread_id = 'during-keep-1' FOR UPDATE;"
}

test_10_a_checkpoint_written_after_the_decision_survives() {
	# The decision is made; the batch waits for its table lock (SHARE: the
	# client's reads and put go on, its putWrites waits); the client commits
	# a checkpoint; the statement's own re-check sees it.
	race_one delete after-decision- "BEGIN; LOCK TABLE checkpoint_writes IN SHARE MODE;"
}

test_11_a_writer_racing_a_long_prune_loses_nothing() {
	tl_gen_threads fill- 300 2 3456000 || fail "generating fill threads"
	judge --action seed --prefix zz-race- --count 10 --age-days 40 || fail "seeding race threads"
	local out=$WORK/long.out threads pid writer
	threads=$(seq -s, -f 'zz-race-%g' 1 10)
	# zz-race-* come last in the walk: the writer starts after the decision.
	"$TL_AGENT" -c "$CONF" prune --older-than 30d --batch 2 >"$out" 2>&1 &
	pid=$!
	tl_wait_for 20 "SELECT count(*) < 560 FROM checkpoints WHERE thread_id LIKE 'fill-%'" ||
		fail "prune did not start on the fill threads"
	PGPASSFILE=$TL_PGPASSFILE "$JS_NODE" "$JUDGE" --uri "$TL_DB_URI" --action writer --threads "$threads" \
		--duration-ms 4000 --file "$WORK/written.long" >"$WORK/writer.long.out" 2>&1 &
	writer=$!
	wait "$pid"
	assertEquals "prune exit; $(cat "$out")" 0 $?
	wait "$writer"
	assertEquals "writer exit; $(cat "$WORK/writer.long.out")" 0 $?
	tl_log "race: $(grep -E 'pruned|skipped' "$out" | tr '\n' ' ')$(cat "$WORK/writer.long.out")"
	judge --action verify-written --file "$WORK/written.long"
	assertEquals "every checkpoint the writer committed is intact: $JS_OUT" 0 "$JS_RC"
	assertEquals "no blob missing" 0 "$(missing_blobs)"
	assertEquals "the fill threads are gone" "0 0 0" "$(count_rows 'fill-%')"
}

tl_run
