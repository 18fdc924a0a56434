/*
 * migrate.c: applying versions, under the migration lock.
 *
 * A version's statements, its row in the set's version table and its ledger
 * row commit in one transaction. A statement with CONCURRENTLY cannot run in
 * a transaction: it runs alone, watched (exec_watched), and the bookkeeping
 * follows in a transaction of its own. An index that an interrupted build
 * left INVALID is dropped and built again.
 */
#include "migrate.h"
#include "agent.h"
#include "commands.h"
#include "db.h"
#include "db_role.h"
#include "ledger.h"
#include "lock.h"
#include "log.h"
#include "sqlsplit.h"
#include "step.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static progress_fn progress;

void migrate_set_progress(progress_fn fn)
{
	progress = fn;
}

progress_fn migrate_progress(void)
{
	return progress;
}

int set_read_state(PGconn *conn, const struct config *cfg, const struct set_def *set, struct set_state *st)
{
	const char *params[2] = { set_schema_name(set, cfg), set->version_table };
	PGresult *res;
	char *sql, *schema, *table;

	memset(st, 0, sizeof(*st));
	st->recorded = -1;
	st->latest = set_latest(set);
	st->applied = xcalloc((size_t)st->latest + 1, sizeof(bool));
	res = db_query(conn,
		"SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),"
		" to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL", 2, params);
	if (res == NULL)
		return -1;
	st->schema_exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	st->table_exists = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (!st->table_exists)
		return 0;

	schema = db_ident(conn, params[0]);
	table = db_ident(conn, params[1]);
	sql = xasprintf("SELECT v FROM %s.%s ORDER BY v", schema, table);
	PQfreemem(schema);
	PQfreemem(table);
	res = db_query(conn, sql, 0, NULL);
	free(sql);
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		int v = atoi(PQgetvalue(res, i, 0));

		if (v >= 0 && v <= st->latest)
			st->applied[v] = true;
		if (v > st->recorded)
			st->recorded = v;
	}
	PQclear(res);
	return 0;
}

void set_state_free(struct set_state *st)
{
	free(st->applied);
	st->applied = NULL;
}

/* Creates the schema unless it exists (CREATE SCHEMA IF NOT EXISTS needs CREATE even then). */
int ensure_schema(PGconn *conn, const char *name, bool dry_run)
{
	const char *params[1] = { name };
	PGresult *res = db_query(conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, params);
	bool exists;
	char *ident, *sql;
	int rc = 0;

	if (res == NULL)
		return -1;
	exists = PQntuples(res) == 1;
	PQclear(res);
	if (exists)
		return 0;
	ident = db_ident(conn, name);
	sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s", ident);
	if (dry_run)
		printf("%s;\n", sql);
	else {
		log_info("creating schema %s", name);
		rc = db_exec(conn, sql);
	}
	free(sql);
	PQfreemem(ident);
	return rc;
}

/* Runs one up file. Returns 0, EXIT_STEP or EXIT_UNREACHABLE. */
static int apply_version(PGconn *conn, const struct config *cfg, const struct set_def *set, int v, bool dry_run)
{
	const struct sql_file *f = set_file(set, v, true);
	const char *schema = set_schema_name(set, cfg);
	struct strlist stmts;
	bool concurrent = false;
	int rc = 0;

	if (f == NULL) {
		log_error("%s v%d has no up file in this build of the agent", set->name, v);
		return EXIT_STEP;
	}
	sl_init(&stmts);
	sql_split(f->sql, &stmts);
	for (size_t i = 0; i < stmts.n; i++)
		concurrent = concurrent || sql_is_concurrent(stmts.items[i]);

	if (dry_run) {
		printf("-- %s v%d %s (%s, sha256 %s) in schema %s\n", set->name, v, f->name,
		       concurrent ? "outside a transaction" : "in one transaction", f->sha256, schema);
		for (size_t i = 0; i < stmts.n; i++) {
			char *idx = sql_concurrent_index_name(stmts.items[i]);

			if (idx != NULL)
				step_drop_invalid_index(conn, schema, idx, true);
			free(idx);
			printf("%s;\n", stmts.items[i]);
		}
		printf("\n");
		sl_free(&stmts);
		return 0;
	}

	log_info("applying %s v%d (%s)", set->name, v, f->name);
	if (concurrent)
		rc = step_run_alone(conn, cfg, set, f, &stmts, NULL);
	else
		rc = step_run_in_transaction(conn, cfg, set, f, &stmts, NULL);
	sl_free(&stmts);
	return rc;
}

/*
 * An index that a recorded version builds CONCURRENTLY but that is INVALID
 * now (a failed REINDEX CONCURRENTLY, a build by hand that was interrupted)
 * is dropped and built again with the version's own statement: what verify
 * tells the operator to run migrate for. Returns 0 or an exit code.
 */
static int rebuild_invalid_indexes(PGconn *conn, const struct config *cfg, const struct set_def *set,
				   const struct set_state *st, bool dry_run)
{
	const char *schema = set_schema_name(set, cfg);
	int rc = 0;

	for (int v = 0; v <= st->latest && rc == 0; v++) {
		const struct sql_file *f = st->applied[v] ? set_file(set, v, true) : NULL;
		struct strlist stmts;

		if (f == NULL)
			continue;
		sl_init(&stmts);
		sql_split(f->sql, &stmts);
		for (size_t i = 0; i < stmts.n && rc == 0; i++) {
			char *idx = sql_concurrent_index_name(stmts.items[i]);
			int invalid = idx != NULL ? step_index_is_invalid(conn, schema, idx) : 0;

			if (invalid < 0) {
				rc = db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
			} else if (invalid && dry_run) {
				printf("-- %s v%d is recorded, but its index is INVALID: built again\n", set->name, v);
				step_drop_invalid_index(conn, schema, idx, true);
				printf("SET search_path TO %s;\n%s;\n\n", schema, stmts.items[i]);
			} else if (invalid) {
				char *q = db_ident(conn, schema), *sql = xasprintf("SET search_path TO %s", q);
				char *label = xasprintf("%s v%d (%s), rebuilding %s", f->set, f->version, f->name, idx);

				log_warning("%s v%d is recorded, but its index %s.%s is INVALID: building it again",
					    set->name, v, schema, idx);
				rc = step_drop_invalid_index(conn, schema, idx, false);
				if (rc == 0 && db_exec(conn, sql) != 0)
					rc = -1;
				if (rc == 0)
					rc = exec_watched(conn, stmts.items[i], label);
				if (rc == -1)
					rc = db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
				PQfreemem(q);
				free(sql);
				free(label);
			}
			free(idx);
		}
		sl_free(&stmts);
	}
	return rc;
}

/* Applies the pending versions of SET up to TO. */
static int migrate_set(PGconn *conn, const struct config *cfg, const struct set_def *set, int to, bool dry_run)
{
	struct set_state st;
	int rc = 0, applied = 0;

	if (ensure_schema(conn, set_schema_name(set, cfg), dry_run) != 0)
		return db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
	if (set_read_state(conn, cfg, set, &st) != 0) {
		set_state_free(&st);
		return db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
	}
	if (to > st.latest)
		to = st.latest;
	rc = rebuild_invalid_indexes(conn, cfg, set, &st, dry_run);
	/* Like LangGraph's setup(): every version above the highest recorded one. */
	for (int v = st.recorded + 1; v <= to && rc == 0; v++) {
		rc = apply_version(conn, cfg, set, v, dry_run);
		applied += rc == 0;
	}
	if (rc == 0 && !dry_run) {
		if (applied > 0)
			log_info("%s is at version %d (%d applied)", set->name, to > st.recorded ? to : st.recorded,
				 applied);
		else
			log_info("%s is at version %d: nothing to apply", set->name, st.recorded);
	}
	set_state_free(&st);
	return rc;
}

int migrate_own_set(PGconn *conn, const struct config *cfg)
{
	return migrate_set(conn, cfg, &agent_set, set_latest(&agent_set), false);
}

int migrate_apply(PGconn *conn, const struct config *cfg, const struct migrate_opts *o)
{
	int rc;

	if (!o->dry_run && (rc = lock_acquire(conn, cfg->lock_timeout, progress)) != 0)
		return rc;
	if (!o->dry_run && step_prepare_session(conn, cfg) != 0) {
		lock_release(conn);
		return db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
	}
	rc = migrate_set(conn, cfg, &agent_set, set_latest(&agent_set), o->dry_run);
	for (size_t i = 0; i < cfg->nsets && rc == 0; i++) {
		const struct set_def *set = set_find(cfg->sets[i]);

		if (o->only_set != NULL && strcmp(o->only_set, set->name) != 0)
			continue;
		rc = migrate_set(conn, cfg, set, o->has_to ? o->to : set_latest(set), o->dry_run);
	}
	if (!o->dry_run)
		lock_release(conn);
	return rc;
}

/* Parses --set and checks it names a configured set. */
int parse_set_option(const struct config *cfg, const char *name, const char **out)
{
	if (set_find(name) == NULL || set_find(name) == &agent_set) {
		log_error("--set %s: unknown set; the sets are langgraph, langgraph-store and agentos", name);
		return EXIT_USAGE;
	}
	if (!config_has_set(cfg, name)) {
		log_error("--set %s: the set is not in migrations.sets of the config; add it there first", name);
		return EXIT_USAGE;
	}
	*out = name;
	return 0;
}

/* Parses a version number for --to; MIN is the lowest allowed. */
int parse_version_option(const char *arg, int min, int *out)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*arg == '\0' || *end != '\0' || v < min || v > 100000) {
		log_error("--to %s: not a version number (a whole number from %d)", arg, min);
		return EXIT_USAGE;
	}
	*out = (int)v;
	return 0;
}

int cmd_migrate(const struct config *cfg, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "set", required_argument, NULL, 's' },
		{ "to", required_argument, NULL, 't' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	struct migrate_opts o = { NULL, 0, false, false };
	PGconn *conn;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((rc = parse_set_option(cfg, optarg, &o.only_set)) != 0)
				return rc;
			break;
		case 't':
			if ((rc = parse_version_option(optarg, 0, &o.to)) != 0)
				return rc;
			o.has_to = true;
			break;
		case 'n':
			o.dry_run = true;
			break;
		default:
			return usage_bad_option("migrate", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_bad_option("migrate", argv[optind]);
	if (o.has_to && o.only_set == NULL && cfg->nsets > 1) {
		log_error("--to needs --set when several sets are configured");
		return EXIT_USAGE;
	}
	if ((conn = db_connect_owner(cfg, &rc)) == NULL)
		return rc;
	if (o.dry_run) {
		char *target = db_redacted_target(cfg->uri);

		printf("-- plan of checkpoint-agent migrate on %s (dry run: nothing is changed)\n", target);
		free(target);
	}
	rc = migrate_apply(conn, cfg, &o);
	PQfinish(conn);
	return rc;
}

int usage_bad_option(const char *command, const char *arg)
{
	log_error("%s: unknown or incomplete option '%s'", command, arg ? arg : "?");
	log_info("Try 'checkpoint-agent --help'.");	/* via log: the journal's prefix */
	return EXIT_USAGE;
}
