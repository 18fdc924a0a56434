/*
 * report.c: a check report as text (for a person: one line per check, worst
 * first), JSON (for scripts) or Prometheus text (for node_exporter's
 * textfile collector: one prefix, HELP and TYPE once per metric, every
 * sample of a metric together).
 */
#include "check.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *check_status_name(enum check_status st)
{
	switch (st) {
	case CHECK_OK: return "OK";
	case CHECK_WARNING: return "WARNING";
	case CHECK_CRITICAL: return "CRITICAL";
	case CHECK_UNKNOWN: return "UNKNOWN";
	}
	return "UNKNOWN";
}

const char *result_state_name(const struct check_result *r)
{
	return r->skipped ? "SKIPPED" : check_status_name(r->status);
}

int check_severity(enum check_status st)
{
	switch (st) {
	case CHECK_OK: return 0;
	case CHECK_UNKNOWN: return 1;
	case CHECK_WARNING: return 2;
	case CHECK_CRITICAL: return 3;
	}
	return 1;
}

/* The results' indexes, worst first; equal ones keep the checks' order. */
static void worst_first(const struct check_report *rep, size_t *order)
{
	size_t k = 0;

	for (int sev = 3; sev >= 0; sev--)
		for (size_t i = 0; i < rep->n; i++)
			if (check_severity(rep->results[i].status) == sev)
				order[k++] = i;
}

void report_text(const struct check_report *rep, struct strbuf *out)
{
	size_t order[CHECK_MAX];

	worst_first(rep, order);
	for (size_t k = 0; k < rep->n; k++) {
		const struct check_result *r = &rep->results[order[k]];

		sb_printf(out, "%-8s %s: %s\n", check_status_name(r->status), r->name, r->message);
	}
}

char *report_summary(const struct check_report *rep)
{
	size_t order[CHECK_MAX], bad = 0;
	struct strbuf sb;

	sb_init(&sb);
	worst_first(rep, order);
	for (size_t i = 0; i < rep->n; i++)
		bad += rep->results[i].status != CHECK_OK;
	sb_printf(&sb, "%s: ", check_status_name(rep->worst));
	if (bad == 0) {
		sb_printf(&sb, "all %zu checks pass", rep->n);
	} else {
		/* The two worst, in full; the others counted. */
		for (size_t k = 0; k < bad && k < 2; k++) {
			const struct check_result *r = &rep->results[order[k]];

			sb_printf(&sb, "%s%s %s: %s", k ? "; " : "", check_status_name(r->status), r->name, r->message);
		}
		if (bad > 2)
			sb_printf(&sb, "; %zu more not OK", bad - 2);
	}
	return sb_detach(&sb);
}

static void add_number(struct strbuf *out, double v)
{
	if (isnan(v))
		sb_add(out, "NaN");
	else if (v == floor(v) && fabs(v) < 1e15)
		sb_printf(out, "%.0f", v);
	else
		sb_printf(out, "%.9g", v);
}

void report_json(const struct check_report *rep, struct strbuf *out)
{
	sb_add(out, "{\"status\":");
	sb_add_json_string(out, check_status_name(rep->worst));
	sb_printf(out, ",\"exit_code\":%d,\"duration_seconds\":", (int)rep->worst);
	add_number(out, rep->duration_s);
	sb_printf(out, ",\"time\":%lld,\"checks\":[", rep->finished_at);
	for (size_t i = 0; i < rep->n; i++) {
		const struct check_result *r = &rep->results[i];

		sb_add(out, i ? ",{\"name\":" : "{\"name\":");
		sb_add_json_string(out, r->name);
		sb_add(out, ",\"status\":");
		sb_add_json_string(out, check_status_name(r->status));
		sb_add(out, ",\"message\":");
		sb_add_json_string(out, r->message);
		sb_add(out, ",\"duration_seconds\":");
		add_number(out, r->seconds);
		sb_add(out, ",\"metrics\":[");
		for (size_t j = 0; j < r->nsamples; j++) {
			const struct check_sample *s = &r->samples[j];

			sb_add(out, j ? ",{\"name\":" : "{\"name\":");
			sb_add_json_string(out, s->metric);
			sb_add(out, ",\"labels\":{");
			for (int l = 0; l < 2 && s->label[l]; l++) {
				if (l)
					sb_add(out, ",");
				sb_add_json_string(out, s->label[l]);
				sb_add(out, ":");
				sb_add_json_string(out, s->value_label[l]);
			}
			sb_add(out, "},\"value\":");
			add_number(out, s->value);
			sb_add(out, "}");
		}
		sb_add(out, "]}");
	}
	sb_add(out, "]}\n");
}

/* A label value in the exposition format: backslash, double quote and newline escaped. */
static void add_label_value(struct strbuf *out, const char *v)
{
	sb_add(out, "\"");
	for (const char *p = v; *p; p++) {
		if (*p == '\\')
			sb_add(out, "\\\\");
		else if (*p == '"')
			sb_add(out, "\\\"");
		else if (*p == '\n')
			sb_add(out, "\\n");
		else
			sb_addn(out, p, 1);
	}
	sb_add(out, "\"");
}

static void add_sample_line(struct strbuf *out, const struct check_sample *s)
{
	sb_printf(out, METRIC_PREFIX "%s", s->metric);
	if (s->label[0] != NULL) {
		sb_add(out, "{");
		for (int l = 0; l < 2 && s->label[l]; l++) {
			sb_printf(out, "%s%s=", l ? "," : "", s->label[l]);
			add_label_value(out, s->value_label[l]);
		}
		sb_add(out, "}");
	}
	sb_add(out, " ");
	add_number(out, s->value);
	sb_add(out, "\n");
}

/* Has metric NAME been printed already, by a sample before result I, sample J? */
static bool metric_seen(const struct check_report *rep, size_t i, size_t j, const char *name)
{
	for (size_t a = 0; a <= i; a++) {
		const struct check_result *r = &rep->results[a];
		size_t end = a == i ? j : r->nsamples;

		for (size_t b = 0; b < end; b++)
			if (strcmp(r->samples[b].metric, name) == 0)
				return true;
	}
	return false;
}

/* Every sample of metric NAME, from result I, sample J on. */
static void add_metric_family(const struct check_report *rep, size_t i, size_t j, struct strbuf *out)
{
	const struct check_sample *first = &rep->results[i].samples[j];

	sb_printf(out, "# HELP " METRIC_PREFIX "%s %s\n", first->metric, first->help);
	sb_printf(out, "# TYPE " METRIC_PREFIX "%s gauge\n", first->metric);
	for (size_t a = i; a < rep->n; a++) {
		const struct check_result *r = &rep->results[a];

		for (size_t b = a == i ? j : 0; b < r->nsamples; b++)
			if (strcmp(r->samples[b].metric, first->metric) == 0)
				add_sample_line(out, &r->samples[b]);
	}
}

void report_prometheus(const struct check_report *rep, struct strbuf *out)
{
	sb_add(out, "# HELP " METRIC_PREFIX "status Worst status of all checks: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n");
	sb_add(out, "# TYPE " METRIC_PREFIX "status gauge\n");
	sb_printf(out, METRIC_PREFIX "status %d\n", (int)rep->worst);
	sb_add(out, "# HELP " METRIC_PREFIX "check_status Status of each check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n");
	sb_add(out, "# TYPE " METRIC_PREFIX "check_status gauge\n");
	for (size_t i = 0; i < rep->n; i++) {
		sb_add(out, METRIC_PREFIX "check_status{check=");
		add_label_value(out, rep->results[i].name);
		sb_printf(out, "} %d\n", (int)rep->results[i].status);
	}
	sb_add(out, "# HELP " METRIC_PREFIX "check_duration_seconds Time the whole check run took.\n");
	sb_add(out, "# TYPE " METRIC_PREFIX "check_duration_seconds gauge\n");
	sb_add(out, METRIC_PREFIX "check_duration_seconds ");
	add_number(out, rep->duration_s);
	sb_add(out, "\n# HELP " METRIC_PREFIX "last_check_timestamp_seconds When the check run finished (Unix time).\n");
	sb_add(out, "# TYPE " METRIC_PREFIX "last_check_timestamp_seconds gauge\n");
	sb_printf(out, METRIC_PREFIX "last_check_timestamp_seconds %lld\n", rep->finished_at);
	for (size_t i = 0; i < rep->n; i++)
		for (size_t j = 0; j < rep->results[i].nsamples; j++)
			if (!metric_seen(rep, i, j, rep->results[i].samples[j].metric))
				add_metric_family(rep, i, j, out);
}
