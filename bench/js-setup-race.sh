#!/bin/bash
# js-setup-race.sh: what happens when eight application instances start at
# once on an empty database, each calling the LangGraph JS checkpointer's
# setup() (no lock, no transaction), beside eight `checkpoint-agent migrate`
# doing the same job. A measurement for the README, not a test: it prints
# figures and never fails on them.
#
#   bench/js-setup-race.sh [ROUNDS]        (default 5 rounds)
#
# Environment: CPA_RACE_N (concurrent processes, default 8),
# TL_AGENT (the agent binary, default agent/checkpoint-agent; build it with make).
#
# Each round uses two fresh databases in one throwaway cluster (tests/lib):
#   JS:    N node processes (tests/js/langgraph-client.cjs --action setup)
#          load their modules and open their connection, say so (--ready-file),
#          and are then released together by SIGUSR2, so that node's start-up
#          time does not spread them out. Wall time runs from the release to
#          the last setup() returning.
#   agent: N `checkpoint-agent migrate` started together (a C binary starts in
#          a few ms). Wall time runs from the first launch to the last exit.
# Per round it prints how many succeeded, the distinct errors, the wall time,
# and the versions left in checkpoint_migrations.
#
# Exit codes: 0 the measurement ran, 1 it could not run (cluster, npm, agent).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib/test-lib.sh
. "$ROOT/tests/lib/test-lib.sh"

ROUNDS=${1:-5}
N=${CPA_RACE_N:-8}
JS_CLIENT=$ROOT/tests/js/langgraph-client.cjs

now_ms() {
	date +%s%3N
}

fail() {
	echo "js-setup-race: $*" >&2
	exit 1
}

db_uri() {
	printf 'postgresql://%s@127.0.0.1:%s/%s\n' "$TL_APP_ROLE" "$TL_PGPORT" "$1"
}

create_db() {
	tl_psql_super -d postgres -c "CREATE DATABASE $1 OWNER $TL_APP_ROLE" >/dev/null
}

version_rows() {
	tl_psql_super -d "$1" -c "SELECT coalesce(string_agg(v::text, ',' ORDER BY v), '') FROM checkpoint_migrations" 2>/dev/null ||
		echo "(no checkpoint_migrations)"
}

# race_js ROUND: N concurrent setup() on a fresh database; prints one summary line.
race_js() {
	local round=$1 db="race_js_$1" dir go_at i waited=0 pids=()
	create_db "$db"
	dir=$WORK/js-$round
	mkdir -p "$dir"
	for i in $(seq 1 "$N"); do
		PGPASSFILE=$TL_PGPASSFILE "$JS_NODE" "$JS_CLIENT" --uri "$(db_uri "$db")" --action setup \
			--ready-file "$dir/$i.ready" >"$dir/$i.json" 2>"$dir/$i.err" &
		pids+=("$!")
	done
	# The barrier: every process has loaded its modules and opened its
	# connection; then all are released within a millisecond or so.
	while [ "$(find "$dir" -name '*.ready' | wc -l)" -lt "$N" ]; do
		waited=$((waited + 1))
		[ "$waited" -lt 600 ] || { kill "${pids[@]}" 2>/dev/null || true; fail "the node processes did not get ready in 60 s; see $dir"; }
		sleep 0.1
	done
	go_at=$(now_ms)
	kill -USR2 "${pids[@]}"
	wait "${pids[@]}" || true
	# shellcheck disable=SC2016 # JavaScript, not shell
	GO_AT=$go_at ROWS=$(version_rows "$db") "$JS_NODE" -e '
		const fs = require("fs");
		const dir = process.argv[1];
		const runs = fs.readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => {
			try { return JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8")); } catch (e) { return { ok: false, error: { message: "no JSON output" } }; }
		});
		const ok = runs.filter((r) => r.setup_ok).length;
		const errors = [...new Set(runs.filter((r) => !r.setup_ok).map((r) => (r.setup_error || r.error || {}).message))];
		const wall = Math.max(...runs.map((r) => r.setup_finished_at || 0)) - Number(process.env.GO_AT);
		const spread = Math.max(...runs.map((r) => r.setup_started_at || 0)) - Math.min(...runs.map((r) => r.setup_started_at || Infinity));
		console.log(`js    round ${process.argv[2]}: ${ok}/${runs.length} setup() ok, wall ${wall} ms` +
			` (start spread ${spread} ms), rows [${process.env.ROWS}]` +
			`${errors.length ? `, errors: ${errors.join(" | ")}` : ""}`);
	' "$dir" "$round"
}

# race_agent ROUND: N concurrent `checkpoint-agent migrate`; prints one summary line.
race_agent() {
	local round=$1 db="race_agent_$1" dir conf t0 t1 i ok=0 codes=()
	create_db "$db"
	dir=$WORK/agent-$round
	mkdir -p "$dir"
	conf=$dir/agent.conf
	TL_DB_URI=$(db_uri "$db") tl_agent_conf "$conf" 'sets = [ "langgraph" ];'
	local pids=()
	t0=$(now_ms)
	for i in $(seq 1 "$N"); do
		"$TL_AGENT" -c "$conf" migrate >"$dir/$i.out" 2>"$dir/$i.err" &
		pids+=("$!")
	done
	for i in "${!pids[@]}"; do
		if wait "${pids[$i]}"; then
			codes+=(0)
			ok=$((ok + 1))
		else
			codes+=("$?")
		fi
	done
	t1=$(now_ms)
	printf 'agent round %s: %s/%s migrate ok (exit codes %s), wall %s ms, rows [%s]\n' \
		"$round" "$ok" "$N" "${codes[*]}" "$((t1 - t0))" "$(version_rows "$db")"
}

main() {
	local round
	[ -x "$TL_AGENT" ] || fail "no agent binary at $TL_AGENT; run make"
	NODE_PATH=$("$ROOT/tests/js/install.sh") || fail "the npm packages did not install"
	JS_NODE=$("$ROOT/tests/js/install.sh" --node) || fail "no Node.js 20 could be had"
	export NODE_PATH JS_NODE
	trap tl_cleanup EXIT
	TL_PG_MAX_CONNECTIONS=$((N * 3 + 20)) tl_pg_start || fail "the throwaway PostgreSQL cluster did not start"
	WORK=$(tl_tmpdir)
	echo "# $N concurrent starts on an empty database, $ROUNDS rounds; $(nproc) cores; node $("$JS_NODE" --version);" \
		"PostgreSQL $("$TL_PGBIN/postgres" --version | awk '{print $3}')"
	for round in $(seq 1 "$ROUNDS"); do
		race_js "$round"
		race_agent "$round"
	done
}

main "$@"
