#!/bin/bash
# t2001-langgraph-js.sh: the real LangGraph JS checkpointer
# (@langchain/langgraph-checkpoint-postgres, pinned in tests/js/package-lock.json)
# against databases that checkpoint-agent migrated: its setup() adds no row to
# checkpoint_migrations, the rows are exactly 0..9 (what the Python library
# writes), and put/putWrites/getTuple/list work through a pg.Pool and through
# a single connection, in the default schema and in a custom one. Last, a
# database the JS library set up first (v0-4) is taken to v9 by the agent,
# which reports 0-4 as applied externally.
#
# The npm packages are installed once into /var/cache/checkpoint-agent-tests/npm
# by tests/js/install.sh; the program is tests/js/langgraph-client.cjs. The
# application's password reaches node through a pgpass file ($PGPASSFILE,
# a path) and the agent's through its password_file: never a command line.
#
# Databases, all owned by the application role ai_agent:
#   langgraph_checkpoints  migrated by the agent, schema public
#   lg_checkpoints         migrated by the agent with migrations.schema = "lg"
#   js_first_checkpoints   set up by the JS library first, then by the agent

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

JS_CLIENT=$TL_ROOT/tests/js/langgraph-client.cjs
DB_PUBLIC=$TL_APP_DB
DB_LG=lg_checkpoints
DB_JS_FIRST=js_first_checkpoints
V0_TO_9=0,1,2,3,4,5,6,7,8,9

suite_setup() {
	NODE_PATH=$("$TL_ROOT/tests/js/install.sh") || return 1
	JS_NODE=$("$TL_ROOT/tests/js/install.sh" --node) || return 1
	export NODE_PATH JS_NODE
	tl_pg_start || return 1
	CONF_DIR=$(tl_tmpdir) || return 1
	local db
	for db in "$DB_LG" "$DB_JS_FIRST"; do
		tl_psql_super -d postgres -c "CREATE DATABASE $db OWNER $TL_APP_ROLE" >/dev/null || return 1
	done
	write_conf "$CONF_DIR/public.conf" "$DB_PUBLIC" public
	write_conf "$CONF_DIR/lg.conf" "$DB_LG" lg
	write_conf "$CONF_DIR/js-first.conf" "$DB_JS_FIRST" public
	# The first two databases are migrated by the agent before any test, the
	# way a server's boot does it; test_01/test_20 check those runs.
	tl_agent -c "$CONF_DIR/public.conf" migrate
	MIGRATE_PUBLIC_RC=$TL_RC MIGRATE_PUBLIC_ERR=$TL_ERR
	tl_agent -c "$CONF_DIR/lg.conf" migrate
	MIGRATE_LG_RC=$TL_RC MIGRATE_LG_ERR=$TL_ERR
}

# write_conf FILE DB SCHEMA: an agent config for database DB, langgraph set in SCHEMA.
write_conf() {
	local file=$1 db=$2 schema=$3
	TL_DB_URI="postgresql://$TL_APP_ROLE@127.0.0.1:$TL_PGPORT/$db" \
		tl_agent_conf "$file" "sets = [ \"langgraph\" ]; schema = \"$schema\";"
}

db_uri() {
	printf 'postgresql://%s@127.0.0.1:%s/%s\n' "$TL_APP_ROLE" "$TL_PGPORT" "$1"
}

# js DB SCHEMA ARGS...: run the client program; JS_OUT (its JSON), JS_ERR, JS_RC.
js() {
	local db=$1 schema=$2 err
	shift 2
	err=$(mktemp)
	JS_OUT=$(PGPASSFILE=$TL_PGPASSFILE "$JS_NODE" "$JS_CLIENT" --uri "$(db_uri "$db")" --schema "$schema" "$@" 2>"$err")
	JS_RC=$?
	JS_ERR=$(cat "$err")
	rm -f "$err"
}

# json_get EXPR: a value from JS_OUT, e.g. json_get 'r.added.join(",")'.
json_get() {
	JSON_IN=$JS_OUT "$JS_NODE" -e 'const r = JSON.parse(process.env.JSON_IN); const v = ('"$1"'); process.stdout.write(String(v));'
}

# version_rows DB SCHEMA: the v rows of checkpoint_migrations, comma-separated, read with psql.
version_rows() {
	tl_psql_super -d "$1" -c "SELECT coalesce(string_agg(v::text, ',' ORDER BY v), '') FROM \"$2\".checkpoint_migrations"
}

js_failure() {
	printf 'node exit %s\nstdout: %s\nstderr: %s' "$JS_RC" "$JS_OUT" "$JS_ERR"
}

# assert_setup_adds_no_row DB SCHEMA
assert_setup_adds_no_row() {
	local db=$1 schema=$2 before after
	before=$(version_rows "$db" "$schema")
	js "$db" "$schema" --action setup
	after=$(version_rows "$db" "$schema")
	assertEquals "setup() ran: $(js_failure)" 0 "$JS_RC"
	assertEquals "rows before setup() (psql)" "$V0_TO_9" "$before"
	assertEquals "rows after setup() (psql)" "$before" "$after"
	assertEquals "setup()'s own count: rows it added" "" "$(json_get 'r.added.join(",")')"
	assertEquals "setup()'s own view of the rows after" "$V0_TO_9" "$(json_get 'r.rows_after.join(",")')"
}

# assert_exercise DB SCHEMA CLIENT: put/putWrites/getTuple/list through CLIENT
# (pool or single), then the rows it wrote, read back with psql.
assert_exercise() {
	local db=$1 schema=$2 client=$3 thread counts
	js "$db" "$schema" --action exercise --client "$client"
	assertEquals "exercise through $client: $(js_failure)" 0 "$JS_RC"
	[ "$JS_RC" -eq 0 ] || return
	assertEquals "checks done" "put:first put:child putWrites getTuple:latest getTuple:by-id getTuple:missing list" \
		"$(json_get 'r.threads[0].checks.join(" ")')"
	thread=$(json_get 'r.threads[0].thread_id')
	counts=$(tl_psql_super -d "$db" -F ' ' -c "
		SELECT (SELECT count(*) FROM \"$schema\".checkpoints WHERE thread_id = '$thread'),
		       (SELECT count(*) FROM \"$schema\".checkpoint_blobs WHERE thread_id = '$thread'),
		       (SELECT count(*) FROM \"$schema\".checkpoint_writes WHERE thread_id = '$thread' AND task_path = '')")
	assertEquals "checkpoints, blobs, writes (with v9's task_path default) of $thread" "2 3 3" "$counts"
}

test_01_agent_migrate_public_succeeds() {
	assertEquals "migrate exit code; stderr: $MIGRATE_PUBLIC_ERR" 0 "$MIGRATE_PUBLIC_RC"
}

test_02_version_rows_are_python_0_to_9() {
	assertEquals "checkpoint_migrations rows" "$V0_TO_9" "$(version_rows "$DB_PUBLIC" public)"
}

test_03_js_setup_adds_no_row() {
	assert_setup_adds_no_row "$DB_PUBLIC" public
}

test_04_agent_verify_clean_after_js_setup() {
	js "$DB_PUBLIC" public --action setup
	assertEquals "setup(): $(js_failure)" 0 "$JS_RC"
	tl_agent -c "$CONF_DIR/public.conf" verify
	assertEquals "verify after the JS setup(); stdout: $TL_OUT stderr: $TL_ERR" 0 "$TL_RC"
}

test_05_js_through_pool() {
	assert_exercise "$DB_PUBLIC" public pool
	assertTrue "the pool used several connections: $JS_OUT" "[ \"$(json_get 'r.connections_opened')\" -ge 2 ]"
}

test_06_js_through_single_connection() {
	assert_exercise "$DB_PUBLIC" public single
	assertEquals "physical connections opened" 1 "$(json_get 'r.connections_opened')"
	assertEquals "backend pids seen" 1 "$(json_get 'r.backend_pids.length')"
	# Why a pool of one and not a bare pg.Client: the library calls
	# pool.connect() and client.release(), which a pg.Client lacks.
	js "$DB_PUBLIC" public --action raw-client
	tl_log "a bare pg.Client handed to PostgresSaver: accepted=$(json_get 'r.client_accepted'), setup(): $(json_get 'r.setup.error || "ok"')"
}

test_07_js_setup_after_exercise_still_adds_no_row() {
	# With rows in every table, a second application start changes nothing.
	assert_setup_adds_no_row "$DB_PUBLIC" public
}

test_20_agent_migrate_schema_lg_succeeds() {
	assertEquals "migrate exit code; stderr: $MIGRATE_LG_ERR" 0 "$MIGRATE_LG_RC"
}

test_21_schema_lg_rows_are_0_to_9() {
	assertEquals "lg.checkpoint_migrations rows" "$V0_TO_9" "$(version_rows "$DB_LG" lg)"
}

test_22_schema_lg_leaves_public_empty() {
	assertEquals "checkpoint tables in public" 0 \
		"$(tl_psql_super -d "$DB_LG" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'checkpoint%'")"
}

test_23_schema_lg_js_setup_adds_no_row() {
	assert_setup_adds_no_row "$DB_LG" lg
}

test_24_schema_lg_js_through_pool() {
	assert_exercise "$DB_LG" lg pool
}

test_25_schema_lg_js_through_single_connection() {
	assert_exercise "$DB_LG" lg single
	assertEquals "physical connections opened" 1 "$(json_get 'r.connections_opened')"
}

test_30_js_setup_first_writes_0_to_4() {
	js "$DB_JS_FIRST" public --action setup
	assertEquals "setup() on an empty database: $(js_failure)" 0 "$JS_RC"
	assertEquals "rows the JS library wrote" "0,1,2,3,4" "$(version_rows "$DB_JS_FIRST" public)"
}

test_31_js_first_then_agent_migrate_reaches_v9() {
	tl_agent -c "$CONF_DIR/js-first.conf" migrate
	assertEquals "migrate after the JS setup(); stderr: $TL_ERR" 0 "$TL_RC"
	assertEquals "rows after migrate" "$V0_TO_9" "$(version_rows "$DB_JS_FIRST" public)"
	tl_agent -c "$CONF_DIR/js-first.conf" verify
	assertEquals "verify; stdout: $TL_OUT stderr: $TL_ERR" 0 "$TL_RC"
}

test_32_js_first_status_shows_0_to_4_applied_externally() {
	local line
	tl_agent -c "$CONF_DIR/js-first.conf" status
	assertEquals "status exit (nothing pending, no drift); stdout: $TL_OUT stderr: $TL_ERR" 0 "$TL_RC"
	# e.g. "applied externally (by the application's setup(), ...): 0 1 2 3 4";
	# only the numbers after the last colon are held to.
	line=$(printf '%s\n' "$TL_OUT" | grep -i 'externally' | head -n 1)
	assertContains "status mentions versions applied externally: $TL_OUT" "$line" "externally"
	assertEquals "versions listed as applied externally: $line" "0 1 2 3 4" \
		"$(printf '%s\n' "$line" | sed 's/.*://' | grep -oE '[0-9]+' | tr '\n' ' ' | sed 's/ $//')"
}

test_33_js_first_status_json_lists_0_to_4_external() {
	tl_agent -c "$CONF_DIR/js-first.conf" status --json
	assertEquals "status --json exit; stderr: $TL_ERR" 0 "$TL_RC"
	# The langgraph set's list whose key says "external".
	JS_OUT=$TL_OUT
	assertEquals "external versions in status --json: $TL_OUT" "0,1,2,3,4" "$(json_get '
		r.sets.filter((s) => s.name === "langgraph").map((s) =>
			Object.keys(s).filter((k) => /extern/i.test(k)).map((k) => s[k].join(",")).join(";")).join("|")')"
}

test_34_js_first_js_works_after_migrate() {
	assert_setup_adds_no_row "$DB_JS_FIRST" public
	assert_exercise "$DB_JS_FIRST" public pool
}

tl_run
