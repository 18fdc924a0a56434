#!/bin/bash
# t0004-readme-quick-start: the README's five-minute try, run as written.
#   The commands between the README's `<!-- quick-start -->` markers are
#   extracted and run, line by line as bash runs a script, by an ordinary
#   user in a copy of the tree, against a throwaway cluster. The only thing
#   the test adds is what a user brings: PGPORT for the cluster's port and a
#   ~/.pgpass for the password. So the README cannot drift from what works.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

QS_USER=nobody

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	chmod 0755 "$WORK"
	QS_HOME=$WORK/home
	QS_TREE=$WORK/tree
	mkdir -p "$QS_HOME" "$QS_TREE"
	# A copy of the tracked tree, without build output: make builds from nothing.
	git -C "$TL_ROOT" ls-files -z | (cd "$TL_ROOT" && xargs -0 cp --parents -t "$QS_TREE") || return 1
	printf 'localhost:%s:*:%s:%s\n' "$TL_PGPORT" "$TL_APP_ROLE" "$(cat "$TL_PASSWORD_FILE")" >"$QS_HOME/.pgpass"
	chmod 0600 "$QS_HOME/.pgpass"
	chown -R "$QS_USER": "$QS_HOME" "$QS_TREE"
	QS_SCRIPT=$WORK/quick-start.sh
	extract_quick_start >"$QS_SCRIPT" || return 1
	chmod 0644 "$QS_SCRIPT"
}

# extract_quick_start: the fenced block between the README's quick-start markers.
extract_quick_start() {
	awk '/^<!-- quick-start -->$/ { on = 1; next }
	     /^<!-- \/quick-start -->$/ { on = 0 }
	     on && /^```/ { fence = !fence; next }
	     on && fence { print }' "$TL_ROOT/README.md"
}

# run_quick_start: the block as the ordinary user, in the copy; output in QS_OUT.
run_quick_start() {
	QS_OUT=$(cd "$QS_TREE" && runuser -u "$QS_USER" -- env -i PATH=/usr/local/bin:/usr/bin:/bin \
		HOME="$QS_HOME" LANG=C.UTF-8 PGPORT="$TL_PGPORT" bash -e -x "$QS_SCRIPT" 2>&1)
	QS_RC=$?
}

test_01_the_readme_has_a_quick_start_of_the_agents_commands() {
	local block
	block=$(extract_quick_start)
	assertContains "block: $block" "$block" "make"
	for cmd in "checkpoint-agent migrate" "checkpoint-agent status" "checkpoint-agent check"; do
		assertContains "block: $block" "$block" "$cmd"
	done
}

test_02_every_command_of_the_quick_start_succeeds() {
	run_quick_start
	tl_log "quick start, exit $QS_RC; its last lines:"
	printf '%s\n' "$QS_OUT" | tail -n 25 | sed 's/^/#   /' >&2
	assertEquals "the quick start's exit code; output: $QS_OUT" 0 "$QS_RC"
}

test_03_it_left_the_schema_that_langgraph_expects() {
	assertEquals "checkpoint_migrations' newest version" 9 \
		"$(tl_sql "SELECT max(v) FROM public.checkpoint_migrations")"
	assertEquals "checkpoint tables" 4 "$(tl_sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
		AND tablename IN ('checkpoints', 'checkpoint_blobs', 'checkpoint_writes', 'checkpoint_migrations')")"
}

test_04_check_said_ok_and_where_it_keeps_its_state() {
	assertContains "output: $QS_OUT" "$QS_OUT" "OK - "
	assertContains "output: $QS_OUT" "$QS_OUT" "$QS_HOME/.local/state/checkpoint-agent"
	assertNotContains "output: $QS_OUT" "$QS_OUT" "UNKNOWN"
}

test_05_a_second_run_changes_nothing() {
	local before after
	before=$(tl_sql "SELECT count(*) FROM public.checkpoint_migrations")
	run_quick_start
	after=$(tl_sql "SELECT count(*) FROM public.checkpoint_migrations")
	assertEquals "exit code; output: $QS_OUT" 0 "$QS_RC"
	assertEquals "version rows" "$before" "$after"
}

tl_run
