/*
 * check_schema.c: the `schema` check: every set at its target version,
 * verify clean (cached under a fingerprint of the catalog), no INVALID index.
 */
#include "check_probe.h"
#include "db.h"
#include "log.h"
#include "migrate.h"
#include "sets.h"
#include "verify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

	va_start(ap, fmt);
	finding_vadd(&f->status, &f->msg, st, fmt, ap);
	va_end(ap);
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
 * four, and verify runs again only when one of them changed. The schemas'
 * relations are found once, and their columns, indexes and defaults by the
 * catalogs' indexes on the relation's oid: a fresh backend plans and runs
 * that in about 9 ms, against 14 ms for joins with pg_class in each branch.
 */
static const char fingerprint_sql[] =
	"WITH ns AS MATERIALIZED (SELECT oid FROM pg_namespace WHERE nspname = ANY ($1::text[])),"
	" rel AS MATERIALIZED (SELECT oid, xmin FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns)),"
	" ids AS MATERIALIZED (SELECT array_agg(oid) AS a FROM rel) "
	"SELECT substr(md5($2 || current_setting('server_version_num') || ';' || "
	"  coalesce(string_agg(x, ',' ORDER BY x), '')), 1, 15) FROM ("
	" SELECT 'n' || oid AS x FROM ns"
	" UNION ALL SELECT 'c' || oid || ':' || xmin FROM rel"
	" UNION ALL SELECT 'a' || a.attrelid || ':' || a.attnum || ':' || a.xmin FROM pg_attribute a"
	"  WHERE a.attrelid = ANY ((SELECT a FROM ids)::oid[]) AND a.attnum > 0"
	" UNION ALL SELECT 'i' || x.indexrelid || ':' || x.xmin FROM pg_index x"
	"  WHERE x.indexrelid = ANY ((SELECT a FROM ids)::oid[])"
	" UNION ALL SELECT 'd' || d.oid || ':' || d.xmin FROM pg_attrdef d"
	"  WHERE d.adrelid = ANY ((SELECT a FROM ids)::oid[])"
	" UNION ALL SELECT 'k' || k.oid || ':' || k.xmin FROM pg_constraint k"
	"  WHERE k.connamespace IN (SELECT oid FROM ns)) s";

/* The fingerprint of the verifiable sets (a number from 15 hex digits), or -1 on error. */
static long long schema_fingerprint(struct probe *p, const struct schema_sets *ss)
{
	struct strbuf schemas, files;
	struct strlist names;
	const char *params[2];
	PGresult *res;
	long long fp = -1;

	sb_init(&schemas);
	sb_init(&files);
	sl_init(&names);
	sb_add(&files, AGENT_VERSION);
	for (size_t i = 0; i < ss->n; i++) {
		if (!verifiable(ss, i))
			continue;
		sl_add(&names, set_schema_name(ss->set[i], p->cfg));
		sb_printf(&files, " %s v%d", ss->set[i]->name, ss->st[i].recorded);
		for (int v = 0; v <= ss->st[i].recorded; v++) {
			const struct sql_file *f = set_file(ss->set[i], v, true);

			sb_printf(&files, " %s", f ? f->sha256 : "-");
		}
	}
	sb_add_pg_array(&schemas, &names);
	sl_free(&names);
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
	bool cache = p->state_path != NULL;
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

void check_schema(struct probe *p, struct check_result *r)
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

