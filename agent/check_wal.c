/*
 * check_wal.c: the `wal` check: the rate at which the server writes WAL,
 * and whether max_wal_size holds a checkpoint cycle's worth of it.
 *
 * PostgreSQL starts a checkpoint early ("requested") once the WAL written
 * since the last one passes max_wal_size / (1 + checkpoint_completion_target).
 * So at a rate R a cycle of checkpoint_timeout T needs
 * R x T x (1 + checkpoint_completion_target) of max_wal_size; above 100%
 * checkpoints come more often than T, each one writes every dirty buffer
 * again and the first change of each page after it is logged whole. The
 * check reports that fill, judged by checks.wal_fill_warn_pct (80) and
 * wal_fill_crit_pct (200), with the rate measured like the tables' growth
 * (rate_reference: against a state-file sample 5 to 10 minutes old), and
 * the checkpoint counters (pg_stat_bgwriter: a requested one comes from WAL
 * volume, a CHECKPOINT command or a backup's start, so they are reported,
 * not judged). On a standby, WAL is the leader's: skipped.
 */
#include "check_probe.h"
#include "human.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

const char wal_sql[] =
	"SELECT pg_is_in_recovery(), "
	"CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') END, "
	"pg_size_bytes(current_setting('max_wal_size')), "
	"(SELECT setting::int FROM pg_settings WHERE name = 'checkpoint_timeout'), "
	"current_setting('checkpoint_completion_target')::float8, "
	"checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter";

struct wal_figures {
	double lsn, max_wal, timeout_s, target, timed, req;
};

static void wal_samples(struct check_result *r, const struct wal_figures *w)
{
	sample_add(r, "wal_position_bytes", "WAL written since the cluster was created (pg_current_wal_lsn).", w->lsn);
	sample_add(r, "max_wal_size_bytes", "max_wal_size: the WAL between checkpoints before one is forced.",
		   w->max_wal);
	sample_add(r, "checkpoints_timed_total", "Checkpoints started by checkpoint_timeout since the statistics were "
		   "reset.", w->timed);
	sample_add(r, "checkpoints_requested_total", "Checkpoints requested: by WAL volume, a CHECKPOINT command or "
		   "a backup's start.", w->req);
}

/* A counter's change since the reference sample, as text: "unknown" without one (or after a reset). */
static void counter_since(char *buf, size_t n, double now_v, const struct rate_sample *ref)
{
	if (ref == NULL)
		snprintf(buf, n, "unknown");
	else
		snprintf(buf, n, "%.0f", now_v - (double)ref->bytes);
}

/* The message and status once a rate is known: the cycle's fill of max_wal_size, and what to do above it. */
static void wal_judge(struct probe *p, struct check_result *r, const struct wal_figures *w, double rate,
		      long long span, const char *timed_since, const char *req_since)
{
	const struct check_thresholds *t = &p->cfg->checks;
	double need = rate * w->timeout_s * (1.0 + w->target);	/* the WAL of one checkpoint cycle */
	double fill = w->max_wal > 0 ? 100.0 * need / w->max_wal : 0.0;
	enum check_status st = level_high(fill, t->wal_fill_warn_pct, t->wal_fill_crit_pct);
	char rate_s[32], need_s[32], max_s[32], cycle_s[24];

	sample_add(r, "wal_bytes_per_second", "WAL written per second, over the last 5 to 10 minutes.", rate);
	sample_levels(sample_add(r, "wal_cycle_bytes", "WAL of one checkpoint cycle at the measured rate: above "
				 "max_wal_size, checkpoints are forced early.", need),
		      LEVELS_HIGH, w->max_wal * t->wal_fill_warn_pct / 100.0, w->max_wal * t->wal_fill_crit_pct / 100.0);
	format_bytes(rate_s, sizeof(rate_s), rate);
	format_bytes(need_s, sizeof(need_s), need);
	format_bytes(max_s, sizeof(max_s), w->max_wal);
	human_age(w->timeout_s, cycle_s, sizeof(cycle_s));
	result_set(r, st, "%s/s of WAL over %lld s: a checkpoint cycle (%s x %.2g) needs %s, %.0f%% of max_wal_size %s "
		   "(warn %d%%, crit %d%%); checkpoints since: %s timed, %s requested%s",
		   rate_s, span, cycle_s, 1.0 + w->target, need_s, fill, max_s, t->wal_fill_warn_pct,
		   t->wal_fill_crit_pct, timed_since, req_since,
		   st == CHECK_OK ? "" : fill >= 100.0 ? "; checkpoints come early by WAL volume: raise max_wal_size "
		   "(provision.sh --wal-rate) or checkpoint_timeout" : "; max_wal_size is nearly too small for this rate");
}

/* Measures the rate against the state file's samples ("wal", "ckpt-timed", "ckpt-req"), and keeps them. */
static void wal_rate(struct probe *p, struct check_result *r, const struct wal_figures *w)
{
	const char *names[] = { "wal", "ckpt-timed", "ckpt-req" };
	const double now_v[] = { w->lsn, w->timed, w->req };
	struct rate_sample base[3], next[3];
	const struct rate_sample *ref[3];
	char *keys[3][2];
	long long now = (long long)time(NULL);

	for (int i = 0; i < 3; i++) {
		keys[i][0] = xasprintf("%s %s", names[i], p->db_key);
		keys[i][1] = xasprintf("%s-next %s", names[i], p->db_key);
		base[i] = rate_sample_of(&p->state, keys[i][0]);
		next[i] = rate_sample_of(&p->state, keys[i][1]);
		ref[i] = rate_reference(&base[i], &next[i], now);
		/* a counter that went back (another cluster at this address, a stats reset) starts again */
		if (ref[i] != NULL && (double)ref[i]->bytes > now_v[i]) {
			base[i].present = next[i].present = false;
			ref[i] = NULL;
		}
	}
	if (ref[0] != NULL) {	/* at least RATE_MIN_AGE_S old */
		char timed_s[24], req_s[24];
		long long span = now - ref[0]->at;

		counter_since(timed_s, sizeof(timed_s), w->timed, ref[1]);
		counter_since(req_s, sizeof(req_s), w->req, ref[2]);
		wal_judge(p, r, w, (w->lsn - (double)ref[0]->bytes) / (double)span, span, timed_s, req_s);
	} else {
		char max_s[32];

		format_bytes(max_s, sizeof(max_s), w->max_wal);
		result_set(r, CHECK_OK, "WAL rate: first sample %lld s old, measured from %d s; max_wal_size %s",
			   base[0].present && base[0].at <= now ? now - base[0].at : 0LL, RATE_MIN_AGE_S, max_s);
	}
	for (int i = 0; i < 3; i++) {
		rate_update(&p->state, keys[i][0], keys[i][1], &base[i], &next[i], (long long)now_v[i], now);
		free(keys[i][0]);
		free(keys[i][1]);
	}
}

void check_wal(struct probe *p, struct check_result *r)
{
	PGresult *res = probe_query(p, r, PRE_WAL, CHECK_UNKNOWN, "cannot read the WAL position and settings");
	struct wal_figures w;

	if (res == NULL)
		return;
	if (PQntuples(res) != 1) {
		result_set(r, CHECK_UNKNOWN, "pg_stat_bgwriter returned %d rows", PQntuples(res));
		PQclear(res);
		return;
	}
	if (get_str(res, 0, 0)[0] == 't') {
		result_skip(r, "a standby: its WAL is the leader's, judged there");
		PQclear(res);
		return;
	}
	w = (struct wal_figures){ get_num(res, 0, 1), get_num(res, 0, 2), get_num(res, 0, 3), get_num(res, 0, 4),
				  get_num(res, 0, 5), get_num(res, 0, 6) };
	PQclear(res);
	wal_samples(r, &w);
	if (p->state_path == NULL) {
		result_skip(r, "no state file: the WAL rate needs the previous sample (service.state_file)");
		return;
	}
	wal_rate(p, r, &w);
}
