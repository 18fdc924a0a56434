/*
 * walk.c: the loose index scan over the checkpoint tables (see walk.h).
 *
 * LangGraph's table is walked by (thread_id, checkpoint_ns) pairs: a
 * recursive query steps from one pair to the next through the primary key,
 * and for each pair reads its newest checkpoint (one backward index probe)
 * and whether an older one exists. A thread's pairs may straddle two chunks;
 * the last thread of a chunk is held back until the next pair shows it is
 * complete.
 *
 * The age of a checkpoint is read from its UUIDv6 id and from its "ts";
 * the later of the two counts, so a disagreement makes a thread younger,
 * never older. A namespace whose newest id is not a v6 UUID falls back to
 * its greatest "ts" over all of its checkpoints.
 */
#include "walk.h"
#include "db.h"
#include "duration.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WALK_CHUNK 1000

int walk_init(struct walk *w, PGconn *conn, enum walk_table table, const char *schema, const char *after)
{
	char *s = db_ident(conn, schema);

	memset(w, 0, sizeof(*w));
	if (s == NULL)
		return -1;
	w->conn = conn;
	w->table = table;
	w->rel = xasprintf("%s.checkpoints", s);
	w->chunk = WALK_CHUNK;
	w->after_thread = after && *after ? xstrdup(after) : NULL;
	PQfreemem(s);
	return 0;
}

void walk_thread_clear(struct walk_thread *t)
{
	free(t->thread_id);
	free(t->newest);
	memset(t, 0, sizeof(*t));
}

void walk_threads_free(struct walk_thread *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		walk_thread_clear(&v[i]);
	free(v);
}

void walk_free(struct walk *w)
{
	free(w->rel);
	free(w->after_thread);
	free(w->cursor_thread);
	free(w->cursor_ns);
	free(w->error);
	walk_thread_clear(&w->pending);
	memset(w, 0, sizeof(*w));
}

char *pg_text_array(const char *const *strs, size_t n)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_add(&sb, "{");
	for (size_t i = 0; i < n; i++) {
		if (strs[i] == NULL) {
			sb_add(&sb, i ? ",NULL" : "NULL");
			continue;
		}
		sb_add(&sb, i ? ",\"" : "\"");
		for (const char *p = strs[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				sb_addn(&sb, "\\", 1);
			sb_addn(&sb, p, 1);
		}
		sb_add(&sb, "\"");
	}
	sb_add(&sb, "}");
	return sb_detach(&sb);
}

/* The first term of the recursion: where the walk starts. */
static const char *start_condition(const struct walk *w)
{
	if (w->cursor_thread != NULL)
		return w->table == WALK_LANGGRAPH ? "WHERE (thread_id, checkpoint_ns) > ($2, $3)" : "WHERE thread_id > $2";
	if (w->after_thread != NULL)
		return "WHERE thread_id > $2";
	return "";
}

static char *langgraph_sql(const struct walk *w)
{
	const char *r = w->rel;
	char *older = w->need_older ? xasprintf("EXISTS (SELECT 1 FROM %s c3 WHERE c3.thread_id = p.thread_id"
						 " AND c3.checkpoint_ns = p.checkpoint_ns"
						 " AND c3.checkpoint_id <> l.checkpoint_id)", r) : xstrdup("false");
	char *sql;

	sql = xasprintf(
		"WITH RECURSIVE pairs(thread_id, checkpoint_ns) AS ("
		" (SELECT thread_id, checkpoint_ns FROM %s %s ORDER BY thread_id, checkpoint_ns LIMIT 1)"
		" UNION ALL"
		" SELECT n.thread_id, n.checkpoint_ns FROM pairs p, LATERAL"
		"  (SELECT c.thread_id, c.checkpoint_ns FROM %s c"
		"   WHERE (c.thread_id, c.checkpoint_ns) > (p.thread_id, p.checkpoint_ns)"
		"   ORDER BY c.thread_id, c.checkpoint_ns LIMIT 1) n)"
		" SELECT p.thread_id, p.checkpoint_ns, l.checkpoint_id, l.ts,"
		"  CASE WHEN l.checkpoint_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-6' THEN"
		"   (SELECT max(c2.checkpoint->>'ts') FROM %s c2"
		"    WHERE c2.thread_id = p.thread_id AND c2.checkpoint_ns = p.checkpoint_ns) END,"
		"  %s"
		" FROM (SELECT * FROM pairs LIMIT $1) p, LATERAL"
		"  (SELECT c.checkpoint_id, c.checkpoint->>'ts' AS ts FROM %s c"
		"   WHERE c.thread_id = p.thread_id AND c.checkpoint_ns = p.checkpoint_ns"
		"   ORDER BY c.checkpoint_id DESC LIMIT 1) l",
		r, start_condition(w), r, r, older, r);
	free(older);
	return sql;
}

static char *agentos_sql(const struct walk *w)
{
	const char *r = w->rel;

	return xasprintf(
		"WITH RECURSIVE th(thread_id) AS ("
		" (SELECT thread_id FROM %s %s ORDER BY thread_id LIMIT 1)"
		" UNION ALL"
		" SELECT n.thread_id FROM th, LATERAL"
		"  (SELECT c.thread_id FROM %s c WHERE c.thread_id > th.thread_id ORDER BY c.thread_id LIMIT 1) n)"
		" SELECT th.thread_id, '', m.max_id::text, NULL, NULL, m.n > 1, m.newest"
		" FROM (SELECT * FROM th LIMIT $1) th, LATERAL"
		"  (SELECT extract(epoch FROM max(c.created_at)) AS newest, max(c.id) AS max_id, count(*) AS n"
		"   FROM %s c WHERE c.thread_id = th.thread_id) m",
		r, start_condition(w), r, r);
}

static void set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = xstrdup(src);
}

static double later(double a, double b)
{
	return a > b ? a : b;
}

/* Folds one (thread, namespace) row into T. */
static void add_pair(struct walk_thread *t, enum walk_table table, const PGresult *res, int row)
{
	const char *id = PQgetvalue(res, row, 2);
	double at = -1.0, v;

	t->namespaces++;
	t->has_older = t->has_older || strcmp(PQgetvalue(res, row, 5), "t") == 0;
	if (table == WALK_AGENTOS) {
		if (!PQgetisnull(res, row, 6))
			at = strtod(PQgetvalue(res, row, 6), NULL);
		set_str(&t->newest, id);
		t->newest_time = at;
		return;
	}
	if (uuid6_time(id, &v))
		at = v;
	if (!PQgetisnull(res, row, 3) && iso8601_time(PQgetvalue(res, row, 3), &v))
		at = later(at, v);
	if (!PQgetisnull(res, row, 4) && iso8601_time(PQgetvalue(res, row, 4), &v))
		at = later(at, v);
	t->newest_time = later(t->newest_time, at);
	if (t->newest == NULL || strcmp(id, t->newest) > 0)
		set_str(&t->newest, id);
}

static void push(struct walk_thread **out, size_t *n, size_t *cap, struct walk_thread *t)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*out = xrealloc(*out, *cap * sizeof(**out));
	}
	(*out)[(*n)++] = *t;
	memset(t, 0, sizeof(*t));
}

static PGresult *run_chunk(struct walk *w)
{
	char limit[16];
	const char *params[3] = { limit, NULL, NULL };
	int nparams = 1;
	char *sql = w->table == WALK_LANGGRAPH ? langgraph_sql(w) : agentos_sql(w);
	PGresult *res;

	snprintf(limit, sizeof(limit), "%d", w->chunk);
	if (w->cursor_thread != NULL) {
		params[1] = w->cursor_thread;
		params[2] = w->cursor_ns;
		nparams = w->table == WALK_LANGGRAPH ? 3 : 2;
	} else if (w->after_thread != NULL) {
		params[1] = w->after_thread;
		nparams = 2;
	}
	res = PQexecParams(w->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	free(sql);
	w->queries++;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		free(w->error);
		w->error = db_error_text(res, w->conn);
		PQclear(res);
		return NULL;
	}
	return res;
}

int walk_next(struct walk *w, struct walk_thread **out, size_t *n, size_t *cap)
{
	PGresult *res;
	int rows;

	if (w->done)
		return 0;
	if ((res = run_chunk(w)) == NULL)
		return -1;
	rows = PQntuples(res);
	for (int i = 0; i < rows; i++) {
		const char *thread = PQgetvalue(res, i, 0);

		if (w->have_pending && strcmp(thread, w->pending.thread_id) != 0) {
			push(out, n, cap, &w->pending);
			w->have_pending = false;
		}
		if (!w->have_pending) {
			w->pending.thread_id = xstrdup(thread);
			w->pending.newest_time = -1.0;
			w->have_pending = true;
		}
		add_pair(&w->pending, w->table, res, i);
	}
	if (rows > 0) {
		set_str(&w->cursor_thread, PQgetvalue(res, rows - 1, 0));
		set_str(&w->cursor_ns, PQgetvalue(res, rows - 1, 1));
	}
	/* Agentos rows are whole threads; a short chunk is the end of the table. */
	if (w->have_pending && (rows < w->chunk || w->table == WALK_AGENTOS)) {
		push(out, n, cap, &w->pending);
		w->have_pending = false;
	}
	w->done = rows < w->chunk;
	PQclear(res);
	return 0;
}

int walk_lookup(PGconn *conn, enum walk_table table, const char *schema, const char *const *ids, size_t nids,
		struct walk_thread **out, size_t *n)
{
	char *s = db_ident(conn, schema), *arr, *sql;
	const char *params[1];
	PGresult *res;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	arr = pg_text_array(ids, nids);
	params[0] = arr;

	if (table == WALK_LANGGRAPH)
		sql = xasprintf("SELECT t.id, (SELECT max(c.checkpoint_id COLLATE \"C\") FROM %s.checkpoints c"
				" WHERE c.thread_id = t.id),"
				" (SELECT count(*) > count(DISTINCT c.checkpoint_ns) FROM %s.checkpoints c WHERE c.thread_id = t.id)"
				" FROM unnest($1::text[]) WITH ORDINALITY t(id, i) ORDER BY t.i", s, s);
	else
		sql = xasprintf("SELECT t.id, (SELECT max(c.id)::text FROM %s.checkpoints c WHERE c.thread_id = t.id),"
				" (SELECT count(*) > 1 FROM %s.checkpoints c WHERE c.thread_id = t.id)"
				" FROM unnest($1::text[]) WITH ORDINALITY t(id, i) ORDER BY t.i", s, s);
	res = db_query(conn, sql, 1, params);
	free(sql);
	free(arr);
	PQfreemem(s);
	if (res == NULL)
		return -1;
	*out = xcalloc((size_t)PQntuples(res), sizeof(**out));
	for (int i = 0; i < PQntuples(res); i++) {
		struct walk_thread *t = &(*out)[(*n)++];

		t->thread_id = xstrdup(PQgetvalue(res, i, 0));
		t->newest = PQgetisnull(res, i, 1) ? NULL : xstrdup(PQgetvalue(res, i, 1));
		t->has_older = strcmp(PQgetvalue(res, i, 2), "t") == 0;
		t->newest_time = -1.0;
	}
	PQclear(res);
	return 0;
}
