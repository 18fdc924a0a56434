/*
 * step.c: one version's file, run with its bookkeeping.
 *
 * Going down, a DROP TABLE of a table that still holds rows becomes a move
 * into the quarantine schema, unless --purge was given: a rollback never
 * destroys data silently.
 */
#include "step.h"
#include "agent.h"
#include "db.h"
#include "ledger.h"
#include "log.h"
#include "sqlsplit.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct config *session_cfg;

int step_prepare_session(PGconn *conn, const struct config *cfg)
{
	session_cfg = cfg;
	return db_exec(conn, "SET statement_timeout = 0; SET lock_timeout = 0;"
			     " SET client_connection_check_interval = '2s'");
}

static int step_failed(PGconn *conn, const struct sql_file *f, const char *why)
{
	log_error("%s v%d %s (%s) failed: %s", f->set, f->version, f->direction, f->name, why);
	if (db_lost(conn))
		return EXIT_UNREACHABLE;
	log_error("nothing of %s v%d was committed; fix the cause and run the command again", f->set, f->version);
	return EXIT_STEP;
}

/* The bookkeeping of a step whose statements ran outside a transaction failed. */
static int bookkeeping_failed(PGconn *conn, const struct sql_file *f, const char *why)
{
	log_error("%s v%d %s (%s): its statements took effect, but recording them failed: %s",
		  f->set, f->version, f->direction, f->name, why);
	if (db_lost(conn))
		return EXIT_UNREACHABLE;
	log_error("run the command again: the statements are idempotent and the version is recorded then");
	return EXIT_STEP;
}

/* Set when a statement gave up waiting for a lock (SQLSTATE 55P03, lock_timeout). */
static bool lock_wait_gave_up;

/* Runs SQL; on error returns the server's reason (caller frees), else NULL. */
static char *exec_reason(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	char *why = NULL;

	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

		lock_wait_gave_up = lock_wait_gave_up || (state != NULL && strcmp(state, "55P03") == 0);
		why = db_error_text(res, conn);
	}
	PQclear(res);
	return why;
}

static void rollback_quietly(PGconn *conn)
{
	PGresult *res = PQexec(conn, "ROLLBACK");

	PQclear(res);
}

/* Rows in SCHEMA.TABLE: -1 when the table does not exist, -2 on error. */
static long long table_rows(PGconn *conn, const char *schema, const char *table)
{
	const char *params[2] = { schema, table };
	PGresult *res = db_query(conn, "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
				 2, params);
	char *qs, *qt, *sql;
	long long n;

	if (res == NULL)
		return -2;
	n = strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 0 : -1;
	PQclear(res);
	if (n < 0)
		return -1;
	qs = db_ident(conn, schema);
	qt = db_ident(conn, table);
	sql = xasprintf("SELECT count(*) FROM %s.%s", qs, qt);
	PQfreemem(qs);
	PQfreemem(qt);
	res = db_query(conn, sql, 0, NULL);
	free(sql);
	if (res == NULL)
		return -2;
	n = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return n;
}

/* The statement that replaces "DROP TABLE t" for one table; NULL on error (reason in *why). */
static char *drop_or_quarantine(PGconn *conn, const char *schema, const char *table,
				const char *version_table, const struct down_ctx *down, char **why)
{
	long long rows = table_rows(conn, schema, table);
	char *qs, *qt, *sql;

	if (rows == -2) {
		*why = xstrdup("could not count the rows of a table to drop");
		return NULL;
	}
	qs = db_ident(conn, schema);
	qt = db_ident(conn, table);
	if (rows <= 0 || down->purge || (version_table != NULL && strcmp(table, version_table) == 0)) {
		if (rows > 0 && down->purge && !down->quiet)
			log_warning("--purge: dropping %s.%s and its %lld rows", schema, table, rows);
		sql = xasprintf("DROP TABLE IF EXISTS %s.%s", qs, qt);
	} else {
		char *note = xasprintf("quarantined by checkpoint-agent rollback from %s.%s, holding %lld rows; "
				       "see README, \"Restoring a quarantined table\"", schema, table, rows);
		char *lit = db_literal(conn, note);
		char *qq = db_ident(conn, down->quarantine);
		sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s; ALTER TABLE %s.%s SET SCHEMA %s; "
				"COMMENT ON TABLE %s.%s IS %s", qq, qs, qt, qq, qq, qt, lit);
		PQfreemem(qq);
		PQfreemem(lit);
		free(note);
		if (down->dry_run)
			printf("-- %s.%s holds %lld rows: it moves to schema %s instead of being dropped\n",
			       schema, table, rows, down->quarantine);
		else if (!down->quiet)
			log_warning("%s.%s holds %lld rows: moved to %s.%s instead of dropping it "
				    "(README: \"Restoring a quarantined table\")",
				    schema, table, rows, down->quarantine, table);
	}
	PQfreemem(qs);
	PQfreemem(qt);
	return sql;
}

/* Runs one statement of a down file, with DROP TABLE turned into quarantine where needed. */
static char *run_down_statement(PGconn *conn, const char *schema, const char *version_table,
				const char *stmt, const struct down_ctx *down)
{
	struct strlist tables;
	char *why = NULL;

	sl_init(&tables);
	if (!sql_dropped_tables(stmt, &tables)) {
		sl_free(&tables);
		if (down->dry_run) {
			printf("%s;\n", stmt);
			return NULL;
		}
		return exec_reason(conn, stmt);
	}
	for (size_t i = 0; i < tables.n && why == NULL; i++) {
		char *sql = drop_or_quarantine(conn, schema, tables.items[i], version_table, down, &why);

		if (sql == NULL)
			break;
		if (down->dry_run)
			printf("%s;\n", sql);
		else
			why = exec_reason(conn, sql);
		free(sql);
	}
	sl_free(&tables);
	return why;
}

/* The version table's row for F: inserted going up, deleted going down. */
static char *bookkeep_version(PGconn *conn, const struct config *cfg, const struct set_def *set,
			      const struct sql_file *f)
{
	const char *schema = set_schema_name(set, cfg);
	char v[16], *qs, *qt, *sql, *why = NULL;
	const char *params[1] = { v };
	PGresult *res;

	snprintf(v, sizeof(v), "%d", f->version);
	if (table_rows(conn, schema, set->version_table) == -1)
		return NULL;	/* going down, v0 dropped it */
	qs = db_ident(conn, schema);
	qt = db_ident(conn, set->version_table);
	if (strcmp(f->direction, "up") == 0)
		sql = xasprintf("INSERT INTO %s.%s (v) VALUES ($1) ON CONFLICT (v) DO NOTHING", qs, qt);
	else
		sql = xasprintf("DELETE FROM %s.%s WHERE v = $1", qs, qt);
	PQfreemem(qs);
	PQfreemem(qt);
	res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		why = db_error_text(res, conn);
	PQclear(res);
	free(sql);
	return why;
}

static char *set_search_path(PGconn *conn, const char *schema, bool local)
{
	char *q = db_ident(conn, schema);
	char *sql = xasprintf("SET %s search_path TO %s", local ? "LOCAL" : "SESSION", q);
	char *why = exec_reason(conn, sql);

	PQfreemem(q);
	free(sql);
	return why;
}

/* Version row and ledger row, in the caller's transaction. */
static char *bookkeep(PGconn *conn, const struct config *cfg, const struct set_def *set,
		      const struct sql_file *f, const char *started)
{
	char *why = bookkeep_version(conn, cfg, set, f);

	if (why == NULL && ledger_record(conn, cfg, f, started) != 0)
		why = xstrdup("the ledger row could not be written");
	return why;
}

/* How long one DDL statement may queue for its table lock, blocking the application's queries behind it. */
#define STEP_LOCK_TIMEOUT "3s"

/* One attempt at F and its bookkeeping in a transaction; the reason it failed, or NULL. */
static char *attempt_in_transaction(PGconn *conn, const struct config *cfg, const struct set_def *set,
				    const struct sql_file *f, const struct strlist *stmts,
				    const struct down_ctx *down, const char *started)
{
	const char *schema = set_schema_name(set, cfg);
	char *why = exec_reason(conn, "BEGIN; SET LOCAL lock_timeout = '" STEP_LOCK_TIMEOUT "'");

	if (why == NULL)
		why = set_search_path(conn, schema, true);
	/* Going down, the row goes first: dropping v0's version table then finds it empty. */
	if (why == NULL && down != NULL)
		why = bookkeep_version(conn, cfg, set, f);
	for (size_t i = 0; i < stmts->n && why == NULL; i++)
		why = down ? run_down_statement(conn, schema, set->version_table, stmts->items[i], down)
			   : exec_reason(conn, stmts->items[i]);
	if (why == NULL && down == NULL)
		why = bookkeep_version(conn, cfg, set, f);
	if (why == NULL && ledger_record(conn, cfg, f, started) != 0)
		why = xstrdup("the ledger row could not be written");
	if (why == NULL)
		why = exec_reason(conn, "COMMIT");
	if (why != NULL)
		rollback_quietly(conn);
	return why;
}

/*
 * A DDL statement that waits for its table lock blocks every query queued
 * behind it, so each statement waits at most STEP_LOCK_TIMEOUT; the step is
 * then retried, with backoff, until migrations.lock_timeout has passed.
 */
int step_run_in_transaction(PGconn *conn, const struct config *cfg, const struct set_def *set,
			    const struct sql_file *f, const struct strlist *stmts, const struct down_ctx *down)
{
	long long deadline = now_ms() + (long long)cfg->lock_timeout * 1000, pause = 250;
	char *started, *why = NULL;
	int rc = 0;

	if (down != NULL && down->dry_run) {
		for (size_t i = 0; i < stmts->n && why == NULL; i++)
			why = run_down_statement(conn, set_schema_name(set, cfg), set->version_table,
						 stmts->items[i], down);
		rc = why ? step_failed(conn, f, why) : 0;
		free(why);
		return rc;
	}
	if ((started = ledger_now(conn)) == NULL)
		return step_failed(conn, f, "the database's clock could not be read");
	for (;;) {
		lock_wait_gave_up = false;
		why = attempt_in_transaction(conn, cfg, set, f, stmts, down, started);
		if (why == NULL || !lock_wait_gave_up || now_ms() + pause >= deadline)
			break;
		{
			char *msg = xasprintf("%s v%d %s waits for a lock on its tables, held by another session; "
					      "trying again (%s)", f->set, f->version, f->direction, why);

			log_warning("%s", msg);
			if (migrate_progress() != NULL)
				migrate_progress()(msg);
			free(msg);
		}
		free(why);
		sleep_ms(pause + rand() % 250);
		pause = pause * 2 < 5000 ? pause * 2 : 5000;
	}
	if (why != NULL && lock_wait_gave_up && !db_lost(conn)) {
		log_error("%s v%d %s (%s) could not get the lock on its tables within %d s "
			  "(migrations.lock_timeout): %s; end the long transactions that hold it, then run again",
			  f->set, f->version, f->direction, f->name, cfg->lock_timeout, why);
		rc = EXIT_LOCK;
	} else if (why != NULL) {
		rc = step_failed(conn, f, why);
	}
	free(why);
	free(started);
	return rc;
}

int step_run_alone(PGconn *conn, const struct config *cfg, const struct set_def *set,
		   const struct sql_file *f, const struct strlist *stmts, const struct down_ctx *down)
{
	const char *schema = set_schema_name(set, cfg);
	char *started, *why;
	bool bookkeeping = false;
	int rc = 0;

	if ((started = ledger_now(conn)) == NULL)
		return step_failed(conn, f, "the database's clock could not be read");
	why = set_search_path(conn, schema, false);
	for (size_t i = 0; i < stmts->n && why == NULL && rc == 0; i++) {
		const char *stmt = stmts->items[i];
		char *idx = down ? NULL : sql_concurrent_index_name(stmt);
		char *label = xasprintf("%s v%d (%s)", f->set, f->version, f->name);

		if (idx != NULL)
			rc = step_drop_invalid_index(conn, schema, idx, false);
		if (rc == 0 && down != NULL && !sql_is_concurrent(stmt))
			why = run_down_statement(conn, schema, set->version_table, stmt, down);
		else if (rc == 0)
			rc = exec_watched(conn, stmt, label);
		free(idx);
		free(label);
	}
	if (why == NULL && rc == 0) {
		bookkeeping = true;
		why = exec_reason(conn, "BEGIN");
		if (why == NULL)
			why = set_search_path(conn, schema, true);
		if (why == NULL)
			why = bookkeep(conn, cfg, set, f, started);
		if (why == NULL)
			why = exec_reason(conn, "COMMIT");
		if (why != NULL)
			rollback_quietly(conn);
	}
	if (why != NULL && bookkeeping)
		rc = bookkeeping_failed(conn, f, why);
	else if (why != NULL)
		rc = step_failed(conn, f, why);
	else if (rc != 0)
		rc = db_lost(conn) ? EXIT_UNREACHABLE : (rc < 0 ? EXIT_STEP : rc);
	free(why);
	free(started);
	return rc;
}

/* The down statements of F, without CONCURRENTLY, in the caller's transaction. */
static char *rehearse_version(PGconn *conn, const struct config *cfg, const struct set_def *set,
			      const struct sql_file *f, const struct down_ctx *down)
{
	const char *schema = set_schema_name(set, cfg);
	struct strlist stmts;
	char *why = bookkeep_version(conn, cfg, set, f);

	sl_init(&stmts);
	sql_split(f->sql, &stmts);
	for (size_t i = 0; i < stmts.n && why == NULL; i++) {
		char *sql = sql_without_concurrently(stmts.items[i]);

		why = run_down_statement(conn, schema, set->version_table, sql, down);
		free(sql);
	}
	sl_free(&stmts);
	return why;
}

int step_rehearse_down(PGconn *conn, const struct config *cfg, const struct set_def *set,
		       const struct set_state *st, int to, const struct down_ctx *down)
{
	struct down_ctx quiet = *down;
	char *why;
	int rc = 0, at = -1;

	quiet.quiet = true;
	quiet.dry_run = false;
	why = exec_reason(conn, "BEGIN; SET LOCAL lock_timeout = '5s'");
	if (why == NULL)
		why = set_search_path(conn, set_schema_name(set, cfg), true);
	for (int v = st->recorded; v > to && why == NULL; v--) {
		const struct sql_file *f = set_file(set, v, false);

		if (!st->applied[v])
			continue;
		at = v;
		if (f == NULL)
			why = xstrdup("it has no down file in this build of the agent");
		else
			why = rehearse_version(conn, cfg, set, f, &quiet);
	}
	rollback_quietly(conn);
	if (why != NULL) {
		log_error("rollback refused, nothing was changed: %s v%d down would fail: %s", set->name, at, why);
		rc = db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
	}
	free(why);
	return rc;
}

/* 1 when index NAME in SCHEMA exists and is INVALID, 0 when not, -1 on error. */
int step_index_is_invalid(PGconn *conn, const char *schema, const char *name)
{
	const char *params[2] = { schema, name };
	PGresult *res = db_query(conn,
		"SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
		" JOIN pg_namespace n ON n.oid = c.relnamespace"
		" WHERE n.nspname = $1 AND c.relname = $2 AND NOT i.indisvalid", 2, params);
	int invalid;

	if (res == NULL)
		return -1;
	invalid = PQntuples(res) == 1;
	PQclear(res);
	return invalid;
}

/* Drops index NAME in SCHEMA when it is INVALID, the trace of an interrupted build. */
int step_drop_invalid_index(PGconn *conn, const char *schema, const char *name, bool dry_run)
{
	int invalid = step_index_is_invalid(conn, schema, name);
	char *qs, *qn, *sql;
	int rc;

	if (invalid <= 0)
		return invalid;
	qs = db_ident(conn, schema);
	qn = db_ident(conn, name);
	sql = xasprintf("DROP INDEX CONCURRENTLY IF EXISTS %s.%s", qs, qn);
	PQfreemem(qs);
	PQfreemem(qn);
	if (dry_run) {
		printf("-- index %s.%s is INVALID (an earlier build was interrupted): it is dropped and built again\n%s;\n",
		       schema, name, sql);
		free(sql);
		return 0;
	}
	log_warning("index %s.%s is INVALID, left by an interrupted build: dropping it to build it again",
		    schema, name);
	rc = exec_watched(conn, sql, name);
	free(sql);
	return rc;
}

/* Who the running statement of backend PID waits for, one line each, via a second connection. */
static void report_blockers(PGconn *side, int pid, const char *what, long long waited_s)
{
	char pidtxt[16];
	const char *params[1] = { pidtxt };
	PGresult *res;

	snprintf(pidtxt, sizeof(pidtxt), "%d", pid);
	res = db_query(side,
		/* Another role's state and times are NULL unless we have pg_read_all_stats: say so. */
		"SELECT a.pid, coalesce(a.state, 'not visible to role ' || current_user || ' without pg_read_all_stats'),"
		" coalesce(a.usename::text, '?'), coalesce(a.application_name, ''),"
		" coalesce(extract(epoch FROM now() - a.xact_start)::bigint::text, '?')"
		" FROM pg_stat_activity a"
		" WHERE a.pid = ANY (pg_blocking_pids($1::int))"
		" OR a.pid = (SELECT current_locker_pid FROM pg_stat_progress_create_index WHERE pid = $1::int)",
		1, params);
	if (res == NULL)
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		char *msg = xasprintf("%s has waited %lld s for pid %s (state \"%s\", user %s, application \"%s\", "
				      "transaction open %s s): a concurrent index build waits for every older "
				      "transaction; end it, e.g. SELECT pg_terminate_backend(%s)",
				      what, waited_s, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				      PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
				      PQgetvalue(res, i, 0));

		log_warning("%s", msg);
		if (migrate_progress() != NULL)
			migrate_progress()(msg);
		free(msg);
	}
	if (PQntuples(res) == 0 && migrate_progress() != NULL) {
		char *msg = xasprintf("%s is running for %lld s", what, waited_s);

		migrate_progress()(msg);
		free(msg);
	}
	PQclear(res);
}

/* Waits for the result of the statement sent on CONN, reporting blockers every 5 s. */
static int wait_watched(PGconn *conn, const char *what, char **why)
{
	long long start = now_ms(), last = start;
	PGconn *side = NULL;
	int rc = 0, pid = PQbackendPID(conn);

	while (PQisBusy(conn)) {
		struct pollfd pfd = { PQsocket(conn), POLLIN, 0 };

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			break;
		if (PQconsumeInput(conn) == 0)
			break;
		if (now_ms() - last >= 5000 && PQisBusy(conn)) {
			int crc;
			char *cwhy = NULL;

			if (side == NULL)
				side = db_connect_quiet(session_cfg, &crc, &cwhy);
			free(cwhy);
			if (side != NULL)
				report_blockers(side, pid, what, (now_ms() - start) / 1000);
			last = now_ms();
		}
	}
	for (PGresult *res; (res = PQgetResult(conn)) != NULL; PQclear(res)) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
		    *why == NULL) {
			*why = db_error_text(res, conn);
			rc = -1;
		}
	}
	if (rc == 0 && db_lost(conn)) {
		*why = db_error_text(NULL, conn);
		rc = -1;
	}
	if (side != NULL)
		PQfinish(side);
	return rc;
}

int exec_watched(PGconn *conn, const char *sql, const char *what)
{
	char *why = NULL;

	if (PQsendQuery(conn, sql) == 0) {
		log_error("%s: the statement could not be sent: %s", what, PQerrorMessage(conn));
		return db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
	}
	if (wait_watched(conn, what, &why) == 0)
		return 0;
	log_error("%s failed: %s", what, why ? why : "unknown error");
	free(why);
	return db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
}
