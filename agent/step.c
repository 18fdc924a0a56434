/*
 * step.c: one version's file, run with its bookkeeping.
 *
 * Every statement runs without blocking (step_exec): while it runs, the
 * caller's alive() is called every STEP_TICK_MS, so a long but healthy wait
 * (an index build waiting for old snapshots) keeps the service's watchdog
 * fed, and a stop cancels the statement at once.
 *
 * Going down, a DROP TABLE of a table that still holds rows becomes a move
 * into the quarantine schema, unless --purge was given: a rollback never
 * destroys data silently. The table is locked (ACCESS EXCLUSIVE) before its
 * rows are counted, so no writer can add a row between the count and the drop.
 */
#include "step.h"
#include "agent.h"
#include "db.h"
#include "ledger.h"
#include "log.h"
#include "sqlsplit.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long one DDL statement may queue for its table lock, blocking the application's queries behind it. */
#define STEP_LOCK_TIMEOUT "3s"
/* The same for the rehearsal of a rollback. */
#define REHEARSAL_LOCK_TIMEOUT "5s"
/* Every this many ms, a long statement says what it waits for. */
#define REPORT_EVERY_MS 5000

/* ---- the context ---- */

void step_ctx_init(struct step_ctx *ctx, const struct config *cfg)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->cfg = cfg;
}

void step_progress(struct step_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (ctx->progress == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg != NULL)
		ctx->progress(ctx->arg, msg);
	free(msg);
}

bool step_alive(struct step_ctx *ctx)
{
	if (ctx->alive != NULL && !ctx->alive(ctx->arg))
		ctx->stopped = true;
	return !ctx->stopped;
}

bool step_sleep(struct step_ctx *ctx, long long ms)
{
	long long end = now_ms() + ms;

	while (step_alive(ctx)) {
		long long left = end - now_ms();

		if (left <= 0)
			return true;
		sleep_ms(left < STEP_TICK_MS ? left : STEP_TICK_MS);
	}
	return false;
}

int step_fail_code(const struct step_ctx *ctx, PGconn *conn)
{
	if (ctx->stopped)
		return AERR_STOPPED;
	return db_lost(conn) ? AERR_UNREACHABLE : AERR_FAIL;
}

int step_prepare_session(PGconn *conn)
{
	return db_exec(conn, "SET statement_timeout = 0; SET lock_timeout = 0;"
			     " SET client_connection_check_interval = '2s'");
}

/* ---- running a statement, watched ---- */

/* A second connection that names the sessions a long statement waits for. */
struct watch {
	PGconn *side;
	bool side_failed;
};

/* Who the running statement of backend PID waits for, one line each, via the second connection. */
static void report_blockers(struct step_ctx *ctx, struct watch *w, int pid, const char *what, long long waited_s)
{
	char pidtxt[16];
	const char *params[1] = { pidtxt };
	PGresult *res;
	int n;

	if (w->side == NULL && !w->side_failed) {
		int rc;
		char *why = NULL;

		w->side = db_connect_quiet(ctx->cfg, &rc, &why);
		if (w->side == NULL) {
			/* Said once; the wait goes on, and so do the progress reports. */
			log_warning("%s: cannot open a second connection to name the sessions it waits for: %s",
				    what, why ? why : "?");
			w->side_failed = true;
		}
		free(why);
	}
	if (w->side == NULL) {
		step_progress(ctx, "%s is running for %lld s (the sessions it waits for cannot be named)", what,
			      waited_s);
		return;
	}
	snprintf(pidtxt, sizeof(pidtxt), "%d", pid);
	res = db_query(w->side,
		/* Another role's state and times are NULL unless we have pg_read_all_stats: say so. */
		"SELECT a.pid, coalesce(a.state, 'not visible to role ' || current_user || ' without pg_read_all_stats'),"
		" coalesce(a.usename::text, '?'), coalesce(a.application_name, ''),"
		" coalesce(extract(epoch FROM now() - a.xact_start)::bigint::text, '?')"
		" FROM pg_stat_activity a"
		" WHERE a.pid = ANY (pg_blocking_pids($1::int))"
		" OR a.pid = (SELECT current_locker_pid FROM pg_stat_progress_create_index WHERE pid = $1::int)",
		1, params);
	n = res ? PQntuples(res) : 0;
	for (int i = 0; i < n; i++) {
		char *msg = xasprintf("%s has waited %lld s for pid %s (state \"%s\", user %s, application \"%s\", "
				      "transaction open %s s): a concurrent index build waits for every older "
				      "transaction; end it, e.g. SELECT pg_terminate_backend(%s)",
				      what, waited_s, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				      PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
				      PQgetvalue(res, i, 0));

		log_warning("%s", msg);
		step_progress(ctx, "%s", msg);
		free(msg);
	}
	if (n == 0)
		step_progress(ctx, "%s is running for %lld s", what, waited_s);
	PQclear(res);
}

static void cancel_statement(PGconn *conn)
{
	PGcancel *c = PQgetCancel(conn);
	char err[256];

	if (c == NULL || !PQcancel(c, err, sizeof(err)))
		log_warning("cannot cancel the running statement: %s", c ? err : "libpq gave no cancel handle");
	if (c != NULL)
		PQfreeCancel(c);
}

/* Waits for the results of what was sent on CONN. Returns NULL or the reason it failed. */
static char *wait_results(struct step_ctx *ctx, PGconn *conn, const char *label, PGresult **keep)
{
	long long start = now_ms(), last = start;
	struct watch w = { NULL, false };
	bool cancelled = false;
	char *why = NULL;

	while (PQisBusy(conn)) {
		struct pollfd pfd = { PQsocket(conn), POLLIN, 0 };

		if (poll(&pfd, 1, STEP_TICK_MS) < 0 && errno != EINTR)
			break;
		if (PQconsumeInput(conn) == 0)
			break;
		if (!cancelled && !step_alive(ctx)) {
			log_notice("stopping: cancelling the running statement");
			cancel_statement(conn);
			cancelled = true;
		}
		if (label != NULL && now_ms() - last >= REPORT_EVERY_MS && PQisBusy(conn)) {
			report_blockers(ctx, &w, PQbackendPID(conn), label, (now_ms() - start) / 1000);
			last = now_ms();
		}
	}
	for (PGresult *res; (res = PQgetResult(conn)) != NULL;) {
		ExecStatusType st = PQresultStatus(res);

		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && why == NULL) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			snprintf(ctx->sqlstate, sizeof(ctx->sqlstate), "%s", state ? state : "");
			why = db_error_text(res, conn);
		}
		if (keep != NULL && st == PGRES_TUPLES_OK && why == NULL) {
			PQclear(*keep);
			*keep = res;
		} else {
			PQclear(res);
		}
	}
	if (why == NULL && db_lost(conn)) {
		snprintf(ctx->sqlstate, sizeof(ctx->sqlstate), "08006");
		why = db_error_text(NULL, conn);
	}
	if (w.side != NULL)
		PQfinish(w.side);
	return why;
}

char *step_exec(struct step_ctx *ctx, PGconn *conn, const char *sql, int nparams, const char *const *params,
		const char *label, PGresult **res)
{
	int sent;
	char *why;

	if (res != NULL)
		*res = NULL;
	if (!step_alive(ctx))
		return xstrdup("the agent is stopping");
	sent = nparams > 0 ? PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
			   : PQsendQuery(conn, sql);
	if (sent == 0) {
		snprintf(ctx->sqlstate, sizeof(ctx->sqlstate), "08006");
		return db_error_text(NULL, conn);
	}
	why = wait_results(ctx, conn, label, res);
	if (why != NULL && res != NULL) {
		PQclear(*res);
		*res = NULL;
	}
	return why;
}

/* SQL with no label: short bookkeeping. */
static char *run(struct step_ctx *ctx, PGconn *conn, const char *sql)
{
	return step_exec(ctx, conn, sql, 0, NULL, NULL, NULL);
}

static void rollback_quietly(PGconn *conn)
{
	PGresult *res;

	if (PQtransactionStatus(conn) == PQTRANS_IDLE)
		return;
	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
}

/* ---- messages ---- */

static int step_failed(struct step_ctx *ctx, PGconn *conn, const struct sql_file *f, const char *why)
{
	int rc = step_fail_code(ctx, conn);

	if (rc == AERR_STOPPED) {
		log_notice("%s v%d %s (%s) was stopped and rolled back; nothing of it was committed",
			   f->set, f->version, f->direction, f->name);
		return rc;
	}
	log_error("%s v%d %s (%s) failed: %s", f->set, f->version, f->direction, f->name, why);
	if (rc == AERR_FAIL)
		log_error("nothing of %s v%d was committed; fix the cause and run the command again", f->set,
			  f->version);
	return rc;
}

/* A step whose statements ran outside a transaction failed after some of them took effect. */
static int alone_failed(struct step_ctx *ctx, PGconn *conn, const struct sql_file *f, const char *why,
			size_t done, bool bookkeeping)
{
	int rc = step_fail_code(ctx, conn);

	if (bookkeeping)
		log_error("%s v%d %s (%s): its statements took effect, but recording them failed: %s",
			  f->set, f->version, f->direction, f->name, why);
	else if (rc == AERR_STOPPED)
		log_notice("%s v%d %s (%s) was stopped after %zu of its statements took effect (it runs outside a "
			   "transaction); the next run does it again", f->set, f->version, f->direction, f->name, done);
	else
		log_error("%s v%d %s (%s) failed after %zu of its statements took effect (it runs outside a "
			  "transaction): %s", f->set, f->version, f->direction, f->name, done, why);
	if (rc == AERR_FAIL)
		log_error("run the command again: the statements are idempotent and the version is recorded then");
	return rc;
}

/* ---- tables to drop, or to quarantine ---- */

/* 1 when SCHEMA.TABLE exists, 0 when not, -1 on error. */
static int table_exists(PGconn *conn, const char *schema, const char *table)
{
	const char *params[2] = { schema, table };
	PGresult *res = db_query(conn, "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
				 2, params);
	int exists;

	if (res == NULL)
		return -1;
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return exists;
}

/* Rows of QS.QT (quoted); -1 on error with *why set. */
static long long count_rows(struct step_ctx *ctx, PGconn *conn, const char *qs, const char *qt, char **why)
{
	char *sql = xasprintf("SELECT count(*) FROM %s.%s", qs, qt);
	PGresult *res = NULL;
	long long n = -1;

	*why = step_exec(ctx, conn, sql, 0, NULL, NULL, &res);
	if (*why == NULL && res != NULL && PQntuples(res) == 1)
		n = atoll(PQgetvalue(res, 0, 0));
	else if (*why == NULL)
		*why = xstrdup("counting the rows gave no answer");
	PQclear(res);
	free(sql);
	return n;
}

/* The statement that moves QS.QT into the quarantine schema, with a comment saying where from. */
static char *quarantine_sql(PGconn *conn, const char *schema, const char *table, const char *qs, const char *qt,
			    long long rows, const struct down_ctx *down)
{
	char *note = xasprintf("quarantined by checkpoint-agent rollback from %s.%s, holding %lld rows; "
			       "see README, \"Restoring a quarantined table\"", schema, table, rows);
	char *lit = db_literal(conn, note), *qq = db_ident(conn, down->quarantine), *sql = NULL;

	if (lit != NULL && qq != NULL)
		sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s; ALTER TABLE %s.%s SET SCHEMA %s; "
				"COMMENT ON TABLE %s.%s IS %s", qq, qs, qt, qq, qq, qt, lit);
	PQfreemem(qq);
	PQfreemem(lit);
	free(note);
	return sql;
}

/*
 * Drops SCHEMA.TABLE, or moves it into quarantine when it holds rows. The
 * table is locked first (in the caller's transaction): a row committed
 * between the count and the drop would otherwise be lost. Returns NULL or
 * the reason it failed.
 */
static char *drop_or_quarantine(struct step_ctx *ctx, PGconn *conn, const char *schema, const char *table,
				const char *version_table, const struct down_ctx *down)
{
	int exists = table_exists(conn, schema, table);
	char *qs, *qt, *sql = NULL, *why = NULL;
	long long rows = 0;

	if (exists < 0)
		return xstrdup("could not tell whether a table to drop exists");
	if (exists == 0)
		return NULL;	/* DROP TABLE IF EXISTS of a table that is not there */
	qs = db_ident(conn, schema);
	qt = db_ident(conn, table);
	if (qs == NULL || qt == NULL) {
		why = xstrdup("a table name cannot be quoted");
		goto out;
	}
	if (!down->dry_run) {
		sql = xasprintf("LOCK TABLE %s.%s IN ACCESS EXCLUSIVE MODE", qs, qt);
		why = step_exec(ctx, conn, sql, 0, NULL, NULL, NULL);
		free(sql);
		sql = NULL;
	}
	if (why == NULL)
		rows = count_rows(ctx, conn, qs, qt, &why);
	if (why != NULL)
		goto out;
	if (rows == 0 || down->purge || (version_table != NULL && strcmp(table, version_table) == 0)) {
		if (rows > 0 && down->purge && !down->quiet)
			log_warning("--purge: dropping %s.%s and its %lld rows", schema, table, rows);
		sql = xasprintf("DROP TABLE IF EXISTS %s.%s", qs, qt);
	} else {
		sql = quarantine_sql(conn, schema, table, qs, qt, rows, down);
		if (sql == NULL)
			why = xstrdup("the quarantine statement cannot be quoted");
		else if (down->dry_run)
			printf("-- %s.%s holds %lld rows: it moves to schema %s instead of being dropped\n",
			       schema, table, rows, down->quarantine);
		else if (!down->quiet)
			log_warning("%s.%s holds %lld rows: moved to %s.%s instead of dropping it "
				    "(README: \"Restoring a quarantined table\")",
				    schema, table, rows, down->quarantine, table);
	}
	if (sql != NULL && down->dry_run)
		printf("%s;\n", sql);
	else if (sql != NULL)
		why = run(ctx, conn, sql);
out:
	free(sql);
	PQfreemem(qs);
	PQfreemem(qt);
	return why;
}

/* Runs one statement of a down file, with DROP TABLE turned into quarantine where needed. */
static char *run_down_statement(struct step_ctx *ctx, PGconn *conn, const char *schema, const char *version_table,
				const char *stmt, const struct down_ctx *down, const char *label)
{
	struct strlist schemas, tables;
	char *why = NULL;

	sl_init(&schemas);
	sl_init(&tables);
	if (!sql_dropped_tables(stmt, &schemas, &tables)) {
		if (down->dry_run)
			printf("%s;\n", stmt);
		else
			why = step_exec(ctx, conn, stmt, 0, NULL, label, NULL);
	}
	for (size_t i = 0; i < tables.n && why == NULL; i++) {
		if (tables.items[i][0] == '\0')
			why = xasprintf("cannot read the table names of \"%.200s\"; refusing it rather than dropping "
					"tables unseen", stmt);
		else
			why = drop_or_quarantine(ctx, conn, schemas.items[i][0] ? schemas.items[i] : schema,
						 tables.items[i], version_table, down);
	}
	sl_free(&schemas);
	sl_free(&tables);
	return why;
}

/* ---- bookkeeping ---- */

/* The version table's row for F: inserted going up, deleted going down. */
static char *bookkeep_version(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
			      const struct sql_file *f)
{
	const char *schema = set_schema_name(set, ctx->cfg);
	char v[16], *qs, *qt, *why;
	int exists = table_exists(conn, schema, set->version_table);

	if (exists < 0)
		return xstrdup("could not tell whether the version table exists");
	if (exists == 0)
		return NULL;	/* going down, v0 dropped it */
	snprintf(v, sizeof(v), "%d", f->version);
	qs = db_ident(conn, schema);
	qt = db_ident(conn, set->version_table);
	if (qs == NULL || qt == NULL)
		why = xstrdup("the version table's name cannot be quoted");
	else {
		const char *params[1] = { v };
		char *sql;

		if (strcmp(f->direction, "up") == 0)
			sql = xasprintf("INSERT INTO %s.%s (v) VALUES ($1) ON CONFLICT (v) DO NOTHING", qs, qt);
		else
			sql = xasprintf("DELETE FROM %s.%s WHERE v = $1", qs, qt);
		why = step_exec(ctx, conn, sql, 1, params, NULL, NULL);
		free(sql);
	}
	PQfreemem(qs);
	PQfreemem(qt);
	return why;
}

static char *set_search_path(struct step_ctx *ctx, PGconn *conn, const char *schema, bool local)
{
	char *q = db_ident(conn, schema), *sql, *why;

	if (q == NULL)
		return xstrdup("the schema name cannot be quoted");
	sql = xasprintf("SET %s search_path TO %s", local ? "LOCAL" : "SESSION", q);
	why = run(ctx, conn, sql);
	PQfreemem(q);
	free(sql);
	return why;
}

/*
 * The end of a step, in one message: going up, the version row; then the
 * ledger row; then COMMIT. Each waits for its lock like any statement, so a
 * lock timeout there is retried as one on the step's own statements.
 */
static char *finish_step(struct step_ctx *ctx, PGconn *conn, const struct set_def *set, const struct sql_file *f,
			 const char *started)
{
	char *ledger = ledger_insert_sql(conn, ctx->cfg, f, started), *qs = NULL, *qt = NULL, *sql, *why;

	if (ledger == NULL)
		return xstrdup("the ledger row cannot be quoted");
	if (strcmp(f->direction, "up") == 0) {
		qs = db_ident(conn, set_schema_name(set, ctx->cfg));
		qt = db_ident(conn, set->version_table);
		if (qs == NULL || qt == NULL) {
			PQfreemem(qs);
			PQfreemem(qt);
			free(ledger);
			return xstrdup("the version table's name cannot be quoted");
		}
		sql = xasprintf("INSERT INTO %s.%s (v) VALUES (%d) ON CONFLICT (v) DO NOTHING; %s; COMMIT", qs, qt,
				f->version, ledger);
	} else {
		sql = xasprintf("%s; COMMIT", ledger);
	}
	why = run(ctx, conn, sql);
	if (why != NULL) {
		char *w = xasprintf("recording %s v%d %s failed: %s", f->set, f->version, f->direction, why);

		free(why);
		why = w;
	}
	PQfreemem(qs);
	PQfreemem(qt);
	free(ledger);
	free(sql);
	return why;
}

/* BEGIN with the step's lock timeout and search path, in one message. */
static char *begin_step(struct step_ctx *ctx, PGconn *conn, const char *schema, const char *lock_timeout)
{
	char *q = db_ident(conn, schema), *sql, *why;

	if (q == NULL)
		return xstrdup("the schema name cannot be quoted");
	sql = xasprintf("BEGIN; SET LOCAL lock_timeout = '%s'; SET LOCAL search_path TO %s", lock_timeout, q);
	why = run(ctx, conn, sql);
	PQfreemem(q);
	free(sql);
	return why;
}

/* The database's clock now, for the ledger's started_at (caller frees); NULL on error. */
static char *db_clock(struct step_ctx *ctx, PGconn *conn)
{
	PGresult *res = NULL;
	char *why = step_exec(ctx, conn, "SELECT clock_timestamp()::text", 0, NULL, NULL, &res), *s = NULL;

	if (why == NULL && res != NULL && PQntuples(res) == 1)
		s = xstrdup(PQgetvalue(res, 0, 0));
	free(why);
	PQclear(res);
	return s;
}

/* ---- steps ---- */

int step_load_file(const struct sql_file *f, struct strlist *stmts, unsigned *flags)
{
	char *why = NULL;

	if (sql_directives(f->sql, flags, &why) != 0) {
		log_error("%s v%d %s (%s): %s", f->set, f->version, f->direction, f->name, why);
		free(why);
		return AERR_FAIL;
	}
	sql_split(f->sql, stmts);
	return 0;
}

/* One attempt at F and its bookkeeping in a transaction; the reason it failed, or NULL. */
static char *attempt_in_transaction(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
				    const struct sql_file *f, const struct strlist *stmts,
				    const struct down_ctx *down, const char *started)
{
	const char *schema = set_schema_name(set, ctx->cfg);
	char *label = xasprintf("%s v%d %s (%s)", f->set, f->version, f->direction, f->name);
	char *why = begin_step(ctx, conn, schema, STEP_LOCK_TIMEOUT);

	/* Going down, the row goes first: dropping v0's version table then finds it empty. */
	if (why == NULL && down != NULL)
		why = bookkeep_version(ctx, conn, set, f);
	for (size_t i = 0; i < stmts->n && why == NULL; i++)
		why = down ? run_down_statement(ctx, conn, schema, set->version_table, stmts->items[i], down, label)
			   : step_exec(ctx, conn, stmts->items[i], 0, NULL, label, NULL);
	if (why == NULL)
		why = finish_step(ctx, conn, set, f, started);
	if (why != NULL)
		rollback_quietly(conn);
	free(label);
	return why;
}

static int dry_run_down(struct step_ctx *ctx, PGconn *conn, const struct set_def *set, const struct sql_file *f,
			const struct strlist *stmts, const struct down_ctx *down)
{
	char *why = NULL;
	int rc;

	for (size_t i = 0; i < stmts->n && why == NULL; i++)
		why = run_down_statement(ctx, conn, set_schema_name(set, ctx->cfg), set->version_table,
					 stmts->items[i], down, NULL);
	rc = why ? step_failed(ctx, conn, f, why) : 0;
	free(why);
	return rc;
}

/*
 * A DDL statement that waits for its table lock blocks every query queued
 * behind it, so each statement waits at most STEP_LOCK_TIMEOUT; the step is
 * then retried, with backoff, until migrations.lock_timeout has passed.
 */
int step_run_in_transaction(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
			    const struct sql_file *f, const struct strlist *stmts, const struct down_ctx *down)
{
	long long deadline = now_ms() + (long long)ctx->cfg->lock_timeout * 1000;
	struct backoff b;
	char *started, *why = NULL;
	bool lock_wait = false;
	int rc = 0;

	if (down != NULL && down->dry_run)
		return dry_run_down(ctx, conn, set, f, stmts, down);
	if ((started = db_clock(ctx, conn)) == NULL)
		return step_failed(ctx, conn, f, "the database's clock could not be read");
	backoff_init(&b, 250, 5000);
	for (;;) {
		long long pause;

		ctx->sqlstate[0] = '\0';
		why = attempt_in_transaction(ctx, conn, set, f, stmts, down, started);
		lock_wait = why != NULL && strcmp(ctx->sqlstate, "55P03") == 0;
		pause = backoff_next(&b);
		if (!lock_wait || now_ms() + pause >= deadline)
			break;
		log_warning("%s v%d %s waits for a lock on its tables, held by another session; trying again (%s)",
			    f->set, f->version, f->direction, why);
		step_progress(ctx, "%s v%d %s waits for a lock on its tables, held by another session; trying again",
			      f->set, f->version, f->direction);
		free(why);
		why = NULL;
		if (!step_sleep(ctx, pause)) {
			why = xstrdup("the agent is stopping");
			break;
		}
	}
	if (why != NULL && lock_wait && !ctx->stopped && !db_lost(conn)) {
		log_error("%s v%d %s (%s) could not get the lock on its tables within %d s "
			  "(migrations.lock_timeout): %s; end the long transactions that hold it, then run again",
			  f->set, f->version, f->direction, f->name, ctx->cfg->lock_timeout, why);
		rc = AERR_LOCK;
	} else if (why != NULL) {
		rc = step_failed(ctx, conn, f, why);
	}
	free(why);
	free(started);
	return rc;
}

/* A DROP TABLE of a no-transaction file: lock, count, drop or move, in a transaction of its own. */
static char *down_statement_alone(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
				  const char *stmt, const struct down_ctx *down, const char *label)
{
	const char *schema = set_schema_name(set, ctx->cfg);
	struct strlist schemas, tables;
	bool drops;
	char *why;

	sl_init(&schemas);
	sl_init(&tables);
	drops = sql_dropped_tables(stmt, &schemas, &tables);
	sl_free(&schemas);
	sl_free(&tables);
	if (!drops)
		return step_exec(ctx, conn, stmt, 0, NULL, label, NULL);
	why = run(ctx, conn, "BEGIN; SET LOCAL lock_timeout = '" STEP_LOCK_TIMEOUT "'");
	if (why == NULL)
		why = run_down_statement(ctx, conn, schema, set->version_table, stmt, down, label);
	if (why == NULL)
		why = run(ctx, conn, "COMMIT");
	if (why != NULL)
		rollback_quietly(conn);
	return why;
}

int step_run_alone(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
		   const struct sql_file *f, const struct strlist *stmts, const struct down_ctx *down)
{
	const char *schema = set_schema_name(set, ctx->cfg);
	char *label = xasprintf("%s v%d (%s)", f->set, f->version, f->name);
	char *started, *why;
	size_t done = 0;
	int rc = 0;

	if ((started = db_clock(ctx, conn)) == NULL) {
		free(label);
		return step_failed(ctx, conn, f, "the database's clock could not be read");
	}
	why = set_search_path(ctx, conn, schema, false);
	for (size_t i = 0; i < stmts->n && why == NULL && rc == 0; i++) {
		const char *stmt = stmts->items[i];
		char *idx = down ? NULL : sql_concurrent_index_name(stmt);

		if (idx != NULL)
			rc = step_drop_invalid_index(ctx, conn, schema, idx, false);
		if (rc == 0 && down != NULL)
			why = down_statement_alone(ctx, conn, set, stmt, down, label);
		else if (rc == 0)
			why = step_exec(ctx, conn, stmt, 0, NULL, label, NULL);
		if (rc == 0 && why == NULL)
			done++;
		free(idx);
	}
	if (why == NULL && rc == 0) {
		why = begin_step(ctx, conn, schema, STEP_LOCK_TIMEOUT);
		if (why == NULL && down != NULL)
			why = bookkeep_version(ctx, conn, set, f);
		if (why == NULL)
			why = finish_step(ctx, conn, set, f, started);
		if (why != NULL) {
			rollback_quietly(conn);
			rc = alone_failed(ctx, conn, f, why, done, !ctx->stopped);
		}
	} else if (why != NULL) {
		rc = done == 0 ? step_failed(ctx, conn, f, why) : alone_failed(ctx, conn, f, why, done, false);
	}
	free(why);
	free(started);
	free(label);
	return rc;
}

/* The down statements of F, without CONCURRENTLY, in the caller's transaction. */
static char *rehearse_version(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
			      const struct sql_file *f, const struct down_ctx *down)
{
	const char *schema = set_schema_name(set, ctx->cfg);
	struct strlist stmts;
	unsigned flags;
	char *why = bookkeep_version(ctx, conn, set, f);

	sl_init(&stmts);
	if (why == NULL && step_load_file(f, &stmts, &flags) != 0)
		why = xstrdup("its file's directives cannot be read");
	for (size_t i = 0; i < stmts.n && why == NULL; i++) {
		char *sql = sql_without_concurrently(stmts.items[i]);

		why = run_down_statement(ctx, conn, schema, set->version_table, sql, down, NULL);
		free(sql);
	}
	sl_free(&stmts);
	return why;
}

int step_rehearse_down(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
		       const struct set_state *st, int to, const struct down_ctx *down)
{
	struct down_ctx quiet = *down;
	char *why;
	int rc = 0, at = -1;

	quiet.quiet = true;
	quiet.dry_run = false;
	why = begin_step(ctx, conn, set_schema_name(set, ctx->cfg), REHEARSAL_LOCK_TIMEOUT);
	for (int v = st->recorded; v > to && why == NULL; v--) {
		const struct sql_file *f = set_file(set, v, false);

		if (!st->applied[v])
			continue;
		at = v;
		if (f == NULL)
			why = xstrdup("it has no down file in this build of the agent");
		else
			why = rehearse_version(ctx, conn, set, f, &quiet);
	}
	rollback_quietly(conn);
	if (why != NULL) {
		rc = step_fail_code(ctx, conn);
		if (rc == AERR_STOPPED)
			log_notice("rollback stopped during its rehearsal; nothing was changed");
		else
			log_error("rollback refused, nothing was changed: %s v%d down would fail: %s", set->name, at,
				  why);
	}
	free(why);
	return rc;
}

/* ---- INVALID indexes ---- */

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
int step_drop_invalid_index(struct step_ctx *ctx, PGconn *conn, const char *schema, const char *name,
			    bool dry_run)
{
	int invalid = step_index_is_invalid(conn, schema, name);
	char *qs, *qn, *sql, *why;

	if (invalid <= 0)
		return invalid < 0 ? step_fail_code(ctx, conn) : 0;
	qs = db_ident(conn, schema);
	qn = db_ident(conn, name);
	sql = qs && qn ? xasprintf("DROP INDEX CONCURRENTLY IF EXISTS %s.%s", qs, qn) : NULL;
	PQfreemem(qs);
	PQfreemem(qn);
	if (sql == NULL)
		return AERR_FAIL;
	if (dry_run) {
		printf("-- index %s.%s is INVALID (an earlier build was interrupted): it is dropped and built again\n%s;\n",
		       schema, name, sql);
		free(sql);
		return 0;
	}
	log_warning("index %s.%s is INVALID, left by an interrupted build: dropping it to build it again",
		    schema, name);
	why = step_exec(ctx, conn, sql, 0, NULL, name, NULL);
	free(sql);
	if (why == NULL)
		return 0;
	if (!ctx->stopped)
		log_error("dropping the INVALID index %s.%s failed: %s", schema, name, why);
	free(why);
	return step_fail_code(ctx, conn);
}
