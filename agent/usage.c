/*
 * usage.c: `checkpoint-agent usage [--json] [--top N]`, where the space of
 * the checkpoint database goes, to choose a TTL by looking:
 *   - per table: rows (the planner's estimate), live and dead tuples, heap,
 *     TOAST and index bytes, the last (auto)vacuum;
 *   - the number of threads and their ages by newest checkpoint, as a
 *     histogram with the share older than each bound (walk.c: no full scan);
 *   - the largest threads by the stored bytes of their rows (this one reads
 *     every row once; --top 0 skips it);
 *   - the store's rows whose TTL has passed.
 * Its queries run with statement_timeout raised to 10 minutes.
 */
#include "agent.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "db_role.h"
#include "duration.h"
#include "human.h"
#include "log.h"
#include "migrate.h"
#include "prune_sql.h"
#include "sets.h"
#include "step.h"
#include "util.h"
#include "walk.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_STATEMENT_TIMEOUT_MS 600000

static const struct bucket {
	const char *label;
	double upto;			/* seconds; the last one has none */
} buckets[] = {
	{ "< 1h", 3600.0 }, { "1h - 1d", 86400.0 }, { "1d - 7d", 7 * 86400.0 }, { "7d - 30d", 30 * 86400.0 },
	{ "30d - 90d", 90 * 86400.0 }, { "90d - 1y", 365 * 86400.0 }, { "> 1y", INFINITY },
};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct table_usage {
	const char *set, *schema, *table;
	bool exists;
	long long rows, live, dead, heap, toast, indexes, total;
	char *last_vacuum;		/* "" when never */
};

struct thread_ages {
	const char *set;
	long long threads, unknown;
	long long count[NBUCKETS];
};

struct top_thread {
	char *thread_id;
	long long bytes, checkpoints;
	double newest_time;
};

struct usage {
	struct table_usage tables[8];
	size_t ntables;
	struct thread_ages ages[2];
	size_t nages;
	struct top_thread *top;
	size_t ntop;
	long long store_expired;
	bool have_store;
	double now;
};

static int read_table(PGconn *conn, struct table_usage *t)
{
	char *rel = xasprintf("%s.%s", t->schema, t->table);
	char *qs = db_ident(conn, t->schema), *qt = db_ident(conn, t->table), *q;
	const char *params[1];
	PGresult *res;

	if (qs == NULL || qt == NULL) {
		free(rel);
		PQfreemem(qs);
		PQfreemem(qt);
		return -1;
	}
	q = xasprintf("%s.%s", qs, qt);
	params[0] = q;
	res = db_query(conn,
		"SELECT greatest(c.reltuples, 0)::bigint, coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0),"
		" pg_relation_size(c.oid), coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),"
		" pg_indexes_size(c.oid), pg_total_relation_size(c.oid),"
		" coalesce(to_char(greatest(s.last_vacuum, s.last_autovacuum) AT TIME ZONE 'UTC',"
		"  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
		" FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = to_regclass($1)",
		1, params);

	free(rel);
	free(q);
	PQfreemem(qs);
	PQfreemem(qt);
	if (res == NULL)
		return -1;
	t->exists = PQntuples(res) == 1;
	if (t->exists) {
		t->rows = atoll(PQgetvalue(res, 0, 0));
		t->live = atoll(PQgetvalue(res, 0, 1));
		t->dead = atoll(PQgetvalue(res, 0, 2));
		t->heap = atoll(PQgetvalue(res, 0, 3));
		t->toast = atoll(PQgetvalue(res, 0, 4));
		t->indexes = atoll(PQgetvalue(res, 0, 5));
		t->total = atoll(PQgetvalue(res, 0, 6));
		t->last_vacuum = xstrdup(PQgetvalue(res, 0, 7));
		if (t->rows == 0)
			t->rows = t->live;
	}
	PQclear(res);
	return 0;
}

static int read_ages(PGconn *conn, enum walk_table table, const char *schema, double now, struct thread_ages *a)
{
	struct walk w;
	int rc = 0;

	if (walk_init(&w, conn, table, schema, NULL) != 0)
		return -1;
	while (!w.done) {
		struct walk_thread *v = NULL;
		size_t n = 0, cap = 0;

		if (walk_next(&w, &v, &n, &cap) != 0) {
			log_error("reading the threads failed: %s", w.error);
			walk_threads_free(v, n);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			double age = now - v[i].newest_time;
			size_t b = 0;

			a->threads++;
			if (v[i].newest_time < 0) {
				a->unknown++;
				continue;
			}
			while (b + 1 < NBUCKETS && age >= buckets[b].upto)
				b++;
			a->count[b]++;
		}
		walk_threads_free(v, n);
	}
	walk_free(&w);
	return rc;
}

static int read_top(PGconn *conn, const char *schema, int top, struct usage *u)
{
	char *q = db_ident(conn, schema), *sql, limit[16];
	const char *params[1] = { limit };
	PGresult *res;

	if (q == NULL)
		return -1;
	snprintf(limit, sizeof(limit), "%d", top);
	sql = xasprintf(
		"WITH sizes AS (SELECT thread_id, sum(bytes) AS bytes, sum(cps) AS cps FROM ("
		"  SELECT c.thread_id, " CP_BYTES " AS bytes, 1 AS cps FROM %s.checkpoints c"
		"  UNION ALL SELECT b.thread_id, " BL_BYTES ", 0 FROM %s.checkpoint_blobs b"
		"  UNION ALL SELECT w.thread_id, " WR_BYTES ", 0 FROM %s.checkpoint_writes w) x"
		" GROUP BY thread_id ORDER BY bytes DESC LIMIT $1)"
		" SELECT s.thread_id, s.bytes, s.cps,"
		"  (SELECT max(c.checkpoint_id COLLATE \"C\") FROM %s.checkpoints c WHERE c.thread_id = s.thread_id),"
		"  (SELECT max(c.checkpoint->>'ts') FROM %s.checkpoints c WHERE c.thread_id = s.thread_id)"
		" FROM sizes s ORDER BY s.bytes DESC", q, q, q, q, q);
	res = db_query(conn, sql, 1, params);
	free(sql);
	PQfreemem(q);
	if (res == NULL)
		return -1;
	u->top = xcalloc((size_t)PQntuples(res) + 1, sizeof(*u->top));
	for (int i = 0; i < PQntuples(res); i++) {
		struct top_thread *t = &u->top[u->ntop++];
		double a = -1.0, b = -1.0;

		t->thread_id = xstrdup(PQgetvalue(res, i, 0));
		t->bytes = atoll(PQgetvalue(res, i, 1));
		t->checkpoints = atoll(PQgetvalue(res, i, 2));
		if (!uuid6_time(PQgetvalue(res, i, 3), &a))
			a = -1.0;
		if (PQgetisnull(res, i, 4) || !iso8601_time(PQgetvalue(res, i, 4), &b))
			b = -1.0;
		t->newest_time = a > b ? a : b;
	}
	PQclear(res);
	return 0;
}

static int read_store(PGconn *conn, const char *schema, struct usage *u)
{
	char *q = db_ident(conn, schema), *sql;
	PGresult *res;

	if (q == NULL)
		return -1;
	sql = xasprintf("SELECT count(*) FROM %s.store WHERE expires_at < now()", q);
	res = db_query(conn, sql, 0, NULL);

	free(sql);
	PQfreemem(q);
	if (res == NULL)
		return -1;
	u->store_expired = atoll(PQgetvalue(res, 0, 0));
	u->have_store = true;
	PQclear(res);
	return 0;
}

/* Is SET there, at a version with its tables? */
static bool set_ready(PGconn *conn, const struct config *cfg, const char *name, int min, int *err)
{
	struct set_state st;
	bool ok;

	if (!config_has_set(cfg, name))
		return false;
	if (set_read_state(conn, cfg, set_find(name), &st) != 0)
		*err = 1;
	ok = st.recorded >= min;
	set_state_free(&st);
	return ok;
}

static int collect(PGconn *conn, const struct config *cfg, int top, struct usage *u)
{
	int err = 0;
	PGresult *res;

	if ((res = db_query(conn, "SELECT extract(epoch FROM now())", 0, NULL)) == NULL)
		return -1;
	u->now = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
	for (size_t i = 0; i < cfg->nsets; i++) {
		const struct set_def *set = set_find(cfg->sets[i]);

		for (const char *const *t = set->tables; *t && u->ntables < 8; t++) {
			struct table_usage *tu = &u->tables[u->ntables++];

			tu->set = set->name;
			tu->schema = set_schema_name(set, cfg);
			tu->table = *t;
			if (read_table(conn, tu) != 0)
				return -1;
		}
	}
	if (set_ready(conn, cfg, "langgraph", 3, &err)) {
		u->ages[u->nages].set = "langgraph";
		if (read_ages(conn, WALK_LANGGRAPH, cfg->schema, u->now, &u->ages[u->nages++]) != 0 ||
		    (top > 0 && read_top(conn, cfg->schema, top, u) != 0))
			return -1;
	}
	if (set_ready(conn, cfg, "agentos", 1, &err)) {
		u->ages[u->nages].set = "agentos";
		if (read_ages(conn, WALK_AGENTOS, cfg->agentos_schema, u->now, &u->ages[u->nages++]) != 0)
			return -1;
	}
	if (set_ready(conn, cfg, "langgraph-store", 2, &err) && read_store(conn, cfg->schema, u) != 0)
		return -1;
	return err ? -1 : 0;
}

/* ---- text ---- */

static void mib(long long b, char *buf, size_t n)
{
	snprintf(buf, n, "%.1f", (double)b / (1024.0 * 1024.0));
}

static void print_text(const struct usage *u)
{
	printf("%-32s %12s %12s %10s %10s %10s %10s %10s  %s\n", "table", "rows (est.)", "live", "dead",
	       "heap MiB", "TOAST MiB", "index MiB", "total MiB", "last vacuum");
	for (size_t i = 0; i < u->ntables; i++) {
		const struct table_usage *t = &u->tables[i];
		char name[128], h[24], to[24], ix[24], tot[24];

		snprintf(name, sizeof(name), "%s.%s", t->schema, t->table);
		if (!t->exists) {
			printf("%-32s (missing: run checkpoint-agent migrate)\n", name);
			continue;
		}
		mib(t->heap, h, sizeof(h));
		mib(t->toast, to, sizeof(to));
		mib(t->indexes, ix, sizeof(ix));
		mib(t->total, tot, sizeof(tot));
		printf("%-32s %12lld %12lld %10lld %10s %10s %10s %10s  %s\n", name, t->rows, t->live, t->dead, h, to,
		       ix, tot, t->last_vacuum[0] ? t->last_vacuum : "never");
	}
	for (size_t s = 0; s < u->nages; s++) {
		const struct thread_ages *a = &u->ages[s];
		long long older = a->threads - a->unknown;

		printf("\n%s: %lld threads; age of each thread's newest checkpoint:\n", a->set, a->threads);
		printf("  %-10s %10s %7s   %s\n", "age", "threads", "share", "threads at least this old (a TTL here prunes them)");
		for (size_t b = 0; b < NBUCKETS; b++) {
			double share = a->threads ? 100.0 * (double)a->count[b] / (double)a->threads : 0.0;
			double cum = a->threads ? 100.0 * (double)older / (double)a->threads : 0.0;

			printf("  %-10s %10lld %6.1f%%   %lld (%.1f%%)\n", buckets[b].label, a->count[b], share, older, cum);
			older -= a->count[b];
		}
		if (a->unknown)
			printf("  %-10s %10lld (no readable time in their newest checkpoint)\n", "unknown", a->unknown);
	}
	if (u->ntop > 0) {
		printf("\nlargest threads (stored bytes of their checkpoints, blobs and writes):\n");
		printf("  %-40s %12s %12s  %s\n", "thread_id", "size", "checkpoints", "newest checkpoint age");
		for (size_t i = 0; i < u->ntop; i++) {
			char m[24], age[32];

			human_bytes((double)u->top[i].bytes, m, sizeof(m));
			if (u->top[i].newest_time >= 0)
				human_age(u->now - u->top[i].newest_time, age, sizeof(age));
			else
				snprintf(age, sizeof(age), "unknown");
			printf("  %-40s %12s %12lld  %s\n", u->top[i].thread_id, m, u->top[i].checkpoints, age);
		}
	}
	if (u->have_store)
		printf("\nstore: %lld rows past their expires_at (prune removes them)\n", u->store_expired);
}

/* ---- JSON ---- */

static void json_tables(const struct usage *u, struct strbuf *sb)
{
	sb_add(sb, "\"tables\":[");
	for (size_t i = 0; i < u->ntables; i++) {
		const struct table_usage *t = &u->tables[i];

		sb_add(sb, i ? ",{\"set\":" : "{\"set\":");
		sb_add_json_string(sb, t->set);
		sb_add(sb, ",\"schema\":");
		sb_add_json_string(sb, t->schema);
		sb_add(sb, ",\"table\":");
		sb_add_json_string(sb, t->table);
		sb_printf(sb, ",\"exists\":%s", t->exists ? "true" : "false");
		if (t->exists) {
			sb_printf(sb, ",\"rows_estimate\":%lld,\"live_tuples\":%lld,\"dead_tuples\":%lld,"
				  "\"heap_bytes\":%lld,\"toast_bytes\":%lld,\"index_bytes\":%lld,\"total_bytes\":%lld,"
				  "\"last_vacuum\":", t->rows, t->live, t->dead, t->heap, t->toast, t->indexes, t->total);
			if (t->last_vacuum[0])
				sb_add_json_string(sb, t->last_vacuum);
			else
				sb_add(sb, "null");
		}
		sb_add(sb, "}");
	}
	sb_add(sb, "]");
}

static void json_ages(const struct usage *u, struct strbuf *sb)
{
	sb_add(sb, ",\"threads\":{");
	for (size_t s = 0; s < u->nages; s++) {
		const struct thread_ages *a = &u->ages[s];
		double lo = 0.0;

		sb_printf(sb, "%s\"%s\":{\"count\":%lld,\"unknown_age\":%lld,\"age_histogram\":[", s ? "," : "", a->set,
			  a->threads, a->unknown);
		for (size_t b = 0; b < NBUCKETS; b++) {
			sb_printf(sb, "%s{\"label\":\"%s\",\"min_seconds\":%.0f,\"max_seconds\":", b ? "," : "",
				  buckets[b].label, lo);
			if (isinf(buckets[b].upto))
				sb_add(sb, "null");
			else
				sb_printf(sb, "%.0f", buckets[b].upto);
			sb_printf(sb, ",\"threads\":%lld}", a->count[b]);
			lo = buckets[b].upto;
		}
		sb_add(sb, "]}");
	}
	sb_add(sb, "}");
}

static void json_top(const struct usage *u, struct strbuf *sb)
{
	sb_add(sb, ",\"largest_threads\":[");
	for (size_t i = 0; i < u->ntop; i++) {
		sb_add(sb, i ? ",{\"thread_id\":" : "{\"thread_id\":");
		sb_add_json_string(sb, u->top[i].thread_id);
		sb_printf(sb, ",\"bytes\":%lld,\"checkpoints\":%lld,\"newest_age_seconds\":", u->top[i].bytes,
			  u->top[i].checkpoints);
		if (u->top[i].newest_time >= 0)
			sb_printf(sb, "%.0f}", u->now - u->top[i].newest_time);
		else
			sb_add(sb, "null}");
	}
	sb_add(sb, "]");
}

static void print_json(const struct usage *u)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_add(&sb, "{");
	json_tables(u, &sb);
	json_ages(u, &sb);
	json_top(u, &sb);
	if (u->have_store)
		sb_printf(&sb, ",\"store\":{\"expired_rows\":%lld}", u->store_expired);
	sb_add(&sb, "}\n");
	fwrite(sb.buf, 1, sb.len, stdout);
	sb_free(&sb);
}

static void usage_free(struct usage *u)
{
	for (size_t i = 0; i < u->ntables; i++)
		free(u->tables[i].last_vacuum);
	for (size_t i = 0; i < u->ntop; i++)
		free(u->top[i].thread_id);
	free(u->top);
}

static const struct option usage_longopts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "top", required_argument, NULL, 't' },
	{ NULL, 0, NULL, 0 }
};

static const char usage_help[] =
	"usage: checkpoint-agent usage [--json] [--top N]\n"
	"\n"
	"Where the space goes: each checkpoint table's size (heap, indexes, TOAST),\n"
	"its live and dead rows and last vacuum, the threads by the age of their\n"
	"newest checkpoint, and the largest threads. Read-only.\n"
	"\n"
	"Options:\n"
	"  --json           one JSON object on stdout\n"
	"  --top N          the N largest threads, 0 to 1000 (default 10; 0 skips them)\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit: 0 ok, 64 usage, 69 unreachable, 70 a query failed, 78 config.\n";

const struct command_info usage_info = { "", usage_longopts, usage_help };

static int usage_args(int argc, char **argv, bool *json, int *top)
{
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", usage_longopts, NULL)) != -1) {
		char *end;
		long v;

		if (c == 'j') {
			*json = true;
			continue;
		}
		if (c != 't')
			return cli_bad_option("usage", argv[optind - 1]);
		errno = 0;
		v = strtol(optarg, &end, 10);
		if (errno != 0 || *end != '\0' || end == optarg || v < 0 || v > 1000) {
			log_error("usage: --top %s: must be a whole number from 0 to 1000 (0 skips the largest threads)",
				  optarg);
			return AERR_USAGE;
		}
		*top = (int)v;
	}
	if (optind < argc)
		return cli_bad_option("usage", argv[optind]);
	return 0;
}

int cmd_usage(const struct config *cfg, int argc, char **argv)
{
	struct usage u;
	bool json = false;
	int top = 10, rc;
	PGconn *conn;
	char *sql;

	if ((rc = usage_args(argc, argv, &json, &top)) != 0)
		return rc;
	/* As the owner role: the agent's own login role may not read the checkpoint rows. */
	if ((conn = db_connect_owner(cfg, &rc)) == NULL)
		return rc;
	sql = xasprintf("SET statement_timeout = %d",
			cfg->statement_timeout > USAGE_STATEMENT_TIMEOUT_MS ? cfg->statement_timeout :
									      USAGE_STATEMENT_TIMEOUT_MS);
	memset(&u, 0, sizeof(u));
	if (db_exec(conn, sql) != 0 || collect(conn, cfg, top, &u) != 0) {
		rc = db_lost(conn) ? AERR_UNREACHABLE : AERR_FAIL;
	} else {
		if (json)
			print_json(&u);
		else
			print_text(&u);
		if (fflush(stdout) != 0)
			log_error("usage: cannot write to stdout");
	}
	free(sql);
	usage_free(&u);
	PQfinish(conn);
	return rc;
}
