/*
 * migrate.c: `migrate`, applying versions under the migration lock.
 *
 * A version's statements, its row in the set's version table and its ledger
 * row commit in one transaction. A file marked "-- checkpoint-agent:
 * no-transaction" (CREATE INDEX CONCURRENTLY cannot run in a transaction)
 * runs statement by statement, and the bookkeeping follows in a transaction
 * of its own. An index that an interrupted build left INVALID is dropped and
 * built again.
 */
#include "migrate.h"
#include "agent.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "db_role.h"
#include "leader.h"
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
	sql = schema && table ? xasprintf("SELECT v FROM %s.%s ORDER BY v", schema, table) : NULL;
	PQfreemem(schema);
	PQfreemem(table);
	res = sql ? db_query(conn, sql, 0, NULL) : NULL;
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
	if ((ident = db_ident(conn, name)) == NULL)
		return -1;
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

/* Runs one up file. Returns 0 or an agent_err. */
static int apply_version(struct step_ctx *ctx, PGconn *conn, const struct set_def *set, int v, bool dry_run)
{
	const struct sql_file *f = set_file(set, v, true);
	const char *schema = set_schema_name(set, ctx->cfg);
	struct strlist stmts;
	unsigned flags = 0;
	int rc;

	if (f == NULL) {
		log_error("%s v%d has no up file in this build of the agent", set->name, v);
		return AERR_FAIL;
	}
	sl_init(&stmts);
	if ((rc = step_load_file(f, &stmts, &flags)) != 0) {
		sl_free(&stmts);
		return rc;
	}
	if (dry_run) {
		printf("-- %s v%d %s (%s, sha256 %s) in schema %s\n", set->name, v, f->name,
		       flags & SQL_NO_TRANSACTION ? "outside a transaction" : "in one transaction", f->sha256, schema);
		for (size_t i = 0; i < stmts.n && rc == 0; i++) {
			char *idx = sql_concurrent_index_name(stmts.items[i]);

			if (idx != NULL)
				rc = step_drop_invalid_index(ctx, conn, schema, idx, true);
			free(idx);
			printf("%s;\n", stmts.items[i]);
		}
		printf("\n");
		sl_free(&stmts);
		return rc;
	}

	log_info("applying %s v%d (%s)", set->name, v, f->name);
	if (flags & SQL_NO_TRANSACTION)
		rc = step_run_alone(ctx, conn, set, f, &stmts, NULL);
	else
		rc = step_run_in_transaction(ctx, conn, set, f, &stmts, NULL);
	sl_free(&stmts);
	return rc;
}

/* Drops the INVALID index IDX of version V and builds it again with STMT. */
static int rebuild_index(struct step_ctx *ctx, PGconn *conn, const struct sql_file *f, const char *schema,
			 const char *idx, const char *stmt)
{
	char *q = db_ident(conn, schema), *label, *why = NULL;
	int rc;

	if (q == NULL)
		return AERR_FAIL;
	log_warning("%s v%d is recorded, but its index %s.%s is INVALID: building it again", f->set, f->version,
		    schema, idx);
	label = xasprintf("%s v%d (%s), rebuilding %s", f->set, f->version, f->name, idx);
	rc = step_drop_invalid_index(ctx, conn, schema, idx, false);
	if (rc == 0) {
		char *sql = xasprintf("SET search_path TO %s", q);

		why = step_exec(ctx, conn, sql, 0, NULL, NULL, NULL);
		free(sql);
	}
	if (rc == 0 && why == NULL)
		why = step_exec(ctx, conn, stmt, 0, NULL, label, NULL);
	if (rc == 0 && why != NULL) {
		rc = step_fail_code(ctx, conn);
		if (rc != AERR_STOPPED)
			log_error("%s failed: %s", label, why);
	}
	free(why);
	free(label);
	PQfreemem(q);
	return rc;
}

/*
 * An index that a recorded version builds CONCURRENTLY but that is INVALID
 * now (a failed REINDEX CONCURRENTLY, a build by hand that was interrupted)
 * is dropped and built again with the version's own statement: what verify
 * tells the operator to run migrate for. Returns 0 or an agent_err.
 */
static int rebuild_invalid_indexes(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
				   const struct set_state *st, bool dry_run)
{
	const char *schema = set_schema_name(set, ctx->cfg);
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
				rc = step_fail_code(ctx, conn);
			} else if (invalid && dry_run) {
				printf("-- %s v%d is recorded, but its index is INVALID: built again\n", set->name, v);
				rc = step_drop_invalid_index(ctx, conn, schema, idx, true);
				printf("SET search_path TO %s;\n%s;\n\n", schema, stmts.items[i]);
			} else if (invalid) {
				rc = rebuild_index(ctx, conn, f, schema, idx, stmts.items[i]);
			}
			free(idx);
		}
		sl_free(&stmts);
	}
	return rc;
}

/* Applies the pending versions of SET up to TO. QUIET says "nothing to apply" only in debug. */
static int migrate_set(struct step_ctx *ctx, PGconn *conn, const struct set_def *set, int to, bool dry_run,
		       bool quiet)
{
	struct set_state st;
	int rc = 0, applied = 0;

	if (ensure_schema(conn, set_schema_name(set, ctx->cfg), dry_run) != 0)
		return step_fail_code(ctx, conn);
	if (set_read_state(conn, ctx->cfg, set, &st) != 0) {
		set_state_free(&st);
		return step_fail_code(ctx, conn);
	}
	if (to > st.latest)
		to = st.latest;
	rc = rebuild_invalid_indexes(ctx, conn, set, &st, dry_run);
	/* Like LangGraph's setup(): every version above the highest recorded one. */
	for (int v = st.recorded + 1; v <= to && rc == 0; v++) {
		rc = apply_version(ctx, conn, set, v, dry_run);
		applied += rc == 0;
	}
	if (rc == 0 && !dry_run && applied > 0)
		log_info("%s is at version %d (%d applied)", set->name, to > st.recorded ? to : st.recorded, applied);
	else if (rc == 0 && !dry_run && quiet)
		log_debug("%s is at version %d: nothing to apply", set->name, st.recorded);
	else if (rc == 0 && !dry_run)
		log_info("%s is at version %d: nothing to apply", set->name, st.recorded);
	set_state_free(&st);
	return rc;
}

int migrate_own_set(struct step_ctx *ctx, PGconn *conn)
{
	return migrate_set(ctx, conn, &agent_set, set_latest(&agent_set), false, true);
}

/* A standby cannot take a migration: 0 on a leader, else AERR_LOCK (or AERR_UNREACHABLE, AERR_FAIL), logged. */
static int refuse_standby(PGconn *conn)
{
	int standby = leader_is_standby(conn);
	char *where;

	if (standby == 0)
		return 0;
	if (standby < 0)
		return db_lost(conn) ? AERR_UNREACHABLE : AERR_FAIL;
	where = leader_address(conn);
	log_error("%s is a standby (read-only): migrations run only on the leader; point database.uri at the "
		  "cluster with target_session_attrs=read-write", where);
	free(where);
	return AERR_LOCK;
}

int migrate_apply(struct step_ctx *ctx, PGconn *conn, const struct migrate_opts *o)
{
	const struct config *cfg = ctx->cfg;
	int rc;

	if (!o->dry_run && (rc = refuse_standby(conn)) != 0)
		return rc;
	if (!o->dry_run && (rc = lock_acquire(ctx, conn)) != 0)
		return rc;
	if (!o->dry_run && step_prepare_session(conn) != 0) {
		lock_release(conn);
		return step_fail_code(ctx, conn);
	}
	rc = migrate_set(ctx, conn, &agent_set, set_latest(&agent_set), o->dry_run, false);
	for (size_t i = 0; i < cfg->nsets && rc == 0; i++) {
		const struct set_def *set = set_find(cfg->sets[i]);

		if (o->only_set != NULL && strcmp(o->only_set, set->name) != 0)
			continue;
		rc = migrate_set(ctx, conn, set, o->has_to ? o->to : set_latest(set), o->dry_run, false);
	}
	if (!o->dry_run)
		lock_release(conn);
	return rc;
}

static const char migrate_help[] =
	"usage: checkpoint-agent migrate [--set S] [--to V] [--dry-run]\n"
	"\n"
	"Applies the pending versions of the configured sets (migrations.sets), and\n"
	"of the agent's own set, under the migration lock. It runs on the leader\n"
	"only: reaching a standby (a replica of a Patroni cluster), it reconnects\n"
	"every second for up to migrations.lock_timeout, following a multi-host\n"
	"database.uri to a new leader, then exits 75 (--dry-run reads a standby).\n"
	"\n"
	"Options:\n"
	"  -s, --set=S      only set S (langgraph, langgraph-store or agentos)\n"
	"  -t, --to=V       up to version V (needs --set when several sets are configured)\n"
	"  -n, --dry-run    print the plan and the SQL; change nothing\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit: 0 applied (or nothing to apply), 64 usage, 69 unreachable, 70 a step\n"
	"failed (nothing of it committed), 75 lock timeout or no leader within it,\n"
	"78 config, 130/143 stopped\n"
	"by SIGINT/SIGTERM (the running step rolled back).\n";

static const struct option longopts[] = {
	{ "set", required_argument, NULL, 's' },
	{ "to", required_argument, NULL, 't' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ NULL, 0, NULL, 0 }
};

const struct command_info migrate_info = { "s:t:n", longopts, migrate_help };

int cmd_migrate(const struct config *cfg, int argc, char **argv)
{
	struct migrate_opts o = { NULL, 0, false, false };
	struct step_ctx ctx;
	PGconn *conn;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+s:t:n", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((rc = cli_parse_set(cfg, optarg, &o.only_set)) != 0)
				return rc;
			break;
		case 't':
			if ((rc = cli_parse_version(optarg, 0, &o.to)) != 0)
				return rc;
			o.has_to = true;
			break;
		case 'n':
			o.dry_run = true;
			break;
		default:
			return cli_bad_option("migrate", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_bad_option("migrate", argv[optind]);
	if (o.has_to && o.only_set == NULL && cfg->nsets > 1) {
		log_error("--to needs --set when several sets are configured");
		return AERR_USAGE;
	}
	if (o.has_to && (rc = cli_check_target("migrate", o.only_set ? o.only_set : cfg->sets[0], o.to, 0)) != 0)
		return rc;
	/* A migration runs on the leader: on a standby, wait for one (leader.c); then as the owner role. */
	if ((conn = o.dry_run ? db_connect_owner(cfg, &rc) : leader_connect(cfg, &rc)) == NULL)
		return rc;
	if (!o.dry_run && (rc = db_owner_or_code(conn, cfg)) != 0) {
		PQfinish(conn);
		return rc;
	}
	if (o.dry_run) {
		char *target = db_redacted_target(cfg->uri);

		printf("-- plan of checkpoint-agent migrate on %s (dry run: nothing is changed)\n", target);
		free(target);
	}
	step_ctx_init(&ctx, cfg);
	cli_stop_on_signals(&ctx);
	rc = migrate_apply(&ctx, conn, &o);
	PQfinish(conn);
	return rc;
}
