/*
 * check_basic.c: the checks that every run starts with: connect (and whether
 * the connection uses TLS), query, and writable (a probe INSERT into every
 * checkpoint table, rolled back, and a committed heartbeat; with
 * database.owner_role, checks.c runs it as that role, the application's, so
 * that it proves what the application can do).
 */
#include "check_probe.h"
#include "db.h"
#include "db_role.h"
#include "log.h"
#include "sets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- connect, query ---- */

bool slots_exhausted(const char *why)
{
	return why != NULL && (strstr(why, "too many clients") != NULL ||
			       strstr(why, "remaining connection slots are reserved") != NULL);
}

/* How the connection travels, for the message: "over TLSv1.3 (cipher)", "without TLS" or the socket. */
static char *transport_text(PGconn *conn)
{
	const char *host = PQhost(conn);

	if (PQsslInUse(conn)) {
		const char *protocol = PQsslAttribute(conn, "protocol");
		const char *cipher = PQsslAttribute(conn, "cipher");

		return xasprintf("over %s%s%s%s", protocol ? protocol : "TLS", cipher ? " (" : "", cipher ? cipher : "",
				 cipher ? ")" : "");
	}
	if (host != NULL && host[0] == '/')
		return xstrdup("over the Unix socket (no TLS)");
	return xstrdup("without TLS");
}

void check_connect(struct probe *p)
{
	struct check_result *r = result_new(p->rep, "connect");
	const struct check_thresholds *t = &p->cfg->checks;
	char *where, *transport;

	if (p->conn == NULL) {
		sample_add(r, "up", "1 when the agent could connect to the database as its configured role.", 0);
		result_set(r, p->cc->connect_rc == AERR_CONFIG ? CHECK_UNKNOWN : CHECK_CRITICAL, "%s",
			   p->cc->connect_error ? p->cc->connect_error : "no connection");
		return;
	}
	sample_add(r, "up", "1 when the agent could connect to the database as its configured role.", 1);
	sample_levels(sample_add(r, "connect_seconds", "Time to open an authenticated connection as the agent's configured role.",
				 p->cc->connect_ms / 1000.0), LEVELS_HIGH, t->connect_warn_ms / 1000.0, t->connect_crit_ms / 1000.0);
	sample_add(r, "connect_tls", "1 when the agent's connection to the database is encrypted with TLS.",
		   PQsslInUse(p->conn) ? 1 : 0);
	where = db_describe(p->conn);
	transport = transport_text(p->conn);
	result_set(r, level_high(p->cc->connect_ms, t->connect_warn_ms, t->connect_crit_ms),
		   "connected as %s in %.1f ms%s, %s (warn %d ms, crit %d ms)", where, p->cc->connect_ms,
		   p->cc->persistent ? " (the service's connection)" : "", transport, t->connect_warn_ms,
		   t->connect_crit_ms);
	free(transport);
	free(where);
}

void check_query(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	double t0 = mono_ms(), ms;
	PGresult *res = run_query(p, r, CHECK_CRITICAL, "SELECT 1 failed", "SELECT 1", 0, NULL);

	if (res == NULL)
		return;
	ms = mono_ms() - t0;
	PQclear(res);
	sample_levels(sample_add(r, "query_seconds", "Round trip of a trivial query.", ms / 1000.0), LEVELS_HIGH,
		      t->query_warn_ms / 1000.0, t->query_crit_ms / 1000.0);
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
		if ((lit = db_literal(conn, probe_id)) == NULL)
			return NULL;
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

/* The NOT NULL columns without a default of every table named in $1 (quoted names), by table (u.n). */
static const char probe_columns_sql[] =
	"SELECT u.n, a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory, t.typname "
	"FROM unnest($1::text[]) WITH ORDINALITY AS u(rel, n) "
	"JOIN pg_attribute a ON a.attrelid = to_regclass(u.rel) JOIN pg_type t ON t.oid = a.atttypid "
	"WHERE a.attnum > 0 AND NOT a.attisdropped "
	"AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' "
	"ORDER BY u.n, a.attnum";

/*
 * "INSERT INTO rel (cols) VALUES (values)" giving every NOT NULL column
 * without a default a value; COLS holds the columns of every table, N is
 * this table's number among them (from 1).
 */
static char *probe_insert_sql(struct probe *p, struct check_result *r, const char *rel, const PGresult *cols_res,
			      long n, const char *probe_id)
{
	struct strbuf cols, vals;
	char *sql = NULL;
	int k = 0;

	sb_init(&cols);
	sb_init(&vals);
	for (int i = 0; i < PQntuples(cols_res); i++) {
		char *col, *v;

		if (strtol(PQgetvalue(cols_res, i, 0), NULL, 10) != n)
			continue;
		col = db_ident(p->conn, PQgetvalue(cols_res, i, 1));
		v = probe_value(p->conn, PQgetvalue(cols_res, i, 2), PQgetvalue(cols_res, i, 3)[0],
				PQgetvalue(cols_res, i, 4), probe_id);
		if (v == NULL || col == NULL) {
			result_set(r, CHECK_UNKNOWN, "cannot build a probe row for %s: column %s has type %s; "
				   "the probe knows text, numeric, boolean, time, JSON, bytea, uuid, array and enum columns",
				   rel, col ? col : PQgetvalue(cols_res, i, 1), PQgetvalue(cols_res, i, 2));
			PQfreemem(col);
			free(v);
			goto out;
		}
		sb_printf(&cols, "%s%s", k ? ", " : "", col);
		sb_printf(&vals, "%s%s", k ? ", " : "", v);
		k++;
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
	return sql;
}

static int probe_table(struct probe *p, struct check_result *r, const char *schema, const char *table,
		       const char *rel, const PGresult *cols_res, long n, const char *probe_id)
{
	char *sql = probe_insert_sql(p, r, rel, cols_res, n, probe_id);
	PGresult *res;
	int rc = -1;

	if (sql != NULL) {
		char *what = xasprintf("as %s, a probe INSERT into %s.%s fails", db_owner_name(p->conn, p->cfg),
				       schema, table);

		res = run_query(p, r, CHECK_CRITICAL, what, sql, 0, NULL);
		rc = res ? 0 : -1;
		PQclear(res);
		free(what);
	}
	free(sql);
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

/* The quoted names of the configured sets' tables into RELS, and their schema and name into SCHEMAS, TABLES. */
static int probe_tables(struct probe *p, struct check_result *r, struct strlist *rels, struct strlist *schemas,
			struct strlist *tables)
{
	for (size_t i = 0; i < p->cfg->nsets; i++) {
		const struct set_def *set = set_find(p->cfg->sets[i]);

		for (const char *const *t = set ? set->tables : NULL; t && *t; t++) {
			const char *schema = set_schema_name(set, p->cfg);
			char *rel = qualified(p->conn, schema, *t);

			if (rel == NULL) {
				result_set(r, CHECK_UNKNOWN, "the name of %s.%s cannot be quoted", schema, *t);
				return -1;
			}
			sl_add(rels, rel);
			sl_add(schemas, schema);
			sl_add(tables, *t);
			free(rel);
		}
	}
	return 0;
}

/* A probe INSERT into every checkpoint table, in one transaction that is rolled back. */
static int probe_inserts(struct probe *p, struct check_result *r, const char *probe_id, int *ntables)
{
	struct strlist rels, schemas, tables;
	struct strbuf arr;
	PGresult *cols = NULL, *res;
	int rc = -1;

	*ntables = 0;
	sl_init(&rels);
	sl_init(&schemas);
	sl_init(&tables);
	sb_init(&arr);
	if (probe_tables(p, r, &rels, &schemas, &tables) == 0) {
		const char *params[1];

		sb_add_pg_array(&arr, &rels);
		params[0] = arr.buf;
		cols = run_query(p, r, CHECK_UNKNOWN, "cannot read the columns of the checkpoint tables",
				 probe_columns_sql, 1, params);
	}
	res = cols ? run_query(p, r, CHECK_CRITICAL, "cannot begin the probe transaction", "BEGIN", 0, NULL) : NULL;
	if (res != NULL) {
		PQclear(res);
		rc = 0;
		for (size_t i = 0; i < rels.n && rc == 0; i++, (*ntables)++)
			rc = probe_table(p, r, schemas.items[i], tables.items[i], rels.items[i], cols, (long)i + 1,
					 probe_id);
		if (rc != 0)
			probe_rollback(p, r, true);
		else
			rc = probe_rollback(p, r, false);
	}
	PQclear(cols);
	sb_free(&arr);
	sl_free(&rels);
	sl_free(&schemas);
	sl_free(&tables);
	return rc;
}

static const char heartbeat_sql[] =
	"INSERT INTO %s AS h (host, beat_at, beats) VALUES ($1, clock_timestamp(), 1) "
	"ON CONFLICT (host) DO UPDATE SET beat_at = excluded.beat_at, beats = h.beats + 1 RETURNING beats";

/* The committed heartbeat row of this host, in the agent's schema. */
static int heartbeat(struct probe *p, struct check_result *r, const char *host, long long *beats)
{
	char *rel = qualified(p->conn, p->cfg->agent_schema, "heartbeat");
	char *sql = xasprintf(heartbeat_sql, rel ? rel : "checkpoint_agent.heartbeat");
	char *what = xasprintf("as %s, the heartbeat in %s.heartbeat does not commit (run `checkpoint-agent migrate` "
			       "if the table is missing)", db_owner_name(p->conn, p->cfg), p->cfg->agent_schema);
	const char *params[1] = { host };
	PGresult *res = rel ? run_query(p, r, CHECK_CRITICAL, what, sql, 1, params) : NULL;

	if (rel == NULL)
		result_set(r, CHECK_UNKNOWN, "the agent's schema name %s cannot be quoted", p->cfg->agent_schema);
	free(what);
	free(sql);
	free(rel);
	if (res == NULL)
		return -1;
	*beats = (long long)get_num(res, 0, 0);
	PQclear(res);
	return 0;
}

void check_writable(struct probe *p, struct check_result *r)
{
	const struct check_thresholds *t = &p->cfg->checks;
	static unsigned long counter;
	char host[256], *probe_id;
	long long beats = 0;
	int ntables = 0, rc;
	double t0, ms;
	PGresult *res = probe_query(p, r, PRE_RECOVERY, CHECK_UNKNOWN, "cannot ask whether the server is in recovery");

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
	sample_levels(sample_add(r, "write_seconds", "Time of the probe INSERTs (rolled back) and the committed heartbeat.",
				 ms / 1000.0), LEVELS_HIGH, t->write_warn_ms / 1000.0, t->write_crit_ms / 1000.0);
	result_set(r, level_high(ms, t->write_warn_ms, t->write_crit_ms),
		   "as %s, probe INSERTs into %d checkpoint tables rolled back and heartbeat %lld of %s committed, "
		   "in %.1f ms (warn %d ms, crit %d ms)", db_owner_name(p->conn, p->cfg), ntables, beats, host, ms,
		   t->write_warn_ms, t->write_crit_ms);
}

