/*
 * check_result.c: the results and samples of the checks, the WARNING and
 * CRITICAL levels, and the query helpers every check uses.
 */
#include "check_probe.h"
#include "db.h"
#include "log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- results and samples ---- */

struct check_result *result_new(struct check_report *rep, const char *name)
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

void result_set(struct check_result *r, enum check_status st, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = xstrdup("(out of memory formatting the message)");
	va_end(ap);
	/* One line: server and libpq messages carry newlines and tabs; a run of them becomes one space. */
	for (char *c = msg, *o = msg;; c++) {
		bool ws = *c == '\n' || *c == '\t' || *c == '\r';

		if (ws && (o == msg || o[-1] == ' '))
			continue;
		if (ws)
			*o++ = ' ';
		else
			*o++ = *c;
		if (*c == '\0')
			break;
	}
	free(r->message);
	r->message = msg;
	r->status = st;
	r->skipped = false;
}

void result_skip(struct check_result *r, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	result_set(r, CHECK_OK, "%s", msg ? msg : "(out of memory formatting the message)");
	r->skipped = true;
	free(msg);
}

struct check_sample *sample_add(struct check_result *r, const char *metric, const char *help, double v)
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

struct check_sample *sample_add1(struct check_result *r, const char *metric, const char *help,
				 const char *label, const char *value_label, double v)
{
	struct check_sample *s = sample_add(r, metric, help, v);

	s->label[0] = label;
	s->value_label[0] = xstrdup(value_label);
	return s;
}

void sample_levels(struct check_sample *s, enum sample_levels kind, double warn, double crit)
{
	s->levels = kind;
	s->warn = warn;
	s->crit = crit;
}

void sample_add2(struct check_result *r, const char *metric, const char *help,
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
enum check_status level_high(double v, double warn, double crit)
{
	if (v >= crit)
		return CHECK_CRITICAL;
	if (v >= warn)
		return CHECK_WARNING;
	return CHECK_OK;
}

/* Lower is worse (free space). */
enum check_status level_low(double v, double warn, double crit)
{
	if (v < crit)
		return CHECK_CRITICAL;
	if (v < warn)
		return CHECK_WARNING;
	return CHECK_OK;
}

void finding_vadd(enum check_status *status, struct strbuf *msg, enum check_status st, const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	sb_printf(msg, "%s%s", msg->len ? "; " : "", s ? s : "?");
	free(s);
	*status = worse(*status, st);
}

enum check_status worse(enum check_status a, enum check_status b)
{
	return check_severity(a) >= check_severity(b) ? a : b;
}

void format_bytes(char *buf, size_t n, double b)
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


/* ---- rates from the state file ---- */

struct rate_sample rate_sample_of(const struct size_state *st, const char *key)
{
	const struct size_sample *s = state_find(st, key);

	return s ? (struct rate_sample){ true, s->bytes, s->at } : (struct rate_sample){ false, 0, 0 };
}

const struct rate_sample *rate_reference(const struct rate_sample *base, const struct rate_sample *next,
					 long long now)
{
	if (next->present && now - next->at >= RATE_MIN_AGE_S)
		return next;
	if (base->present && now - base->at >= RATE_MIN_AGE_S)
		return base;
	return NULL;
}

void rate_update(struct size_state *st, const char *base_key, const char *next_key, const struct rate_sample *base,
		 const struct rate_sample *next, long long value, long long now)
{
	if (!base->present || base->at > now) {
		state_put(st, base_key, value, now);
	} else if (!next->present || next->at > now) {
		if (now - base->at >= RATE_MIN_AGE_S)
			state_put(st, next_key, value, now);
	} else if (now - next->at >= RATE_MIN_AGE_S) {
		state_put(st, base_key, next->bytes, next->at);
		state_put(st, next_key, value, now);
	}
}

/* ---- queries ---- */

/*
 * Runs SQL with text parameters. On failure sets R to FAIL with "WHAT: the
 * server's error" and returns NULL.
 */
PGresult *run_query(struct probe *p, struct check_result *r, enum check_status fail, const char *what,
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

PGresult *probe_query(struct probe *p, struct check_result *r, enum prefetch which, enum check_status fail,
		      const char *what)
{
	PGresult *res = p->pre[which];

	if (res != NULL) {
		p->pre[which] = NULL;
		return res;
	}
	return run_query(p, r, fail, what, prefetch_sql[which], 0, NULL);
}

double get_num(const PGresult *res, int row, int col)
{
	if (row >= PQntuples(res) || PQgetisnull(res, row, col))
		return 0.0;
	return strtod(PQgetvalue(res, row, col), NULL);
}

const char *get_str(const PGresult *res, int row, int col)
{
	if (row >= PQntuples(res) || PQgetisnull(res, row, col))
		return "";
	return PQgetvalue(res, row, col);
}

/* "schema"."table", quoted for SQL. */
char *qualified(PGconn *conn, const char *schema, const char *table)
{
	char *s = db_ident(conn, schema), *t = db_ident(conn, table);
	char *q = s && t ? xasprintf("%s.%s", s, t) : NULL;

	PQfreemem(s);
	PQfreemem(t);
	return q;
}

