/*
 * check_bloat.c: the `bloat` check: for each checkpoint table, dead tuples
 * as a share of all its tuples, and the time since its last vacuum or
 * autovacuum (the functions pg_stat_user_tables reads: the view costs a fresh
 * backend about 3 ms to expand and plan). Deletes (prune, or the application's
 * delete_thread) leave dead tuples that only vacuum makes reusable; a table
 * whose dead share keeps growing, or that autovacuum has not reached for a
 * long time, is bloating. Tables with fewer than checks.dead_tuples_min
 * dead tuples are not judged, so small and idle tables stay OK.
 */
#include "check_probe.h"
#include "db.h"
#include "human.h"
#include "sets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bloat_run {
	enum check_status status;
	struct strbuf msg;
};

static void bloat_one_table(struct probe *p, struct check_result *r, struct bloat_run *br, const char *schema,
			    const char *table)
{
	const struct check_thresholds *t = &p->cfg->checks;
	char *rel = qualified(p->conn, schema, table), *name;
	const char *params[1] = { rel };
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read a table's statistics",
				  "SELECT pg_stat_get_live_tuples(c), pg_stat_get_dead_tuples(c),"
				  " extract(epoch FROM now() - greatest(pg_stat_get_last_vacuum_time(c),"
				  " pg_stat_get_last_autovacuum_time(c)))"
				  " FROM to_regclass($1) AS c WHERE c IS NOT NULL", 1, params);
	double live, dead, pct, age;
	enum check_status st = CHECK_OK;
	char dead_s[32], age_s[48];

	free(rel);
	if (res == NULL)
		return;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return;		/* missing: the schema check says so */
	}
	live = get_num(res, 0, 0);
	dead = get_num(res, 0, 1);
	age = PQgetisnull(res, 0, 2) ? NAN : get_num(res, 0, 2);
	PQclear(res);
	pct = live + dead > 0 ? 100.0 * dead / (live + dead) : 0.0;
	name = xasprintf("%s.%s", schema, table);
	sample_add1(r, "table_live_tuples", "Live tuples of a checkpoint table (pg_stat_user_tables).", "table", name,
		    live);
	sample_add1(r, "table_dead_tuples", "Dead tuples of a checkpoint table, reusable after a vacuum.", "table",
		    name, dead);
	sample_add1(r, "table_dead_tuple_ratio", "Dead tuples of a checkpoint table as a share of all its tuples.",
		    "table", name, pct / 100.0);
	if (!isnan(age))
		sample_add1(r, "table_vacuum_age_seconds", "Seconds since the last vacuum or autovacuum of a "
			    "checkpoint table.", "table", name, age);
	if (dead >= (double)t->dead_tuples_min) {
		st = level_high(pct, t->dead_tuples_warn_pct, t->dead_tuples_crit_pct);
		if (isnan(age))
			st = worse(st, CHECK_WARNING);
		else
			st = worse(st, level_high(age, (double)t->vacuum_age_warn_s, (double)t->vacuum_age_crit_s));
	}
	br->status = worse(br->status, st);
	human_count((long long)dead, dead_s, sizeof(dead_s));
	if (isnan(age))
		snprintf(age_s, sizeof(age_s), "never vacuumed");
	else {
		char a[24];

		human_age(age, a, sizeof(a));
		snprintf(age_s, sizeof(age_s), "vacuumed %s ago", a);
	}
	sb_printf(&br->msg, "%s%s %.1f%% dead (%s), %s", br->msg.len ? ", " : "", name, pct, dead_s, age_s);
	free(name);
}

void check_bloat(struct probe *p, struct check_result *r)
{
	const struct config *cfg = p->cfg;
	const struct check_thresholds *t = &cfg->checks;
	struct bloat_run br;

	memset(&br, 0, sizeof(br));
	sb_init(&br.msg);
	br.status = CHECK_OK;
	for (size_t i = 0; i < cfg->nsets && r->status == CHECK_OK; i++) {
		const struct set_def *set = set_find(cfg->sets[i]);

		for (const char *const *tb = set ? set->tables : NULL; tb && *tb && r->status == CHECK_OK; tb++)
			bloat_one_table(p, r, &br, set_schema_name(set, cfg), *tb);
	}
	if (r->status == CHECK_OK) {
		char warn[24], crit[24];

		human_age((double)t->vacuum_age_warn_s, warn, sizeof(warn));
		human_age((double)t->vacuum_age_crit_s, crit, sizeof(crit));
		result_set(r, br.status, "%s (dead warn %d%%, crit %d%%; vacuum age warn %s, crit %s; judged from %lld "
			   "dead tuples)", br.msg.len ? br.msg.buf : "no checkpoint table exists", t->dead_tuples_warn_pct,
			   t->dead_tuples_crit_pct, warn, crit, t->dead_tuples_min);
	}
	sb_free(&br.msg);
}
