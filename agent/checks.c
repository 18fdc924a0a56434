/*
 * checks.c: runs the health checks in order on one connection (opened as the
 * configured role, with statement_timeout set by db_connect; the checks that
 * need the schema owner's rights act as database.owner_role). Each check
 * (check_*.c) sets its result: a status, a one-line message, and the
 * measured values as samples.
 *
 * A query that fails makes its check UNKNOWN (or CRITICAL where the failure
 * is the finding, as for `query` and `writable`); a lost connection makes
 * every later check UNKNOWN. Nothing here exits or prints.
 */
#include "check_probe.h"
#include "db.h"
#include "db_role.h"
#include "leader.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static check_tick_fn tick_fn;

void checks_set_tick(check_tick_fn fn)
{
	tick_fn = fn;
}

/* ---- the run ---- */

/*
 * as_owner: the check runs as database.owner_role (SET ROLE, then RESET
 * ROLE): the write probe proves what the application's role can write, and
 * the version tables and the ledger are the owner's. The others run as the
 * login role, which pg_monitor lets see every session.
 *
 * gates: the check counts for the service's readiness (READY=1 waits until no
 * such check is CRITICAL). A stale backup, a failing WAL archive, a missing
 * synchronous standby or a lagging replica is an alarm, not a reason to keep
 * the applications down: `backup`, `replication` and `wal` do not gate.
 */
static const struct {
	const char *name;
	check_fn fn;
	bool as_owner;
	bool gates;
} checks[] = {
	{ "query", check_query, false, true },
	{ "writable", check_writable, true, true },
	{ "schema", check_schema, true, true },
	{ "pool_headroom", check_pool, false, true },
	{ "idle_in_transaction", check_idle_in_transaction, false, true },
	{ "long_transactions", check_long_transactions, false, true },
	{ "lock_waits", check_lock_waits, false, true },
	{ "disk", check_disk, false, true },
	{ "size", check_size, false, true },
	{ "bloat", check_bloat, false, false },
	{ "wraparound", check_wraparound, false, true },
	{ "wal", check_wal, false, false },
	{ "backup", check_backup, false, false },
	{ "replication", check_replication, false, false },
};

/* A check that cannot run for want of a connection. */
static void check_without_connection(struct probe *p, struct check_result *r, check_fn fn)
{
	if (fn == check_disk || (fn == check_replication && node_uri_set(p->cfg))) {
		fn(p, r);
	} else if (fn == check_pool && slots_exhausted(p->cc->connect_error)) {
		result_set(r, CHECK_CRITICAL, "no connection slot is free for the application role: %s",
			   p->cc->connect_error);
	} else {
		result_set(r, CHECK_UNKNOWN, "not run: %s", p->conn ? "the connection to the database was lost" :
			   "no connection to the database");
	}
}

/* A persistent connection left in a transaction (it should not be) is brought back to idle. */
static void reset_transaction(PGconn *conn)
{
	PGresult *res;

	if (PQtransactionStatus(conn) == PQTRANS_IDLE)
		return;
	res = PQexec(conn, "ROLLBACK");
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warning("cannot end a leftover transaction: %s", PQerrorMessage(conn));
	PQclear(res);
}

/* Runs FN as the owner role; a role that cannot be had makes the check UNKNOWN. */
static void run_as_owner(struct probe *p, struct check_result *r, check_fn fn)
{
	char *why = NULL;

	if (db_become_owner(p->conn, p->cfg, &why) != 0) {
		result_set(r, CHECK_UNKNOWN, "not run: %s", why);
		free(why);
		return;
	}
	fn(p, r);
	reset_transaction(p->conn);
	if (db_leave_owner(p->conn, p->cfg, &why) != 0) {
		log_warning("cannot go back from the owner role with RESET ROLE: %s", why);
		free(why);
	}
}

/*
 * The checks' own commits (the heartbeat) do not wait for synchronous
 * standbys: a missing one would hang the run, which statement_timeout does
 * not end. The replication check reports a missing synchronous standby.
 */
static void commit_locally(PGconn *conn)
{
	PGresult *res = PQexec(conn, "SET synchronous_commit = local");

	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warning("cannot set synchronous_commit for the checks: %s", PQerrorMessage(conn));
	PQclear(res);
}

/* The check that takes each prefetched result: a query is sent only when its check runs. */
static const char *const prefetch_owner[PRE_N] = {
	[PRE_RECOVERY] = "writable",
	[PRE_SLOTS] = "pool_headroom",
	[PRE_SESSIONS] = "pool_headroom",
	[PRE_IDLE] = "idle_in_transaction",
	[PRE_XACT] = "long_transactions",
	[PRE_LOCKS] = "lock_waits",
	[PRE_WRAPAROUND] = "wraparound",
	[PRE_WAL] = "wal",
};

/* Does the check named NAME run, given SKIP (indexed as check_name; NULL: every check runs)? */
static bool check_runs(const bool *skip, const char *name)
{
	int i = check_index(name);

	return skip == NULL || i < 0 || !skip[i];
}

/*
 * Sends the parameterless queries of the checks that run as one
 * simple-query message: one round trip instead of one each, and nothing for
 * a check that --only or --skip left out. Results are kept until a failure;
 * a check whose result is missing runs its query itself (and reports its
 * error).
 */
static void prefetch(struct probe *p, const bool *skip)
{
	struct strbuf sb;
	int sent[PRE_N], n = 0, i = 0;
	bool ok = true;

	sb_init(&sb);
	for (int k = 0; k < PRE_N; k++) {
		if (!check_runs(skip, prefetch_owner[k]))
			continue;
		sb_printf(&sb, "%s;", prefetch_sql[k]);
		sent[n++] = k;
	}
	if (n == 0 || PQsendQuery(p->conn, sb.buf) == 0) {
		sb_free(&sb);
		return;
	}
	sb_free(&sb);
	for (PGresult *res; (res = PQgetResult(p->conn)) != NULL; i++) {
		ok = ok && i < n && PQresultStatus(res) == PGRES_TUPLES_OK;
		if (ok)
			p->pre[sent[i]] = res;
		else
			PQclear(res);
	}
}

static void prefetch_free(struct probe *p)
{
	for (int k = 0; k < PRE_N; k++) {
		PQclear(p->pre[k]);
		p->pre[k] = NULL;
	}
}

size_t check_count(void)
{
	return 1 + sizeof(checks) / sizeof(checks[0]);
}

const char *check_name(size_t i)
{
	if (i == 0)
		return "connect";
	return i < check_count() ? checks[i - 1].name : NULL;
}

int check_index(const char *name)
{
	for (size_t i = 0; i < check_count(); i++)
		if (strcmp(check_name(i), name) == 0)
			return (int)i;
	return -1;
}

/* Does the check named NAME count for the service's readiness? connect does. */
static bool check_gates(const char *name)
{
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if (strcmp(checks[i].name, name) == 0)
			return checks[i].gates;
	return true;
}

/* Where the state file is for this run, and what it holds; a file that cannot be read is not rewritten. */
static void state_open(struct probe *p)
{
	if (p->cfg->state_file[0] == '\0')
		return;
	p->state_path = state_path_resolve(p->cfg->state_file, &p->state_note, &p->state_error);
	if (p->state_path != NULL && state_read(p->state_path, &p->state, &p->state_error) != 0) {
		free(p->state_path);
		p->state_path = NULL;
	}
}

/* Writes the state back when a check changed it (the size samples, a clean verify), and frees it. */
static void state_close(struct probe *p)
{
	char *why = NULL;

	if (p->state_path != NULL && p->state.dirty && state_write(p->state_path, &p->state, &why) != 0)
		log_warning("%s; the growth cannot be measured", why);
	free(why);
	state_free(&p->state);
	free(p->state_path);
	free(p->state_note);
	free(p->state_error);
}

void checks_run(const struct config *cfg, const struct check_conn *cc, struct check_report *rep)
{
	checks_run_some(cfg, cc, NULL, rep);
}

void checks_run_some(const struct config *cfg, const struct check_conn *cc, const bool *skip,
		     struct check_report *rep)
{
	struct probe p;
	double t0 = mono_ms();

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.conn = cc->conn;
	p.cc = cc;
	p.rep = rep;
	memset(rep, 0, sizeof(*rep));
	if (p.conn != NULL && !db_lost(p.conn)) {
		const char *host = PQhost(p.conn);

		reset_transaction(p.conn);
		if (check_runs(skip, "writable"))
			commit_locally(p.conn);
		p.db_key = xasprintf("%s:%s/%s", host && *host ? host : "localhost", PQport(p.conn), PQdb(p.conn));
		state_open(&p);
		prefetch(&p, skip);
	}
	if (skip == NULL || !skip[0]) {
		check_connect(&p);
		rep->results[0].seconds = cc->persistent ? 0.0 : cc->connect_ms / 1000.0;
	}
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		struct check_result *r;
		double t1 = mono_ms();

		if (skip != NULL && skip[i + 1])
			continue;
		r = result_new(rep, checks[i].name);
		if (tick_fn != NULL && !tick_fn())
			result_set(r, CHECK_UNKNOWN, "not run: the agent is stopping");
		else if (p.conn == NULL || db_lost(p.conn))
			check_without_connection(&p, r, checks[i].fn);
		else if (checks[i].as_owner)
			run_as_owner(&p, r, checks[i].fn);
		else
			checks[i].fn(&p, r);
		r->seconds = (mono_ms() - t1) / 1000.0;
		log_debug("check %s: %s in %.1f ms", r->name, result_state_name(r), r->seconds * 1000.0);
	}
	prefetch_free(&p);
	state_close(&p);
	free(p.db_key);
	rep->worst = CHECK_OK;
	rep->gate_worst = CHECK_OK;
	for (size_t i = 0; i < rep->n; i++) {
		rep->worst = worse(rep->worst, rep->results[i].status);
		if (check_gates(rep->results[i].name))
			rep->gate_worst = worse(rep->gate_worst, rep->results[i].status);
	}
	rep->duration_s = (mono_ms() - t0 + (cc->persistent ? 0.0 : cc->connect_ms)) / 1000.0;
	rep->finished_at = (long long)time(NULL);
}
