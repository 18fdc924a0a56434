/*
 * check_size.c: the `size` check: each checkpoint table's size, and its
 * growth since the previous sample in the state file.
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

		sample_levels(sample_add1(r, "table_growth_bytes", "Growth of a checkpoint table (with TOAST and indexes) "
					  "since the previous check run.", "table", name, (double)growth), LEVELS_HIGH,
			      (double)t->growth_warn_mb * MIB, (double)t->growth_crit_mb * MIB);
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

void check_size(struct probe *p, struct check_result *r)
{
	const struct config *cfg = p->cfg;
	struct size_run sr;

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
		const char *state = p->state_error ? p->state_error : p->state_note;

		if (cfg->state_file[0] == '\0')
			state = "service.state_file is empty, so there is no growth";
		/* A state file the user configured and the agent cannot keep: the growth cannot be measured. */
		if (p->state_error != NULL && p->state_path == NULL && strcmp(cfg->state_file, CONFIG_DEFAULT_STATE_FILE) != 0)
			sr.status = CHECK_UNKNOWN;
		result_set(r, sr.status, "%s (growth warn %lld MiB, crit %lld MiB per run)%s%s",
			   sr.msg.len ? sr.msg.buf : "no checkpoint table exists", t->growth_warn_mb, t->growth_crit_mb,
			   state ? "; " : "", state ? state : "");
	}
	sb_free(&sr.msg);
}

