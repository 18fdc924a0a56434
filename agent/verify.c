/*
 * verify.c: the live shape of a set against the shape its version implies.
 *
 * The expected shape comes from the SQL files themselves: the up files 0..V
 * run on temporary tables (search_path = pg_temp) in a transaction that is
 * rolled back. Both shapes are read with one catalog query, as lines of
 * "kind|table|name|detail", and compared line by line.
 */
#include "verify.h"
#include "db.h"
#include "log.h"
#include "sqlsplit.h"

#include <stdlib.h>
#include <string.h>

/*
 * One line per column and per index of the tables named in $2 in the schema
 * $1. Index definitions lose their schema, so pg_temp and the live schema
 * compare equal; validity is a field of its own.
 */
static const char shape_sql[] =
	"SELECT 'column', c.relname, a.attname,"
	"  format_type(a.atttypid, a.atttypmod)"
	"  || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END"
	"  || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), ''), true"
	" FROM pg_class c"
	" JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
	" LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum"
	" WHERE c.relnamespace = $1::oid AND c.relkind IN ('r', 'p') AND c.relname = ANY ($2::text[])"
	" UNION ALL"
	" SELECT 'index', t.relname, i.relname,"
	"  CASE WHEN x.indisprimary THEN 'PRIMARY KEY ' ELSE '' END"
	"  || regexp_replace(pg_get_indexdef(x.indexrelid), ' ON \\S+ USING ', ' ON ' || quote_ident(t.relname) || ' USING '),"
	"  x.indisvalid"
	" FROM pg_index x"
	" JOIN pg_class i ON i.oid = x.indexrelid"
	" JOIN pg_class t ON t.oid = x.indrelid"
	" WHERE t.relnamespace = $1::oid AND t.relname = ANY ($2::text[])"
	" ORDER BY 1, 2, 3";

struct shape_item {
	char *kind, *table, *name, *detail;
	bool valid;
};

struct shape {
	struct shape_item *items;
	int n;
	struct strlist tables;
};

static void shape_free(struct shape *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->items[i].kind);
		free(s->items[i].table);
		free(s->items[i].name);
		free(s->items[i].detail);
	}
	free(s->items);
	sl_free(&s->tables);
	s->items = NULL;
	s->n = 0;
}

/* "{"a","b"}" for a text[] parameter. */
static char *text_array(const struct strlist *l)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_add_pg_array(&sb, l);
	return sb_detach(&sb);
}

static int read_shape(PGconn *conn, const char *nsp_oid, struct shape *s)
{
	char *tables = text_array(&s->tables);
	const char *params[2] = { nsp_oid, tables };
	PGresult *res = db_query(conn, shape_sql, 2, params);

	free(tables);
	if (res == NULL)
		return -1;
	s->n = PQntuples(res);
	s->items = xcalloc((size_t)s->n, sizeof(*s->items));
	for (int i = 0; i < s->n; i++) {
		s->items[i].kind = xstrdup(PQgetvalue(res, i, 0));
		s->items[i].table = xstrdup(PQgetvalue(res, i, 1));
		s->items[i].name = xstrdup(PQgetvalue(res, i, 2));
		s->items[i].detail = xstrdup(PQgetvalue(res, i, 3));
		s->items[i].valid = strcmp(PQgetvalue(res, i, 4), "t") == 0;
	}
	PQclear(res);
	return 0;
}

/* Runs the up files 0..VERSION in pg_temp; the caller's transaction is rolled back after. */
static int build_scratch(PGconn *conn, const struct set_def *set, int version)
{
	if (db_exec(conn, "SET LOCAL search_path TO pg_temp") != 0)
		return -1;
	for (int v = 0; v <= version; v++) {
		const struct sql_file *f = set_file(set, v, true);
		struct strlist stmts;
		int rc = 0;

		if (f == NULL)
			continue;
		sl_init(&stmts);
		sql_split(f->sql, &stmts);
		for (size_t i = 0; i < stmts.n && rc == 0; i++) {
			/* Temporary tables, one transaction: no CONCURRENTLY. */
			char *sql = sql_without_concurrently(stmts.items[i]);

			rc = db_exec(conn, sql);
			free(sql);
		}
		sl_free(&stmts);
		if (rc != 0) {
			log_error("building the expected shape of %s v%d failed", set->name, v);
			return -1;
		}
	}
	return 0;
}

/* The tables in the temporary schema: the ones the set creates. */
static int scratch_tables(PGconn *conn, struct strlist *out)
{
	PGresult *res = db_query(conn, "SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema()"
				 " AND relkind IN ('r', 'p') ORDER BY 1", 0, NULL);

	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		sl_add(out, PQgetvalue(res, i, 0));
	PQclear(res);
	return 0;
}

static int expected_shape(PGconn *conn, const struct set_def *set, int version, struct shape *s)
{
	PGresult *res;
	int rc = -1;

	if (db_exec(conn, "BEGIN") != 0)
		return -1;
	if (build_scratch(conn, set, version) == 0 && scratch_tables(conn, &s->tables) == 0 &&
	    (res = db_query(conn, "SELECT pg_my_temp_schema()::oid::text", 0, NULL)) != NULL) {
		rc = read_shape(conn, PQgetvalue(res, 0, 0), s);
		PQclear(res);
	}
	db_exec(conn, "ROLLBACK");
	return rc;
}

static int live_shape(PGconn *conn, const char *schema, struct shape *s, bool *schema_exists)
{
	const char *params[1] = { schema };
	PGresult *res = db_query(conn, "SELECT oid::text FROM pg_namespace WHERE nspname = $1", 1, params);
	char *q, *sql;
	int rc = -1;

	if (res == NULL)
		return -1;
	*schema_exists = PQntuples(res) == 1;
	if (!*schema_exists) {
		PQclear(res);
		return 0;
	}
	/* Defaults name sequences relative to search_path, as in the scratch build. */
	q = db_ident(conn, schema);
	sql = q ? xasprintf("BEGIN; SET LOCAL search_path TO %s", q) : NULL;
	PQfreemem(q);
	if (sql != NULL && db_exec(conn, sql) == 0) {
		rc = read_shape(conn, PQgetvalue(res, 0, 0), s);
		db_exec(conn, "ROLLBACK");
	}
	free(sql);
	PQclear(res);
	return rc;
}

static const struct shape_item *find_item(const struct shape *s, const struct shape_item *want)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->items[i].kind, want->kind) == 0 && strcmp(s->items[i].table, want->table) == 0 &&
		    strcmp(s->items[i].name, want->name) == 0)
			return &s->items[i];
	return NULL;
}

static bool has_table(const struct shape *s, const char *table)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->items[i].table, table) == 0)
			return true;
	return false;
}

static void compare_shapes(const struct shape *want, const struct shape *live, const char *schema,
			   struct strlist *diffs)
{
	for (size_t t = 0; t < want->tables.n; t++)
		if (!has_table(live, want->tables.items[t]))
			sl_addf(diffs, "table %s.%s is missing", schema, want->tables.items[t]);
	for (int i = 0; i < want->n; i++) {
		const struct shape_item *w = &want->items[i], *l;

		if (!has_table(live, w->table))
			continue;
		l = find_item(live, w);
		if (l == NULL)
			sl_addf(diffs, "%s %s of %s.%s is missing (expected: %s)", w->kind, w->name, schema,
				w->table, w->detail);
		else if (strcmp(l->detail, w->detail) != 0)
			sl_addf(diffs, "%s %s of %s.%s differs: expected \"%s\", found \"%s\"", w->kind, w->name,
				schema, w->table, w->detail, l->detail);
		else if (!l->valid)
			sl_addf(diffs, "index %s of %s.%s is INVALID (an interrupted concurrent build); "
				"run checkpoint-agent migrate to rebuild it, or drop it", l->name, schema, l->table);
	}
	for (int i = 0; i < live->n; i++)
		if (find_item(want, &live->items[i]) == NULL)
			sl_addf(diffs, "%s %s of %s.%s is not part of the schema (\"%s\")", live->items[i].kind,
				live->items[i].name, schema, live->items[i].table, live->items[i].detail);
}

int verify_set(PGconn *conn, const struct config *cfg, const struct set_def *set, int version,
	       struct strlist *diffs)
{
	const char *schema = set_schema_name(set, cfg);
	struct shape want = { NULL, 0, { NULL, 0, 0 } }, live = { NULL, 0, { NULL, 0, 0 } };
	bool exists = false;
	int rc;

	if (version < 0)
		return 0;
	rc = expected_shape(conn, set, version, &want);
	if (rc == 0) {
		for (size_t i = 0; i < want.tables.n; i++)
			sl_add(&live.tables, want.tables.items[i]);
		rc = live_shape(conn, schema, &live, &exists);
	}
	if (rc == 0 && !exists)
		sl_addf(diffs, "schema %s does not exist", schema);
	else if (rc == 0)
		compare_shapes(&want, &live, schema, diffs);
	shape_free(&want);
	shape_free(&live);
	return rc;
}

int verify_invalid_indexes(PGconn *conn, const struct config *cfg, const struct set_def *set,
			   struct strlist *out)
{
	const char *params[1] = { set_schema_name(set, cfg) };
	PGresult *res = db_query(conn,
		"SELECT n.nspname || '.' || i.relname || ' on ' || t.relname"
		" FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
		" JOIN pg_namespace n ON n.oid = i.relnamespace"
		" WHERE n.nspname = $1 AND NOT x.indisvalid ORDER BY 1", 1, params);

	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		sl_add(out, PQgetvalue(res, i, 0));
	PQclear(res);
	return 0;
}
