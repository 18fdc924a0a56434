/*
 * checks.c: the health checks. Each check reads what it needs on the one
 * connection (opened as the application's role, with statement_timeout set
 * by db_connect), and sets its result: a status, a one-line message, and the
 * measured values as samples.
 *
 * A query that fails makes its check UNKNOWN (or CRITICAL where the failure
 * is the finding, as for `query` and `writable`); a lost connection makes
 * every later check UNKNOWN. Nothing here exits or prints.
 */
#include "check.h"
#include "db.h"
#include "log.h"
#include "migrate.h"
#include "sets.h"
#include "verify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

static check_tick_fn tick_fn;

void checks_set_tick(check_tick_fn fn)
{
	tick_fn = fn;
}

struct probe {
	const struct config *cfg;
	PGconn *conn;
	const struct check_conn *cc;
	struct check_report *rep;
	struct size_state state;	/* the state file, read once per run */
	char *state_error;		/* why it could not be read */
	char *db_key;			/* "host:port/db", the state's keys start with it */
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- results and samples ---- */

static struct check_result *result_new(struct check_report *rep, const char *name)
{
	struct check_result *r;

	if (rep->n >= CHECK_MAX) {
		log_error("internal error: more than %d checks", CHECK_MAX);
		abort();
	}
	r = &rep->results[rep->n++];
	memset(r, 0, sizeof(*r));
	r->name = name;
	r->status = CHECK_OK;
	r->message = xstrdup("");
	return r;
}

static void result_set(struct check_result *r, enum check_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void result_set(struct check_result *r, enum check_status st, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = xstrdup("(out of memory formatting the message)");
	va_end(ap);
	/* One line: server and libpq messages carry newlines and tabs. */
	for (char *c = msg; *c; c++)
		if (*c == '\n' || *c == '\t' || *c == '\r')
			*c = ' ';
	free(r->message);
	r->message = msg;
	r->status = st;
}

static struct check_sample *sample_add(struct check_result *r, const char *metric, const char *help, double v)
{
	struct check_sample *s;

	if (r->nsamples == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4;
		r->samples = xrealloc(r->samples, r->cap * sizeof(*r->samples));
	}
	s = &r->samples[r->nsamples++];
	memset(s, 0, sizeof(*s));
	s->metric = metric;
	s->help = help;
	s->value = v;
	return s;
}

static void sample_add1(struct check_result *r, const char *metric, const char *help,
			const char *label, const char *value_label, double v)
{
	struct check_sample *s = sample_add(r, metric, help, v);

	s->label[0] = label;
	s->value_label[0] = xstrdup(value_label);
}

static void sample_add2(struct check_result *r, const char *metric, const char *help,
			const char *l0, const char *v0, const char *l1, const char *v1, double v)
{
	struct check_sample *s = sample_add(r, metric, help, v);

	s->label[0] = l0;
	s->value_label[0] = xstrdup(v0);
	s->label[1] = l1;
	s->value_label[1] = xstrdup(v1);
}

void check_report_free(struct check_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		struct check_result *r = &rep->results[i];

		for (size_t j = 0; j < r->nsamples; j++) {
			free(r->samples[j].value_label[0]);
			free(r->samples[j].value_label[1]);
		}
		free(r->samples);
		free(r->message);
	}
	rep->n = 0;
}

/* Higher is worse. */
static enum check_status level_high(double v, double warn, double crit)
{
	if (v >= crit)
		return CHECK_CRITICAL;
	if (v >= warn)
		return CHECK_WARNING;
	return CHECK_OK;
}

/* Lower is worse (free space). */
static enum check_status level_low(double v, double warn, double crit)
{
	if (v < crit)
		return CHECK_CRITICAL;
	if (v < warn)
		return CHECK_WARNING;
	return CHECK_OK;
}

static enum check_status worse(enum check_status a, enum check_status b)
{
	return check_severity(a) >= check_severity(b) ? a : b;
}

static void format_bytes(char *buf, size_t n, double b)
{
	const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	double v = fabs(b);

	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, n, "%s%.*f %s", b < 0 ? "-" : "", u ? 1 : 0, v, units[u]);
}

/* ---- queries ---- */

/*
 * Runs SQL with text parameters. On failure sets R to FAIL with "WHAT: the
 * server's error" and returns NULL.
 */
static PGresult *run_query(struct probe *p, struct check_result *r, enum check_status fail, const char *what,
			   const char *sql, int nparams, const char *const *params)
{
	PGresult *res = PQexecParams(p->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	char *err;

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	err = db_error_text(res, p->conn);
	result_set(r, fail, "%s: %s", what, err);
	free(err);
	PQclear(res);
	return NULL;
}

static double get_num(const PGresult *res, int row, int col)
{
	if (row >= PQntuples(res) || PQgetisnull(res, row, col))
		return 0.0;
	return strtod(PQgetvalue(res, row, col), NULL);
}

static const char *get_str(const PGresult *res, int row, int col)
{
	if (row >= PQntuples(res) || PQgetisnull(res, row, col))
		return "";
	return PQgetvalue(res, row, col);
}

/* "schema"."table", quoted for SQL. */
static char *qualified(PGconn *conn, const char *schema, const char *table)
{
	char *s = db_ident(conn, schema), *t = db_ident(conn, table);
	char *q = xasprintf("%s.%s", s, t);

	PQfreemem(s);
	PQfreemem(t);
	return q;
}

/* ---- connect, query ---- */

static bool slots_exhausted(const char *why)
{
	return why != NULL && (strstr(why, "too many clients") != NULL ||
			       strstr(why, "remaining connection slots are reserved") != NULL);
}

static void check_connect(struct probe *p)
{
	struct check_result *r = result_new(p->rep, "connect");
	const struct check_thresholds *t = &p->cfg->checks;
	char *where;

	if (p->conn == NULL) {
		sample_add(r, "up", "1 when the agent could connect to the database as the application role.", 0);
		result_set(r, p->cc->connect_rc == EXIT_CONFIG ? CHECK_UNKNOWN : CHECK_CRITICAL, "%s",
			   p->cc->connect_error ? p->cc->connect_error : "no connection");
		return;
	}
	sample_add(r, "up", "1 when the agent could connect to the database as the application role.", 1);
	sample_add(r, "connect_seconds", "Time to open an authenticated connection as the application role.",
		   p->cc->connect_ms / 1000.0);
	where = db_describe(p->conn);
	result_set(r, level_high(p->cc->connect_ms, t->connect_warn_ms, t->connect_crit_ms),
		   "connected as %s in %.1f ms%s (warn %d ms, crit %d ms)", where, p->cc->connect_ms,
		   p->cc->persistent ? " (the service's connection)" : "", t->connect_warn_ms, t->connect_crit_ms);
	free(where);
}

static void check_query(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	double t0 = mono_ms(), ms;
	PGresult *res = run_query(p, r, CHECK_CRITICAL, "SELECT 1 failed", "SELECT 1", 0, NULL);

	if (res == NULL)
		return;
	ms = mono_ms() - t0;
	PQclear(res);
	sample_add(r, "query_seconds", "Round trip of a trivial query.", ms / 1000.0);
	result_set(r, level_high(ms, t->query_warn_ms, t->query_crit_ms),
		   "SELECT 1 answered in %.2f ms (warn %d ms, crit %d ms; statement_timeout %d ms)", ms,
		   t->query_warn_ms, t->query_crit_ms, p->cfg->statement_timeout);
}

/* ---- writable ---- */

/* An SQL expression of TYPE (a category from pg_type) for a NOT NULL column, or NULL. */
static char *probe_value(PGconn *conn, const char *type, char cat, const char *typname, const char *probe_id)
{
	char *lit, *v;

	switch (cat) {
	case 'S':
		lit = db_literal(conn, probe_id);
		v = xasprintf("%s::%s", lit, type);
		PQfreemem(lit);
		return v;
	case 'N': return xasprintf("0::%s", type);
	case 'B': return xstrdup("false");
	case 'D': return xasprintf("clock_timestamp()::%s", type);
	case 'T': return xasprintf("'0'::%s", type);
	case 'A': return xasprintf("'{}'::%s", type);
	case 'E': return xasprintf("(enum_range(NULL::%s))[1]", type);
	default: break;
	}
	if (strcmp(typname, "json") == 0 || strcmp(typname, "jsonb") == 0)
		return xasprintf("'{}'::%s", type);
	if (strcmp(typname, "bytea") == 0)
		return xstrdup("decode('', 'hex')");
	if (strcmp(typname, "uuid") == 0)
		return xstrdup("gen_random_uuid()");
	return NULL;
}

static const char probe_columns_sql[] =
	"SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory, t.typname "
	"FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
	"WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
	"AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' "
	"ORDER BY a.attnum";

/* "INSERT INTO rel (cols) VALUES (values)" giving every NOT NULL column without a default a value. */
static char *probe_insert_sql(struct probe *p, struct check_result *r, const char *rel, const char *probe_id)
{
	const char *params[1] = { rel };
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read the columns of a checkpoint table",
				  probe_columns_sql, 1, params);
	struct strbuf cols, vals;
	char *sql = NULL;

	if (res == NULL)
		return NULL;
	sb_init(&cols);
	sb_init(&vals);
	for (int i = 0; i < PQntuples(res); i++) {
		char *col = db_ident(p->conn, PQgetvalue(res, i, 0));
		char *v = probe_value(p->conn, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2)[0],
				      PQgetvalue(res, i, 3), probe_id);

		if (v == NULL) {
			result_set(r, CHECK_UNKNOWN, "cannot build a probe row for %s: column %s has type %s; "
				   "the probe knows text, numeric, boolean, time, JSON, bytea, uuid, array and enum columns",
				   rel, col, PQgetvalue(res, i, 1));
			PQfreemem(col);
			goto out;
		}
		sb_printf(&cols, "%s%s", i ? ", " : "", col);
		sb_printf(&vals, "%s%s", i ? ", " : "", v);
		PQfreemem(col);
		free(v);
	}
	if (cols.len == 0)
		sql = xasprintf("INSERT INTO %s DEFAULT VALUES", rel);
	else
		sql = xasprintf("INSERT INTO %s (%s) VALUES (%s)", rel, cols.buf, vals.buf);
out:
	sb_free(&cols);
	sb_free(&vals);
	PQclear(res);
	return sql;
}

static int probe_table(struct probe *p, struct check_result *r, const char *schema, const char *table,
		       const char *probe_id)
{
	char *rel = qualified(p->conn, schema, table);
	char *sql = probe_insert_sql(p, r, rel, probe_id);
	PGresult *res;
	int rc = -1;

	if (sql != NULL) {
		char *what = xasprintf("as %s, a probe INSERT into %s.%s fails", PQuser(p->conn), schema, table);

		res = run_query(p, r, CHECK_CRITICAL, what, sql, 0, NULL);
		rc = res ? 0 : -1;
		PQclear(res);
		free(what);
	}
	free(sql);
	free(rel);
	return rc;
}

/* Ends the probe's transaction; an error here is the check's finding too. */
static int probe_rollback(struct probe *p, struct check_result *r, bool keep_status)
{
	PGresult *res = PQexec(p->conn, "ROLLBACK");
	int rc = 0;

	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		if (!keep_status) {
			char *err = db_error_text(res, p->conn);

			result_set(r, CHECK_CRITICAL, "cannot roll the probe transaction back: %s", err);
			free(err);
		}
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* A probe INSERT into every checkpoint table, in one transaction that is rolled back. */
static int probe_inserts(struct probe *p, struct check_result *r, const char *probe_id, int *ntables)
{
	PGresult *res = run_query(p, r, CHECK_CRITICAL, "cannot begin the probe transaction", "BEGIN", 0, NULL);

	*ntables = 0;
	if (res == NULL)
		return -1;
	PQclear(res);
	for (size_t i = 0; i < p->cfg->nsets; i++) {
		const struct set_def *set = set_find(p->cfg->sets[i]);

		if (set == NULL)
			continue;
		for (const char *const *t = set->tables; *t != NULL; t++, (*ntables)++) {
			if (probe_table(p, r, set_schema_name(set, p->cfg), *t, probe_id) != 0) {
				probe_rollback(p, r, true);
				return -1;
			}
		}
	}
	return probe_rollback(p, r, false);
}

static const char heartbeat_sql[] =
	"INSERT INTO %s AS h (host, beat_at, beats) VALUES ($1, clock_timestamp(), 1) "
	"ON CONFLICT (host) DO UPDATE SET beat_at = excluded.beat_at, beats = h.beats + 1 RETURNING beats";

/* The committed heartbeat row of this host, in the agent's schema. */
static int heartbeat(struct probe *p, struct check_result *r, const char *host, long long *beats)
{
	char *rel = qualified(p->conn, p->cfg->agent_schema, "heartbeat");
	char *sql = xasprintf(heartbeat_sql, rel);
	char *what = xasprintf("as %s, the heartbeat in %s.heartbeat does not commit (run `checkpoint-agent migrate` "
			       "if the table is missing)", PQuser(p->conn), p->cfg->agent_schema);
	const char *params[1] = { host };
	PGresult *res = run_query(p, r, CHECK_CRITICAL, what, sql, 1, params);

	free(what);
	free(sql);
	free(rel);
	if (res == NULL)
		return -1;
	*beats = (long long)get_num(res, 0, 0);
	PQclear(res);
	return 0;
}

static void check_writable(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	static unsigned long counter;
	char host[256], *probe_id;
	long long beats = 0;
	int ntables = 0, rc;
	double t0, ms;
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot ask whether the server is in recovery",
				  "SELECT pg_is_in_recovery()", 0, NULL);

	if (res == NULL)
		return;
	sample_add(r, "in_recovery", "1 when the server is a standby in recovery (read-only).",
		   strcmp(get_str(res, 0, 0), "t") == 0);
	if (strcmp(get_str(res, 0, 0), "t") == 0) {
		PQclear(res);
		result_set(r, CHECK_CRITICAL, "the server is in recovery (a standby): it refuses writes; "
			   "point database.uri at the primary");
		return;
	}
	PQclear(res);
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	probe_id = xasprintf("checkpoint-agent-probe %s %ld %lu", host, (long)getpid(), ++counter);
	t0 = mono_ms();
	rc = probe_inserts(p, r, probe_id, &ntables);
	free(probe_id);
	if (rc != 0 || heartbeat(p, r, host, &beats) != 0)
		return;
	ms = mono_ms() - t0;
	sample_add(r, "write_seconds", "Time of the probe INSERTs (rolled back) and the committed heartbeat.",
		   ms / 1000.0);
	result_set(r, level_high(ms, t->write_warn_ms, t->write_crit_ms),
		   "as %s, probe INSERTs into %d checkpoint tables rolled back and heartbeat %lld of %s committed, "
		   "in %.1f ms (warn %d ms, crit %d ms)", PQuser(p->conn), ntables, beats, host, ms,
		   t->write_warn_ms, t->write_crit_ms);
}

/* ---- schema ---- */

#define SCHEMA_SETS_MAX 8

/* The agent's own set and the configured ones, with what the database records of each. */
struct schema_sets {
	const struct set_def *set[SCHEMA_SETS_MAX];
	struct set_state st[SCHEMA_SETS_MAX];
	bool read_ok[SCHEMA_SETS_MAX];
	size_t ndiffs[SCHEMA_SETS_MAX];	/* what verify found */
	size_t n;
};

struct schema_findings {
	enum check_status status;
	struct strbuf msg;
};

static void finding(struct schema_findings *f, enum check_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finding(struct schema_findings *f, enum check_status st, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	f->status = worse(f->status, st);
	sb_printf(&f->msg, "%s%s", f->msg.len ? "; " : "", s ? s : "?");
	free(s);
}

/* Verify compares a set at its recorded version, when that is one this agent knows. */
static bool verifiable(const struct schema_sets *ss, size_t i)
{
	const struct set_state *st = &ss->st[i];

	return ss->read_ok[i] && st->table_exists && st->recorded >= 0 && st->recorded <= st->latest;
}

/*
 * verify builds the expected shape by running the set's files on temporary
 * tables, which costs tens of milliseconds. Its answer depends only on the
 * catalog rows of the sets' schemas, the versions, the embedded SQL and the
 * server's version. Every DDL writes new catalog rows (a new xmin) or removes
 * some, so the catalog rows' (oid, xmin) pairs fingerprint the live shape. A
 * clean answer is remembered in the state file under the fingerprint of all
 * four, and verify runs again only when one of them changed.
 */
static const char fingerprint_sql[] =
	"WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = ANY ($1::text[])) "
	"SELECT substr(md5($2 || current_setting('server_version_num') || ';' || "
	"  coalesce(string_agg(x, ',' ORDER BY x), '')), 1, 15) FROM ("
	" SELECT 'n' || oid AS x FROM ns"
	" UNION ALL SELECT 'c' || c.oid || ':' || c.xmin FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns)"
	" UNION ALL SELECT 'a' || a.attrelid || ':' || a.attnum || ':' || a.xmin FROM pg_attribute a"
	"  JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace IN (SELECT oid FROM ns) AND a.attnum > 0"
	" UNION ALL SELECT 'i' || x.indexrelid || ':' || x.xmin FROM pg_index x"
	"  JOIN pg_class c ON c.oid = x.indexrelid WHERE c.relnamespace IN (SELECT oid FROM ns)"
	" UNION ALL SELECT 'd' || d.oid || ':' || d.xmin FROM pg_attrdef d"
	"  JOIN pg_class c ON c.oid = d.adrelid WHERE c.relnamespace IN (SELECT oid FROM ns)"
	" UNION ALL SELECT 'k' || k.oid || ':' || k.xmin FROM pg_constraint k"
	"  WHERE k.connamespace IN (SELECT oid FROM ns)) s";

/* An element of a PostgreSQL array literal: double-quoted, with " and \ escaped. */
static void add_array_element(struct strbuf *sb, const char *v)
{
	sb_add(sb, sb->len > 1 ? ",\"" : "\"");
	for (const char *c = v; *c; c++) {
		if (*c == '"' || *c == '\\')
			sb_add(sb, "\\");
		sb_addn(sb, c, 1);
	}
	sb_add(sb, "\"");
}

/* The fingerprint of the verifiable sets (a number from 15 hex digits), or -1 on error. */
static long long schema_fingerprint(struct probe *p, const struct schema_sets *ss)
{
	struct strbuf schemas, files;
	const char *params[2];
	PGresult *res;
	long long fp = -1;

	sb_init(&schemas);
	sb_init(&files);
	sb_add(&schemas, "{");
	sb_add(&files, AGENT_VERSION);
	for (size_t i = 0; i < ss->n; i++) {
		if (!verifiable(ss, i))
			continue;
		add_array_element(&schemas, set_schema_name(ss->set[i], p->cfg));
		sb_printf(&files, " %s v%d", ss->set[i]->name, ss->st[i].recorded);
		for (int v = 0; v <= ss->st[i].recorded; v++) {
			const struct sql_file *f = set_file(ss->set[i], v, true);

			sb_printf(&files, " %s", f ? f->sha256 : "-");
		}
	}
	sb_add(&schemas, "}");
	params[0] = schemas.buf;
	params[1] = files.buf;
	res = PQexecParams(p->conn, fingerprint_sql, 2, NULL, params, NULL, NULL, 0);
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		fp = strtoll(PQgetvalue(res, 0, 0), NULL, 16);
	else
		log_debug("cannot fingerprint the schemas: %s", PQerrorMessage(p->conn));
	PQclear(res);
	sb_free(&schemas);
	sb_free(&files);
	return fp;
}

/* Verifies every verifiable set, unless the state file remembers a clean verify of this very fingerprint. */
static void schema_verify_all(struct probe *p, struct check_result *r, struct schema_sets *ss,
			      struct schema_findings *f)
{
	bool cache = p->cfg->state_file[0] != '\0';
	long long fp = cache ? schema_fingerprint(p, ss) : -1;
	char *key = xasprintf("verified %s", p->db_key);
	const struct size_sample *prev = state_find(&p->state, key);
	bool remembered = fp >= 0 && prev != NULL && prev->bytes == fp, clean = true;

	for (size_t i = 0; i < ss->n; i++) {
		struct strlist diffs;

		if (!verifiable(ss, i))
			continue;
		sl_init(&diffs);
		if (!remembered && verify_set(p->conn, p->cfg, ss->set[i], ss->st[i].recorded, &diffs) != 0) {
			finding(f, CHECK_UNKNOWN, "%s: verify failed (see the log)", ss->set[i]->name);
			clean = false;
		} else {
			sample_add1(r, "schema_differences", "Differences verify finds between a set's tables and "
				    "its version.", "set", ss->set[i]->name, (double)diffs.n);
			if (diffs.n > 0)
				finding(f, CHECK_CRITICAL, "%s: %zu difference%s from v%d: %s", ss->set[i]->name, diffs.n,
					diffs.n == 1 ? "" : "s", ss->st[i].recorded, diffs.items[0]);
			clean = clean && diffs.n == 0;
			ss->ndiffs[i] = diffs.n;
		}
		sl_free(&diffs);
	}
	if (!remembered && clean && fp >= 0)
		state_put(&p->state, key, fp, (long long)time(NULL));
	free(key);
}

/* INVALID indexes, which a concurrent build leaves behind when it fails. */
static void schema_invalid_indexes(struct probe *p, struct check_result *r, const struct schema_sets *ss, size_t i,
				   struct schema_findings *f)
{
	const struct set_def *set = ss->set[i];
	struct strlist invalid;

	sl_init(&invalid);
	if (verify_invalid_indexes(p->conn, p->cfg, set, &invalid) != 0) {
		finding(f, CHECK_UNKNOWN, "%s: cannot list INVALID indexes (see the log)", set->name);
	} else {
		sample_add1(r, "invalid_indexes", "INVALID indexes in a set's schema.", "set", set->name,
			    (double)invalid.n);
		if (invalid.n > 0 && ss->ndiffs[i] == 0)	/* verify's differences name it already */
			finding(f, CHECK_CRITICAL, "%s: INVALID index %s%s", set->name, invalid.items[0],
				invalid.n > 1 ? " and more" : "");
	}
	sl_free(&invalid);
}

/* Reads the versions of set I, and says whether it is at its target. */
static void schema_version(struct probe *p, struct check_result *r, struct schema_sets *ss, size_t i,
			   struct schema_findings *f)
{
	const struct set_def *set = ss->set[i];
	struct set_state *st = &ss->st[i];

	ss->read_ok[i] = set_read_state(p->conn, p->cfg, set, st) == 0;
	if (!ss->read_ok[i]) {
		finding(f, CHECK_UNKNOWN, "%s: cannot read its version (see the log)", set->name);
		return;
	}
	sample_add1(r, "schema_version", "Highest version recorded in a set's version table (-1: none).",
		    "set", set->name, st->recorded);
	sample_add1(r, "schema_target_version", "Highest version of a set that this agent carries.",
		    "set", set->name, st->latest);
	if (!st->table_exists || st->recorded < 0)
		finding(f, CHECK_CRITICAL, "%s: not applied (no version recorded in %s.%s); run checkpoint-agent migrate",
			set->name, set_schema_name(set, p->cfg), set->version_table);
	else if (st->recorded < st->latest)
		finding(f, CHECK_WARNING, "%s: at v%d, target v%d; run checkpoint-agent migrate", set->name,
			st->recorded, st->latest);
	else if (st->recorded > st->latest)
		finding(f, CHECK_WARNING, "%s: at v%d, newer than this agent's v%d; upgrade the agent", set->name,
			st->recorded, st->latest);
}

static void check_schema(struct probe *p, struct check_result *r)
{
	struct schema_findings f = { CHECK_OK, { NULL, 0, 0 } };
	struct schema_sets ss;

	memset(&ss, 0, sizeof(ss));
	sb_init(&f.msg);
	ss.set[ss.n++] = &agent_set;
	for (size_t i = 0; i < p->cfg->nsets && ss.n < SCHEMA_SETS_MAX; i++)
		if ((ss.set[ss.n] = set_find(p->cfg->sets[i])) != NULL)
			ss.n++;
	for (size_t i = 0; i < ss.n; i++)
		schema_version(p, r, &ss, i, &f);
	schema_verify_all(p, r, &ss, &f);
	for (size_t i = 0; i < ss.n; i++)
		schema_invalid_indexes(p, r, &ss, i, &f);
	if (f.msg.len == 0)
		result_set(r, CHECK_OK, "every set is at its target version, verify finds nothing, no INVALID index");
	else
		result_set(r, f.status, "%s", f.msg.buf);
	for (size_t i = 0; i < ss.n; i++)
		set_state_free(&ss.st[i]);
	sb_free(&f.msg);
}

/* ---- pool headroom ---- */

static const char slots_sql[] =
	"SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, "
	"coalesce(current_setting('reserved_connections', true), '0')::int";

/*
 * Client sessions. For another role's session, pg_stat_activity hides most
 * columns (backend_type too) unless the agent's role has pg_read_all_stats
 * (pg_monitor); such a row with a user and a database counts as a client
 * session.
 */
#define CLIENT_SESSION \
	"(backend_type = 'client backend' OR (backend_type IS NULL AND usesysid IS NOT NULL AND datid IS NOT NULL))"

static const char sessions_sql[] =
	"SELECT coalesce(usename::text, ''), coalesce(state, 'unknown'), count(*), "
	"count(*) FILTER (WHERE pid <> pg_backend_pid()), coalesce(usename = current_user, false) "
	"FROM pg_stat_activity WHERE " CLIENT_SESSION " GROUP BY 1, 2, 5 ORDER BY 3 DESC, 1, 2";

struct pool_figures {
	int max_conn, su_reserved, reserved, usable;
	int in_use, app_open, budget;
};

/*
 * The demand on the slots: the sessions that are not the application's
 * pools (the agent's own included), plus what the pools may hold: their
 * budget, or more if more are open. Over 100% the pools no longer fit.
 */
static void pool_verdict(struct probe *p, struct check_result *r, const struct pool_figures *pf,
			 const char *by_role)
{
	const struct check_thresholds *t = &p->cfg->checks;
	int others = pf->in_use - pf->app_open;
	int pools = pf->budget > pf->app_open ? pf->budget : pf->app_open;
	int demand = others + pools;
	double pct = pf->usable > 0 ? demand * 100.0 / pf->usable : 100.0;

	sample_add(r, "pool_demand_connections", "Sessions other than the pools plus what the pools may hold.", demand);
	result_set(r, level_high(pct, t->pool_usage_warn_pct, t->pool_usage_crit_pct),
		   "%d of %d usable slots in use (max_connections %d minus %d reserved); demand %d = %d other "
		   "session%s + %d for the pools (budget %d = %d x %d, %d open): %.0f%% of the usable slots "
		   "(warn %d%%, crit %d%%)%s; by role/state: %s",
		   pf->in_use, pf->usable, pf->max_conn, pf->su_reserved + pf->reserved, demand, others,
		   others == 1 ? "" : "s", pools, pf->budget, p->cfg->pool_size, p->cfg->pool_instances, pf->app_open,
		   pct, t->pool_usage_warn_pct, t->pool_usage_crit_pct,
		   demand > pf->usable ? ": the pools no longer fit; raise max_connections or lower pool.size or "
					 "pool.instances" : "",
		   by_role);
}

static void check_pool(struct probe *p, struct check_result *r)
{
	struct pool_figures pf;
	struct strbuf by_role;
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read max_connections", slots_sql, 0, NULL);

	if (res == NULL)
		return;
	memset(&pf, 0, sizeof(pf));
	pf.max_conn = (int)get_num(res, 0, 0);
	pf.su_reserved = (int)get_num(res, 0, 1);
	pf.reserved = (int)get_num(res, 0, 2);
	pf.usable = pf.max_conn - pf.su_reserved - pf.reserved;
	pf.budget = p->cfg->pool_size * p->cfg->pool_instances;
	PQclear(res);
	res = run_query(p, r, CHECK_UNKNOWN, "cannot read pg_stat_activity", sessions_sql, 0, NULL);
	if (res == NULL)
		return;
	sb_init(&by_role);
	for (int i = 0; i < PQntuples(res); i++) {
		int n = (int)get_num(res, i, 2);

		pf.in_use += n;
		if (strcmp(get_str(res, i, 4), "t") == 0)
			pf.app_open += (int)get_num(res, i, 3);
		sample_add2(r, "connections", "Client connections by role and state.", "role", get_str(res, i, 0),
			    "state", get_str(res, i, 1), n);
		if (i < 6)
			sb_printf(&by_role, "%s%s/%s %d", i ? ", " : "", get_str(res, i, 0), get_str(res, i, 1), n);
		else if (i == 6)
			sb_add(&by_role, ", ...");
	}
	PQclear(res);
	sample_add(r, "connections_in_use", "Client connections in use.", pf.in_use);
	sample_add(r, "connection_slots_usable", "max_connections minus the reserved slots.", pf.usable);
	sample_add(r, "pool_budget_connections", "pool.size times pool.instances from the config.", pf.budget);
	pool_verdict(p, r, &pf, by_role.buf);
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
	"FROM pg_stat_activity WHERE " CLIENT_SESSION;

static const char xact_sql[] =
	"SELECT count(*) FILTER (WHERE xact_start IS NOT NULL), "
	"coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)), 0), "
	"(array_agg(pid ORDER BY xact_start) FILTER (WHERE xact_start IS NOT NULL))[1], "
	"(array_agg(usename::text ORDER BY xact_start) FILTER (WHERE xact_start IS NOT NULL))[1], "
	"count(*) FILTER (WHERE state IS NULL) "
	"FROM pg_stat_activity WHERE " CLIENT_SESSION " AND pid <> pg_backend_pid()";

static const char *hidden_note(double hidden, char *buf, size_t n)
{
	if (hidden <= 0)
		return "";
	snprintf(buf, n, "; %.0f session%s of other roles not visible (grant pg_monitor to the agent's role to see them)",
		 hidden, hidden == 1 ? "" : "s");
	return buf;
}

static void check_idle_in_transaction(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read pg_stat_activity", idle_sql, 0, NULL);
	double count, age;
	char note[160];

	if (res == NULL)
		return;
	count = get_num(res, 0, 0);
	age = get_num(res, 0, 1);
	sample_add(r, "idle_in_transaction_sessions", "Sessions idle in a transaction.", count);
	sample_add(r, "idle_in_transaction_oldest_seconds", "Age of the oldest idle-in-transaction state.", age);
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

static void check_long_transactions(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read pg_stat_activity", xact_sql, 0, NULL);
	double count, age;
	char note[160];

	if (res == NULL)
		return;
	count = get_num(res, 0, 0);
	age = get_num(res, 0, 1);
	sample_add(r, "oldest_transaction_seconds", "Age of the oldest open transaction of a client session.", age);
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

static void check_lock_waits(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read pg_locks", locks_sql, 0, NULL);
	double n;

	if (res == NULL)
		return;
	n = get_num(res, 0, 0);
	sample_add(r, "lock_waiting_sessions", "Sessions waiting on a lock.", n);
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

static void check_wraparound(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read pg_database",
				  "SELECT age(datfrozenxid), mxid_age(datminmxid), current_database() "
				  "FROM pg_database WHERE datname = current_database()", 0, NULL);
	double age;

	if (res == NULL)
		return;
	age = get_num(res, 0, 0);
	sample_add(r, "xid_age", "age(datfrozenxid) of the database: transactions since it was last frozen.", age);
	sample_add(r, "multixact_age", "mxid_age(datminmxid) of the database.", get_num(res, 0, 1));
	result_set(r, level_high(age, (double)t->wraparound_warn, (double)t->wraparound_crit),
		   "age(datfrozenxid) of %s is %.0f (warn %lld, crit %lld; PostgreSQL stops at 2000000000)",
		   get_str(res, 0, 2), age, t->wraparound_warn, t->wraparound_crit);
	PQclear(res);
}

/* ---- size ---- */

struct size_run {
	enum check_status status;
	struct strbuf msg;
	long long now;
};

static void size_one_table(struct probe *p, struct check_result *r, struct size_run *sr, const char *schema,
			   const char *table)
{
	const struct check_thresholds *t = &p->cfg->checks;
	char *rel = qualified(p->conn, schema, table), *name, *key, total_s[32];
	const char *params[1] = { rel };
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read a table's size",
				  "SELECT pg_table_size(c.oid), pg_total_relation_size(c.oid) FROM pg_class c "
				  "WHERE c.oid = to_regclass($1)", 1, params);
	const struct size_sample *prev;
	long long bytes, total;

	free(rel);
	if (res == NULL)
		return;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return;		/* missing: the schema check says so */
	}
	bytes = (long long)get_num(res, 0, 0);
	total = (long long)get_num(res, 0, 1);
	PQclear(res);
	name = xasprintf("%s.%s", schema, table);
	key = xasprintf("size %s %s", p->db_key, name);
	sample_add1(r, "table_size_bytes", "Size of a checkpoint table including TOAST, without indexes.",
		    "table", name, (double)bytes);
	sample_add1(r, "table_total_size_bytes", "Size of a checkpoint table with TOAST and indexes.",
		    "table", name, (double)total);
	format_bytes(total_s, sizeof(total_s), (double)total);
	prev = state_find(&p->state, key);
	if (prev != NULL) {
		long long growth = total - prev->bytes;
		char growth_s[32];

		sample_add1(r, "table_growth_bytes", "Growth of a checkpoint table (with TOAST and indexes) since the "
			    "previous check run.", "table", name, (double)growth);
		sr->status = worse(sr->status, level_high((double)growth / MIB, (double)t->growth_warn_mb,
							  (double)t->growth_crit_mb));
		format_bytes(growth_s, sizeof(growth_s), (double)growth);
		sb_printf(&sr->msg, "%s%s %s (%s%s in %lld s)", sr->msg.len ? ", " : "", name, total_s,
			  growth >= 0 ? "+" : "", growth_s, sr->now - prev->at);
	} else {
		sb_printf(&sr->msg, "%s%s %s", sr->msg.len ? ", " : "", name, total_s);
	}
	state_put(&p->state, key, total, sr->now);
	free(key);
	free(name);
}

static void check_size(struct probe *p, struct check_result *r)
{
	const struct config *cfg = p->cfg;
	struct size_run sr;
	char *why = NULL;

	memset(&sr, 0, sizeof(sr));
	sb_init(&sr.msg);
	sr.status = CHECK_OK;
	sr.now = (long long)time(NULL);
	for (size_t i = 0; i < cfg->nsets && r->status == CHECK_OK; i++) {
		const struct set_def *set = set_find(cfg->sets[i]);

		for (const char *const *t = set ? set->tables : NULL; t && *t && r->status == CHECK_OK; t++)
			size_one_table(p, r, &sr, set_schema_name(set, cfg), *t);
	}
	if (r->status == CHECK_OK) {
		const struct check_thresholds *t = &cfg->checks;

		if (cfg->state_file[0] == '\0')
			why = xstrdup("service.state_file is not set, so there is no growth");
		else if (state_write(cfg->state_file, &p->state, &why) != 0)
			log_warning("%s; the growth cannot be measured", why);
		result_set(r, sr.status, "%s (growth warn %lld MiB, crit %lld MiB per run)%s%s",
			   sr.msg.len ? sr.msg.buf : "no checkpoint table exists", t->growth_warn_mb, t->growth_crit_mb,
			   why || p->state_error ? "; " : "", why ? why : p->state_error ? p->state_error : "");
	}
	free(why);
	sb_free(&sr.msg);
}

/* ---- disk ---- */

/* Is ADDR (text, as host(inet_server_addr()) prints it) one of this machine's addresses? */
static bool address_is_local(const char *addr)
{
	unsigned char want[16], have[16];
	struct ifaddrs *ifs, *i;
	bool v4, found = false;

	if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.') != NULL)
		addr += 7;
	v4 = inet_pton(AF_INET, addr, want) == 1;
	if (!v4 && inet_pton(AF_INET6, addr, want) != 1)
		return false;
	if (getifaddrs(&ifs) == -1)
		return false;
	for (i = ifs; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (v4 && i->ifa_addr->sa_family == AF_INET) {
			memcpy(have, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
			found = memcmp(want, have, 4) == 0;
		} else if (!v4 && i->ifa_addr->sa_family == AF_INET6) {
			memcpy(have, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, 16);
			found = memcmp(want, have, 16) == 0;
		}
	}
	freeifaddrs(ifs);
	return found;
}

/* Without a connection: is database.uri's host this machine? */
static bool uri_is_local(const char *uri, char **why)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(uri, &err), *o;
	const char *host = NULL, *hostaddr = NULL;
	bool local;

	if (opts == NULL) {
		*why = xasprintf("cannot parse database.uri: %s", err ? err : "out of memory");
		PQfreemem(err);
		return false;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
	}
	if (hostaddr != NULL && *hostaddr != '\0')
		host = hostaddr;
	local = host == NULL || *host == '\0' || host[0] == '/' || strcmp(host, "localhost") == 0 ||
		address_is_local(host);
	if (!local)
		*why = xasprintf("the database (%s) is on another host as far as database.uri says; "
				 "statvfs can only read a filesystem of this machine", host);
	PQconninfoFree(opts);
	return local;
}

/* The major version in DIR/PG_VERSION: >0, 0 when unreadable (errno set), -1 when absent. */
static int read_pg_version(const char *dir)
{
	char *path = xasprintf("%s/PG_VERSION", dir);
	FILE *f = fopen(path, "r");
	int major = 0;

	free(path);
	if (f == NULL)
		return errno == ENOENT ? -1 : 0;
	if (fscanf(f, "%d", &major) != 1)
		major = -1;
	fclose(f);
	return major;
}

/* With a connection: the server's address, version and (if visible) data directory against ours. */
static bool server_is_here(struct probe *p, struct check_result *r, const char *dir, char **why, char **note)
{
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read the server's address",
				  "SELECT host(inet_server_addr()), current_setting('server_version_num')::int, "
				  "(SELECT setting FROM pg_settings WHERE name = 'data_directory')", 0, NULL);
	int major, server_major;
	bool ok = true;

	if (res == NULL)
		return false;
	if (!PQgetisnull(res, 0, 0) && !address_is_local(get_str(res, 0, 0))) {
		*why = xasprintf("the database is on another host (its address %s is none of this machine's); "
				 "statvfs can only read a filesystem of this machine, so check disk space there",
				 get_str(res, 0, 0));
		PQclear(res);
		return false;
	}
	server_major = (int)get_num(res, 0, 1) >= 100000 ? (int)get_num(res, 0, 1) / 10000 : 0;
	if (!PQgetisnull(res, 0, 2)) {
		char *a = realpath(get_str(res, 0, 2), NULL), *b = realpath(dir, NULL);

		if (a == NULL || b == NULL || strcmp(a, b) != 0) {
			*why = xasprintf("the server's data directory is %s, not service.data_directory %s; fix the setting",
					 get_str(res, 0, 2), dir);
			ok = false;
		}
		free(a);
		free(b);
	}
	PQclear(res);
	major = read_pg_version(dir);
	if (ok && major > 0 && server_major > 0 && major != server_major) {
		*why = xasprintf("%s/PG_VERSION says %d but the server is PostgreSQL %d: service.data_directory is not "
				 "this server's data directory", dir, major, server_major);
		ok = false;
	} else if (ok && major < 0) {
		*why = xasprintf("%s holds no PG_VERSION: it is not a PostgreSQL data directory; fix "
				 "service.data_directory", dir);
		ok = false;
	} else if (major == 0) {
		*note = xstrdup(" (PG_VERSION not readable by this user, data directory not confirmed)");
	}
	return ok;
}

static void disk_verdict(struct probe *p, struct check_result *r, const char *dir, const char *note)
{
	const struct check_thresholds *t = &p->cfg->checks;
	struct statvfs sv;
	double free_pct, ino_pct = 100.0;
	char free_s[32], size_s[32];
	enum check_status st;

	if (statvfs(dir, &sv) == -1) {
		result_set(r, CHECK_UNKNOWN, "cannot statvfs %s: %s", dir, strerror(errno));
		return;
	}
	free_pct = sv.f_blocks ? (double)sv.f_bavail * 100.0 / (double)sv.f_blocks : 0.0;
	if (sv.f_files > 0)
		ino_pct = (double)sv.f_favail * 100.0 / (double)sv.f_files;
	sample_add(r, "disk_free_bytes", "Free bytes (for unprivileged users) on the data directory's filesystem.",
		   (double)sv.f_bavail * (double)sv.f_frsize);
	sample_add(r, "disk_size_bytes", "Size of the data directory's filesystem.",
		   (double)sv.f_blocks * (double)sv.f_frsize);
	sample_add(r, "disk_free_ratio", "Free space on the data directory's filesystem, 0 to 1.", free_pct / 100.0);
	sample_add(r, "inodes_free_ratio", "Free inodes on the data directory's filesystem, 0 to 1.", ino_pct / 100.0);
	st = worse(level_low(free_pct, t->disk_free_warn_pct, t->disk_free_crit_pct),
		   level_low(ino_pct, t->inodes_free_warn_pct, t->inodes_free_crit_pct));
	format_bytes(free_s, sizeof(free_s), (double)sv.f_bavail * (double)sv.f_frsize);
	format_bytes(size_s, sizeof(size_s), (double)sv.f_blocks * (double)sv.f_frsize);
	result_set(r, st, "%s: %s free of %s (%.1f%%), inodes %.1f%% free (warn below %d%%/%d%%, crit below %d%%/%d%%)%s",
		   dir, free_s, size_s, free_pct, ino_pct, t->disk_free_warn_pct, t->inodes_free_warn_pct,
		   t->disk_free_crit_pct, t->inodes_free_crit_pct, note);
}

/* The server's data_directory, when it shows it to this role (pg_read_all_settings); else NULL. */
static char *server_data_directory(struct probe *p)
{
	PGresult *res = PQexec(p->conn, "SELECT setting FROM pg_settings WHERE name = 'data_directory'");
	char *dir = NULL;

	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		dir = xstrdup(PQgetvalue(res, 0, 0));
	else if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		log_debug("cannot read data_directory from pg_settings: %s", PQerrorMessage(p->conn));
	PQclear(res);
	return dir;
}

static void check_disk(struct probe *p, struct check_result *r)
{
	bool live = p->conn != NULL && !db_lost(p->conn);
	char *dir, *why = NULL, *note = NULL;
	struct stat st;
	bool here;

	memset(&st, 0, sizeof(st));
	dir = p->cfg->data_directory[0] ? xstrdup(p->cfg->data_directory) : live ? server_data_directory(p) : NULL;
	if (dir == NULL) {
		result_set(r, CHECK_UNKNOWN, "service.data_directory is not set%s; set it to PostgreSQL's data "
			   "directory to check free space", live ? ", and the server shows data_directory only to roles "
			   "with pg_read_all_settings" : "");
		return;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		result_set(r, CHECK_UNKNOWN, "data directory %s is not a folder on this machine (%s): the "
			   "database is on another host, or service.data_directory is wrong", dir,
			   st.st_mode == 0 ? strerror(errno) : "not a folder");
		free(dir);
		return;
	}
	if (live)
		here = server_is_here(p, r, dir, &why, &note);
	else
		here = uri_is_local(p->cfg->uri, &why);
	if (here)
		disk_verdict(p, r, dir, note ? note : live ? "" : " (database unreachable: not confirmed)");
	else if (why != NULL)
		result_set(r, CHECK_UNKNOWN, "%s", why);
	free(why);
	free(note);
	free(dir);
}

/* ---- the run ---- */

typedef void (*check_fn)(struct probe *p, struct check_result *r);

static const struct {
	const char *name;
	check_fn fn;
} checks[] = {
	{ "query", check_query },
	{ "writable", check_writable },
	{ "schema", check_schema },
	{ "pool_headroom", check_pool },
	{ "idle_in_transaction", check_idle_in_transaction },
	{ "long_transactions", check_long_transactions },
	{ "lock_waits", check_lock_waits },
	{ "disk", check_disk },
	{ "size", check_size },
	{ "wraparound", check_wraparound },
};

/* A check that cannot run for want of a connection. */
static void check_without_connection(struct probe *p, struct check_result *r, check_fn fn)
{
	if (fn == check_disk) {
		check_disk(p, r);
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

void checks_run(const struct config *cfg, const struct check_conn *cc, struct check_report *rep)
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
		p.db_key = xasprintf("%s:%s/%s", host && *host ? host : "localhost", PQport(p.conn), PQdb(p.conn));
		if (cfg->state_file[0] != '\0' && state_read(cfg->state_file, &p.state, &p.state_error) != 0)
			log_warning("%s; the growth is measured from now on", p.state_error);
	}
	check_connect(&p);
	rep->results[0].seconds = cc->persistent ? 0.0 : cc->connect_ms / 1000.0;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		struct check_result *r = result_new(rep, checks[i].name);
		double t1 = mono_ms();

		if (tick_fn != NULL && !tick_fn())
			result_set(r, CHECK_UNKNOWN, "not run: the agent is stopping");
		else if (p.conn == NULL || db_lost(p.conn))
			check_without_connection(&p, r, checks[i].fn);
		else
			checks[i].fn(&p, r);
		r->seconds = (mono_ms() - t1) / 1000.0;
		log_debug("check %s: %s in %.1f ms", r->name, check_status_name(r->status), r->seconds * 1000.0);
	}
	state_free(&p.state);
	free(p.state_error);
	free(p.db_key);
	rep->worst = CHECK_OK;
	for (size_t i = 0; i < rep->n; i++)
		rep->worst = worse(rep->worst, rep->results[i].status);
	rep->duration_s = (mono_ms() - t0 + (cc->persistent ? 0.0 : cc->connect_ms)) / 1000.0;
	rep->finished_at = (long long)time(NULL);
}
