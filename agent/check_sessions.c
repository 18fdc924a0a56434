/*
 * check_sessions.c: the checks that read the server's sessions and its
 * transaction age: pool headroom, idle in transaction, long transactions,
 * lock waits, and wraparound.
 */
#include "check_probe.h"
#include "db.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pool headroom ---- */

static const char slots_sql[] =
	"SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, "
	"coalesce(current_setting('reserved_connections', true), '0')::int";

/*
 * The sessions, as pg_stat_activity shows them but without the view: in a
 * fresh backend (every one-shot check) expanding and planning the view and
 * its joins costs about 5 ms more than the function it is built on.
 * pg_get_userbyid() gives its usename.
 */
#define ACTIVITY \
	"(SELECT s.*, pg_get_userbyid(s.usesysid) AS usename FROM pg_stat_get_activity(NULL) s) a"

/*
 * Client sessions. For another role's session, pg_stat_activity hides most
 * columns (backend_type too) unless the agent's role has pg_read_all_stats
 * (pg_monitor); such a row with a user and a database counts as a client
 * session.
 */
#define CLIENT_SESSION \
	"(backend_type = 'client backend' OR (backend_type IS NULL AND usesysid IS NOT NULL AND datid IS NOT NULL))"

/*
 * The last column is the agent's own session. A one-shot `check` leaves when
 * it is done, so its session is no demand on the slots; the service's
 * long-lived one holds a slot for good, so it counts.
 */
static const char sessions_sql[] =
	"SELECT coalesce(usename::text, ''), coalesce(state, 'unknown'), count(*), "
	"count(*) FILTER (WHERE pid <> pg_backend_pid()), coalesce(usename = current_user, false), "
	"count(*) FILTER (WHERE pid = pg_backend_pid()) "
	"FROM " ACTIVITY " WHERE " CLIENT_SESSION " GROUP BY 1, 2, 5 ORDER BY 3 DESC, 1, 2";

struct pool_figures {
	int max_conn, su_reserved, reserved, usable;
	int in_use, app_open, budget;
};

/*
 * The demand on the slots: the sessions that are not the application's
 * pools (the service's own included, a one-shot check's not), plus what the
 * pools may hold: their budget, or more if more are open. Over 100% the
 * pools no longer fit.
 */
static void pool_verdict(struct probe *p, struct check_result *r, const struct pool_figures *pf,
			 const char *by_role)
{
	const struct check_thresholds *t = &p->cfg->checks;
	int others = pf->in_use - pf->app_open;
	int pools = pf->budget > pf->app_open ? pf->budget : pf->app_open;
	int demand = others + pools;
	double pct = pf->usable > 0 ? demand * 100.0 / pf->usable : 100.0;

	sample_levels(sample_add(r, "pool_demand_connections", "Sessions other than the pools plus what the pools may hold.",
				 demand), LEVELS_HIGH, pf->usable * t->pool_usage_warn_pct / 100.0,
		      pf->usable * t->pool_usage_crit_pct / 100.0);
	result_set(r, level_high(pct, t->pool_usage_warn_pct, t->pool_usage_crit_pct),
		   "%d of %d usable slots in use%s (max_connections %d minus %d reserved); demand %d = %d other "
		   "session%s + %d for the pools (budget %d = %d x %d, %d open): %.0f%% of the usable slots "
		   "(warn %d%%, crit %d%%)%s; by role/state: %s",
		   pf->in_use, pf->usable, p->cc->persistent ? "" : " besides this check's own session",
		   pf->max_conn, pf->su_reserved + pf->reserved, demand, others,
		   others == 1 ? "" : "s", pools, pf->budget, p->cfg->pool_size, p->cfg->pool_instances, pf->app_open,
		   pct, t->pool_usage_warn_pct, t->pool_usage_crit_pct,
		   demand > pf->usable ? ": the pools no longer fit; raise max_connections or lower pool.size or "
					 "pool.instances" : "",
		   by_role);
}

void check_pool(struct probe *p, struct check_result *r)
{
	struct pool_figures pf;
	struct strbuf by_role;
	int shown = 0;
	PGresult *res = probe_query(p, r, PRE_SLOTS, CHECK_UNKNOWN, "cannot read max_connections");

	if (res == NULL)
		return;
	memset(&pf, 0, sizeof(pf));
	pf.max_conn = (int)get_num(res, 0, 0);
	pf.su_reserved = (int)get_num(res, 0, 1);
	pf.reserved = (int)get_num(res, 0, 2);
	pf.usable = pf.max_conn - pf.su_reserved - pf.reserved;
	pf.budget = p->cfg->pool_size * p->cfg->pool_instances;
	PQclear(res);
	res = probe_query(p, r, PRE_SESSIONS, CHECK_UNKNOWN, "cannot read pg_stat_activity");
	if (res == NULL)
		return;
	sb_init(&by_role);
	for (int i = 0; i < PQntuples(res); i++) {
		int n = (int)get_num(res, i, 2) - (p->cc->persistent ? 0 : (int)get_num(res, i, 5));

		if (n == 0)
			continue;	/* only this check's own session */
		pf.in_use += n;
		if (strcmp(get_str(res, i, 4), "t") == 0)
			pf.app_open += (int)get_num(res, i, 3);
		sample_add2(r, "connections", "Client connections by role and state.", "role", get_str(res, i, 0),
			    "state", get_str(res, i, 1), n);
		if (shown < 6)
			sb_printf(&by_role, "%s%s/%s %d", shown ? ", " : "", get_str(res, i, 0), get_str(res, i, 1), n);
		else if (shown == 6)
			sb_add(&by_role, ", ...");
		shown++;
	}
	PQclear(res);
	sample_add(r, "connections_in_use", "Client connections in use.", pf.in_use);
	sample_add(r, "connection_slots_usable", "max_connections minus the reserved slots.", pf.usable);
	sample_add(r, "pool_budget_connections", "pool.size times pool.instances from the config.", pf.budget);
	pool_verdict(p, r, &pf, by_role.len ? by_role.buf : "none");
	sb_free(&by_role);
}

/* ---- idle in transaction, long transactions, lock waits ---- */

static const char idle_sql[] =
	"SELECT count(*) FILTER (WHERE state LIKE 'idle in transaction%'), "
	"coalesce(extract(epoch FROM clock_timestamp() - min(state_change) "
	"  FILTER (WHERE state LIKE 'idle in transaction%')), 0), "
	"(array_agg(pid ORDER BY state_change) FILTER (WHERE state LIKE 'idle in transaction%'))[1], "
	"(array_agg(usename::text ORDER BY state_change) FILTER (WHERE state LIKE 'idle in transaction%'))[1], "
	"count(*) FILTER (WHERE state IS NULL) "
	"FROM " ACTIVITY " WHERE " CLIENT_SESSION;

static const char xact_sql[] =
	"SELECT count(*) FILTER (WHERE xact_start IS NOT NULL), "
	"coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)), 0), "
	"(array_agg(pid ORDER BY xact_start) FILTER (WHERE xact_start IS NOT NULL))[1], "
	"(array_agg(usename::text ORDER BY xact_start) FILTER (WHERE xact_start IS NOT NULL))[1], "
	"count(*) FILTER (WHERE state IS NULL) "
	"FROM " ACTIVITY " WHERE " CLIENT_SESSION " AND pid <> pg_backend_pid()";

static const char *hidden_note(double hidden, char *buf, size_t n)
{
	if (hidden <= 0)
		return "";
	snprintf(buf, n, "; %.0f session%s of other roles not visible (grant pg_monitor to the agent's role to see them)",
		 hidden, hidden == 1 ? "" : "s");
	return buf;
}

void check_idle_in_transaction(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = probe_query(p, r, PRE_IDLE, CHECK_UNKNOWN, "cannot read pg_stat_activity");
	double count, age;
	char note[160];

	if (res == NULL)
		return;
	count = get_num(res, 0, 0);
	age = get_num(res, 0, 1);
	sample_add(r, "idle_in_transaction_sessions", "Sessions idle in a transaction.", count);
	sample_levels(sample_add(r, "idle_in_transaction_oldest_seconds", "Age of the oldest idle-in-transaction state.",
				 age), LEVELS_HIGH, t->idle_in_xact_warn_s, t->idle_in_xact_crit_s);
	if (count == 0)
		result_set(r, CHECK_OK, "no session is idle in a transaction%s",
			   hidden_note(get_num(res, 0, 4), note, sizeof(note)));
	else
		result_set(r, level_high(age, t->idle_in_xact_warn_s, t->idle_in_xact_crit_s),
			   "oldest idle in transaction: pid %s (%s) for %.0f s, %.0f such session%s (warn %d s, crit %d s); "
			   "it blocks vacuum and concurrent index builds%s",
			   get_str(res, 0, 2), get_str(res, 0, 3), age, count, count == 1 ? "" : "s",
			   t->idle_in_xact_warn_s, t->idle_in_xact_crit_s,
			   hidden_note(get_num(res, 0, 4), note, sizeof(note)));
	PQclear(res);
}

void check_long_transactions(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = probe_query(p, r, PRE_XACT, CHECK_UNKNOWN, "cannot read pg_stat_activity");
	double count, age;
	char note[160];

	if (res == NULL)
		return;
	count = get_num(res, 0, 0);
	age = get_num(res, 0, 1);
	sample_levels(sample_add(r, "oldest_transaction_seconds", "Age of the oldest open transaction of a client session.",
				 age), LEVELS_HIGH, t->xact_age_warn_s, t->xact_age_crit_s);
	if (count == 0)
		result_set(r, CHECK_OK, "no other session has a transaction open%s",
			   hidden_note(get_num(res, 0, 4), note, sizeof(note)));
	else
		result_set(r, level_high(age, t->xact_age_warn_s, t->xact_age_crit_s),
			   "oldest transaction: pid %s (%s), open for %.0f s (warn %d s, crit %d s)%s",
			   get_str(res, 0, 2), get_str(res, 0, 3), age, t->xact_age_warn_s, t->xact_age_crit_s,
			   hidden_note(get_num(res, 0, 4), note, sizeof(note)));
	PQclear(res);
}

static const char locks_sql[] =
	"SELECT count(DISTINCT pid), min(pid), array_to_string(pg_blocking_pids(min(pid)), ', ') "
	"FROM pg_locks WHERE NOT granted";

void check_lock_waits(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = probe_query(p, r, PRE_LOCKS, CHECK_UNKNOWN, "cannot read pg_locks");
	double n;

	if (res == NULL)
		return;
	n = get_num(res, 0, 0);
	sample_levels(sample_add(r, "lock_waiting_sessions", "Sessions waiting on a lock.", n), LEVELS_HIGH,
		      t->lock_waits_warn, t->lock_waits_crit);
	if (n == 0)
		result_set(r, CHECK_OK, "no session waits on a lock");
	else
		result_set(r, level_high(n, t->lock_waits_warn, t->lock_waits_crit),
			   "%.0f session%s wait%s on a lock, e.g. pid %s, blocked by pid %s (warn %d, crit %d)", n,
			   n == 1 ? "" : "s", n == 1 ? "s" : "", get_str(res, 0, 1), get_str(res, 0, 2),
			   t->lock_waits_warn, t->lock_waits_crit);
	PQclear(res);
}

/* ---- wraparound ---- */

static const char wraparound_sql[] =
	"SELECT age(datfrozenxid), mxid_age(datminmxid), current_database() "
	"FROM pg_database WHERE datname = current_database()";

const char *const prefetch_sql[PRE_N] = {
	[PRE_RECOVERY] = "SELECT pg_is_in_recovery()",
	[PRE_SLOTS] = slots_sql,
	[PRE_SESSIONS] = sessions_sql,
	[PRE_IDLE] = idle_sql,
	[PRE_XACT] = xact_sql,
	[PRE_LOCKS] = locks_sql,
	[PRE_WRAPAROUND] = wraparound_sql,
	[PRE_WAL] = wal_sql,
};

void check_wraparound(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = probe_query(p, r, PRE_WRAPAROUND, CHECK_UNKNOWN, "cannot read pg_database");
	double age;

	if (res == NULL)
		return;
	age = get_num(res, 0, 0);
	sample_levels(sample_add(r, "xid_age", "age(datfrozenxid) of the database: transactions since it was last frozen.",
				 age), LEVELS_HIGH, (double)t->wraparound_warn, (double)t->wraparound_crit);
	sample_add(r, "multixact_age", "mxid_age(datminmxid) of the database.", get_num(res, 0, 1));
	result_set(r, level_high(age, (double)t->wraparound_warn, (double)t->wraparound_crit),
		   "age(datfrozenxid) of %s is %.0f (warn %lld, crit %lld; PostgreSQL stops at 2000000000)",
		   get_str(res, 0, 2), age, t->wraparound_warn, t->wraparound_crit);
	PQclear(res);
}

