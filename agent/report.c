/*
 * report.c: a check report as text (the Nagios plugin convention: a first
 * line "STATUS - summary | perfdata", then one line per check, worst first),
 * JSON (for scripts) or Prometheus text (for node_exporter's textfile
 * collector: one prefix, HELP and TYPE once per metric, every sample of a
 * metric together).
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

/* The results' indexes, worst first, skipped ones last; equal ones keep the checks' order. */
static void worst_first(const struct check_report *rep, size_t *order)
{
	size_t k = 0;

	for (int sev = 3; sev >= -1; sev--)
		for (size_t i = 0; i < rep->n; i++)
			if ((rep->results[i].skipped ? -1 : check_severity(rep->results[i].status)) == sev)
				order[k++] = i;
}

/* Text for a Nagios line: '|' starts the perfdata there, so none may appear in a message. */
static void add_plugin_text(struct strbuf *out, const char *s)
{
	for (const char *p = s; *p; p++)
		sb_addn(out, *p == '|' ? "/" : p, 1);
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

/* A perfdata label: the metric, then its label values in brackets; quoted, never with = or '. */
static void add_perf_label(struct strbuf *out, const struct check_sample *s)
{
	struct strbuf l;

	sb_init(&l);
	sb_add(&l, s->metric);
	for (int i = 0; i < 2 && s->label[i]; i++)
		sb_printf(&l, "%s%s", i ? "," : "[", s->value_label[i]);
	if (s->label[0] != NULL)
		sb_add(&l, "]");
	for (char *c = l.buf; *c; c++)
		if (*c == '=' || *c == '\'' || *c == '|' || *c == '\n' || *c == '\r' || *c == '\t')
			*c = '_';
	if (strchr(l.buf, ' ') != NULL)
		sb_printf(out, "'%s'", l.buf);
	else
		sb_add(out, l.buf);
	sb_free(&l);
}

/* Six significant digits are plenty for a graph; whole numbers stay exact. */
static void add_perf_number(struct strbuf *out, double v)
{
	if (!isnan(v) && v == floor(v) && fabs(v) < 1e15)
		sb_printf(out, "%.0f", v);
	else
		sb_printf(out, "%.6g", v);
}

/* Does METRIC end in SUFFIX (after at least one character)? */
static bool ends_with(const char *metric, const char *suffix)
{
	size_t n = strlen(metric), k = strlen(suffix);

	return n > k && strcmp(metric + n - k, suffix) == 0;
}

/*
 * A metric's unit follows from its name, as Prometheus names them: _seconds,
 * _bytes, and _total for a counter, which only grows until the server's
 * statistics are reset ("c", a continuous counter, in Nagios perfdata).
 */
static const char *perf_unit(const char *metric)
{
	if (ends_with(metric, "_seconds"))
		return "s";
	if (ends_with(metric, "_bytes"))
		return "B";
	if (ends_with(metric, "_total"))
		return "c";
	return "";
}

static const char *metric_type(const char *metric)
{
	return ends_with(metric, "_total") ? "counter" : "gauge";
}

/* One perfdata item: 'label'=value[unit];[warn];[crit];[min];[max] (Nagios plugin guidelines). */
static void add_perfdata(struct strbuf *out, const struct check_sample *s)
{
	size_t n = strlen(s->metric);
	bool ratio = n > 6 && strcmp(s->metric + n - 6, "_ratio") == 0;

	sb_add(out, " ");
	add_perf_label(out, s);
	sb_add(out, "=");
	add_perf_number(out, s->value);
	sb_add(out, perf_unit(s->metric));
	if (s->levels == LEVELS_NONE && !ratio)
		return;
	sb_add(out, ";");
	if (s->levels != LEVELS_NONE) {
		add_perf_number(out, s->warn);
		sb_add(out, s->levels == LEVELS_LOW ? ":;" : ";");	/* "10:" alerts below 10 */
		add_perf_number(out, s->crit);
		sb_add(out, s->levels == LEVELS_LOW ? ":" : "");
	} else {
		sb_add(out, ";");
	}
	if (ratio)
		sb_add(out, ";0;1");
}

/* "11 checks OK", "10 checks OK, 1 skipped (disk)"; after a worse check, "; " first and nothing for none. */
static void add_ok_count(struct strbuf *out, const struct check_report *rep, bool after)
{
	size_t ok = 0, skipped = 0;

	for (size_t i = 0; i < rep->n; i++) {
		ok += rep->results[i].status == CHECK_OK && !rep->results[i].skipped;
		skipped += rep->results[i].skipped;
	}
	if (after && ok + skipped == 0)
		return;
	sb_printf(out, "%s%zu check%s OK", after ? "; " : "", ok, ok == 1 ? "" : "s");
	if (skipped == 0)
		return;
	sb_printf(out, ", %zu skipped (", skipped);
	for (size_t i = 0, k = 0; i < rep->n; i++)
		if (rep->results[i].skipped)
			sb_printf(out, "%s%s", k++ ? ", " : "", rep->results[i].name);
	sb_add(out, ")");
}

/*
 * The first line: "WARNING - wraparound: MESSAGE; also UNKNOWN disk; 9 checks
 * OK | perfdata". The worst check speaks in full, the other checks that are
 * not OK are named with their state.
 */
static void add_first_line(struct strbuf *out, const struct check_report *rep, const size_t *order)
{
	const struct check_result *worst = rep->n ? &rep->results[order[0]] : NULL;

	sb_printf(out, "%s - ", check_status_name(rep->worst));
	if (worst != NULL && worst->status != CHECK_OK) {
		size_t also = 0;

		sb_printf(out, "%s: ", worst->name);
		add_plugin_text(out, worst->message);
		for (size_t k = 1; k < rep->n; k++) {
			const struct check_result *r = &rep->results[order[k]];

			if (r->status != CHECK_OK)
				sb_printf(out, "%s%s %s", also++ ? ", " : "; also ", check_status_name(r->status), r->name);
		}
	}
	add_ok_count(out, rep, worst != NULL && worst->status != CHECK_OK);
	sb_add(out, " |");
	for (size_t i = 0; i < rep->n; i++)
		for (size_t j = 0; j < rep->results[i].nsamples; j++)
			add_perfdata(out, &rep->results[i].samples[j]);
	sb_add(out, "\n");
}

void report_text(const struct check_report *rep, struct strbuf *out)
{
	size_t order[CHECK_MAX];

	worst_first(rep, order);
	add_first_line(out, rep, order);
	for (size_t k = 0; k < rep->n; k++) {
		const struct check_result *r = &rep->results[order[k]];

		sb_printf(out, "%-8s %s: ", result_state_name(r), r->name);
		add_plugin_text(out, r->message);
		sb_add(out, "\n");
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


void report_json(const struct check_report *rep, struct strbuf *out)
{
	sb_add(out, "{\"status\":");
	sb_add_json_string(out, check_status_name(rep->worst));
	sb_printf(out, ",\"exit_code\":%d,\"agent_version\":", (int)rep->worst);
	sb_add_json_string(out, AGENT_VERSION);
	sb_add(out, ",\"duration_seconds\":");
	add_number(out, rep->duration_s);
	sb_printf(out, ",\"time\":%lld,\"checks\":[", rep->finished_at);
	for (size_t i = 0; i < rep->n; i++) {
		const struct check_result *r = &rep->results[i];

		sb_add(out, i ? ",{\"name\":" : "{\"name\":");
		sb_add_json_string(out, r->name);
		sb_add(out, ",\"status\":");
		sb_add_json_string(out, result_state_name(r));
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
	sb_printf(out, "# TYPE " METRIC_PREFIX "%s %s\n", first->metric, metric_type(first->metric));
	for (size_t a = i; a < rep->n; a++) {
		const struct check_result *r = &rep->results[a];

		for (size_t b = a == i ? j : 0; b < r->nsamples; b++)
			if (strcmp(r->samples[b].metric, first->metric) == 0)
				add_sample_line(out, &r->samples[b]);
	}
}

/* HELP and TYPE of a gauge. */
static void add_gauge_header(struct strbuf *out, const char *name, const char *help)
{
	sb_printf(out, "# HELP " METRIC_PREFIX "%s %s\n# TYPE " METRIC_PREFIX "%s gauge\n", name, help, name);
}

/* NAME{check="..."} VALUE for every check. */
static void add_per_check(struct strbuf *out, const struct check_report *rep, const char *name, bool durations)
{
	for (size_t i = 0; i < rep->n; i++) {
		sb_printf(out, METRIC_PREFIX "%s{check=", name);
		add_label_value(out, rep->results[i].name);
		sb_add(out, "} ");
		if (durations)
			add_number(out, rep->results[i].seconds);
		else
			sb_printf(out, "%d", (int)rep->results[i].status);
		sb_add(out, "\n");
	}
}

/* The states a check can be in, as the state label's values. */
static const char *const states[] = { "ok", "warning", "critical", "unknown", "skipped" };

static const char *state_label(const struct check_result *r)
{
	if (r->skipped)
		return "skipped";
	switch (r->status) {
	case CHECK_OK: return "ok";
	case CHECK_WARNING: return "warning";
	case CHECK_CRITICAL: return "critical";
	case CHECK_UNKNOWN: return "unknown";
	}
	return "unknown";
}

void report_prometheus(const struct check_report *rep, struct strbuf *out)
{
	add_gauge_header(out, "build_info", "The agent's version, as a label; the value is always 1.");
	sb_add(out, METRIC_PREFIX "build_info{version=");
	add_label_value(out, AGENT_VERSION);
	sb_add(out, "} 1\n");
	add_gauge_header(out, "status", "Worst status of all checks: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
	sb_printf(out, METRIC_PREFIX "status %d\n", (int)rep->worst);
	add_gauge_header(out, "check_status", "1 for the state each check is in, 0 for its other states "
			 "(ok, warning, critical, unknown, skipped: does not apply here).");
	for (size_t i = 0; i < rep->n; i++) {
		for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
			sb_add(out, METRIC_PREFIX "check_status{check=");
			add_label_value(out, rep->results[i].name);
			sb_printf(out, ",state=\"%s\"} %d\n", states[k], strcmp(states[k], state_label(&rep->results[i])) == 0);
		}
	}
	add_gauge_header(out, "check_status_code", "Status of each check as a number: 0 OK (or skipped), 1 WARNING, "
			 "2 CRITICAL, 3 UNKNOWN.");
	add_per_check(out, rep, "check_status_code", false);
	add_gauge_header(out, "check_duration_seconds", "Time each check took.");
	add_per_check(out, rep, "check_duration_seconds", true);
	add_gauge_header(out, "probe_duration_seconds", "Time the whole check run took, the connection included.");
	sb_add(out, METRIC_PREFIX "probe_duration_seconds ");
	add_number(out, rep->duration_s);
	sb_add(out, "\n");
	add_gauge_header(out, "last_check_timestamp_seconds", "When the check run finished (Unix time).");
	sb_printf(out, METRIC_PREFIX "last_check_timestamp_seconds %lld\n", rep->finished_at);
	for (size_t i = 0; i < rep->n; i++)
		for (size_t j = 0; j < rep->results[i].nsamples; j++)
			if (!metric_seen(rep, i, j, rep->results[i].samples[j].metric))
				add_metric_family(rep, i, j, out);
}
