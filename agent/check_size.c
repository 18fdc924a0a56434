/*
 * check_size.c: the `size` check: each checkpoint table's size, and its
 * growth per hour.
 *
 * The rate is measured against two samples kept per table in the state file,
 * "size KEY" and "size-next KEY" (rate_reference in check_result.c: the
 * newest one at least 5 minutes old), so neither a check a second after the
 * previous one nor the first check after an outage gives a false alarm.
 */
#include "check_probe.h"
#include "db.h"
#include "log.h"
#include "sets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- size ---- */

struct size_run {
	enum check_status status;
	struct strbuf msg;
	long long now;
};

static void size_growth(struct probe *p, struct check_result *r, struct size_run *sr, const char *name,
			long long total)
{
	const struct check_thresholds *t = &p->cfg->checks;
	char *base_key = xasprintf("size %s %s", p->db_key, name);
	char *next_key = xasprintf("size-next %s %s", p->db_key, name);
	struct rate_sample base = rate_sample_of(&p->state, base_key), next = rate_sample_of(&p->state, next_key);
	const struct rate_sample *ref = rate_reference(&base, &next, sr->now);
	char total_s[32];

	format_bytes(total_s, sizeof(total_s), (double)total);
	if (ref != NULL) {
		char rate_s[32];
		long long span = sr->now - ref->at;
		double per_hour = (double)(total - ref->bytes) * 3600.0 / (double)span;

		sample_levels(sample_add1(r, "table_growth_bytes_per_second", "Growth of a checkpoint table (with TOAST "
					  "and indexes), averaged over the last 5 to 10 minutes (or since the last check "
					  "before a gap).", "table", name, per_hour / 3600.0),
			      LEVELS_HIGH, (double)t->growth_warn_mb * MIB / 3600.0, (double)t->growth_crit_mb * MIB / 3600.0);
		sr->status = worse(sr->status, level_high(per_hour / MIB, (double)t->growth_warn_mb,
							  (double)t->growth_crit_mb));
		format_bytes(rate_s, sizeof(rate_s), per_hour);
		sb_printf(&sr->msg, "%s%s %s (%s%s/h over %lld s)", sr->msg.len ? ", " : "", name, total_s,
			  per_hour >= 0 ? "+" : "", rate_s, span);
	} else {
		sb_printf(&sr->msg, "%s%s %s (growth: first sample %lld s old, measured from %d s)",
			  sr->msg.len ? ", " : "", name, total_s,
			  base.present && base.at <= sr->now ? sr->now - base.at : 0LL, RATE_MIN_AGE_S);
	}
	rate_update(&p->state, base_key, next_key, &base, &next, total, sr->now);
	free(base_key);
	free(next_key);
}

/* One table's sizes (a row of sizes_sql): samples, growth, and its part of the message. */
static void size_one_table(struct probe *p, struct check_result *r, struct size_run *sr, const char *name,
			   long long bytes, long long total)
{
	sample_add1(r, "table_size_bytes", "Size of a checkpoint table including TOAST, without indexes.",
		    "table", name, (double)bytes);
	sample_add1(r, "table_total_size_bytes", "Size of a checkpoint table with TOAST and indexes.",
		    "table", name, (double)total);
	size_growth(p, r, sr, name, total);
}

/* The sizes of every table named in $1 (quoted "schema"."table"), in one round trip; missing ones have no row. */
static const char sizes_sql[] =
	"SELECT u.n, pg_table_size(c.oid), pg_total_relation_size(c.oid) "
	"FROM unnest($1::text[]) WITH ORDINALITY AS u(rel, n) JOIN pg_class c ON c.oid = to_regclass(u.rel) "
	"ORDER BY u.n";

/* The configured sets' tables: their quoted names in RELS, "schema.table" in NAMES. */
static int list_tables(struct probe *p, struct check_result *r, struct strlist *rels, struct strlist *names)
{
	const struct config *cfg = p->cfg;

	for (size_t i = 0; i < cfg->nsets; i++) {
		const struct set_def *set = set_find(cfg->sets[i]);

		for (const char *const *t = set ? set->tables : NULL; t && *t; t++) {
			const char *schema = set_schema_name(set, cfg);
			char *rel = qualified(p->conn, schema, *t);

			if (rel == NULL) {
				result_set(r, CHECK_UNKNOWN, "the name of %s.%s cannot be quoted", schema, *t);
				return -1;
			}
			sl_add(rels, rel);
			sl_addf(names, "%s.%s", schema, *t);
			free(rel);
		}
	}
	return 0;
}

static void measure_tables(struct probe *p, struct check_result *r, struct size_run *sr)
{
	struct strlist rels, names;
	struct strbuf arr;
	PGresult *res = NULL;

	sl_init(&rels);
	sl_init(&names);
	sb_init(&arr);
	if (list_tables(p, r, &rels, &names) == 0) {
		const char *params[1];

		sb_add_pg_array(&arr, &rels);
		params[0] = arr.buf;
		res = run_query(p, r, CHECK_UNKNOWN, "cannot read the tables' sizes", sizes_sql, 1, params);
	}
	for (int i = 0; res != NULL && i < PQntuples(res); i++) {
		long n = strtol(get_str(res, i, 0), NULL, 10);

		if (n >= 1 && (size_t)n <= names.n)	/* missing tables: the schema check says so */
			size_one_table(p, r, sr, names.items[n - 1], (long long)get_num(res, i, 1),
				       (long long)get_num(res, i, 2));
	}
	PQclear(res);
	sb_free(&arr);
	sl_free(&rels);
	sl_free(&names);
}

void check_size(struct probe *p, struct check_result *r)
{
	const struct config *cfg = p->cfg;
	struct size_run sr;

	memset(&sr, 0, sizeof(sr));
	sb_init(&sr.msg);
	sr.status = CHECK_OK;
	sr.now = (long long)time(NULL);
	measure_tables(p, r, &sr);
	if (r->status == CHECK_OK) {
		const struct check_thresholds *t = &cfg->checks;
		const char *state = p->state_error ? p->state_error : p->state_note;

		if (cfg->state_file[0] == '\0')
			state = "service.state_file is empty, so there is no growth";
		/* A state file the user configured and the agent cannot keep: the growth cannot be measured. */
		if (p->state_error != NULL && p->state_path == NULL && strcmp(cfg->state_file, CONFIG_DEFAULT_STATE_FILE) != 0)
			sr.status = CHECK_UNKNOWN;
		result_set(r, sr.status, "%s (growth warn %lld MiB/h, crit %lld MiB/h)%s%s",
			   sr.msg.len ? sr.msg.buf : "no checkpoint table exists", t->growth_warn_mb, t->growth_crit_mb,
			   state ? "; " : "", state ? state : "");
	}
	sb_free(&sr.msg);
}
