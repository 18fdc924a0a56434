/*
 * status.c: `status` and `verify`, the read-only commands.
 *
 * status reports, for each set: the recorded version, each version with
 * when and by whom it was applied (from the ledger), the pending versions,
 * the versions applied by someone else (LangGraph's own setup()), and
 * drift: a ledger checksum that differs from the embedded SQL, with what to
 * do about it. It also lists the tables in quarantine schemas. It exits 0
 * when it could report; with --exit-code, 1 when versions are pending and 2
 * on drift, for scripts.
 */
#include "agent.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "db_role.h"
#include "ledger.h"
#include "log.h"
#include "migrate.h"
#include "step.h"
#include "util.h"
#include "verify.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum version_state { V_NONE, V_APPLIED, V_EXTERNAL, V_PENDING, V_MISSING };

/* One version of a set, as status shows it. */
struct version_row {
	enum version_state state;
	const char *name;		/* from the embedded file */
	struct ledger_entry ledger;	/* its last ledger entry (owned) */
	bool drift;			/* the ledger's checksum is not this agent's */
};

struct set_report {
	const struct set_def *set;
	struct set_state st;
	struct version_row *rows;	/* [0..st.latest] */
	size_t npending, nexternal, ndrift;
};

static int build_report(PGconn *conn, const struct config *cfg, const struct set_def *set,
			struct set_report *r)
{
	struct ledger_entry *entries;
	int rc;

	memset(r, 0, sizeof(*r));
	r->set = set;
	if (set_read_state(conn, cfg, set, &r->st) != 0)
		return -1;
	entries = xcalloc((size_t)r->st.latest + 1, sizeof(*entries));
	r->rows = xcalloc((size_t)r->st.latest + 1, sizeof(*r->rows));
	rc = ledger_last_entries(conn, cfg, set, r->st.latest, entries);
	for (int v = 0; v <= r->st.latest; v++) {
		const struct sql_file *f = set_file(set, v, true);
		struct version_row *row = &r->rows[v];

		row->name = f ? f->name : "?";
		row->ledger = entries[v];
		if (rc != 0)
			continue;
		if (!r->st.applied[v]) {
			row->state = v > r->st.recorded ? V_PENDING : V_MISSING;
			r->npending += row->state == V_PENDING;
		} else if (!row->ledger.present || !row->ledger.up) {
			row->state = V_EXTERNAL;
			r->nexternal++;
		} else {
			row->state = V_APPLIED;
			row->drift = f != NULL && !sql_file_checksum_matches(f, row->ledger.checksum);
			r->ndrift += row->drift;
		}
	}
	free(entries);
	return rc;
}

static void report_free(struct set_report *r)
{
	for (int v = 0; r->rows != NULL && v <= r->st.latest; v++)
		ledger_entry_free(&r->rows[v].ledger);
	free(r->rows);
	set_state_free(&r->st);
}

/* "checkpoint-agent 0.1.0 on db1" (caller frees). */
static char *applied_by(const struct ledger_entry *e)
{
	return xasprintf("checkpoint-agent %s on %s", e->agent_version, e->host);
}

/* What to do about drift in version V. */
static char *drift_hint(const struct set_report *r, int v)
{
	char *by = applied_by(&r->rows[v].ledger), *s;

	s = xasprintf("the SQL of %s v%d changed after %s applied it. Run `checkpoint-agent verify`: if the live "
		      "schema still matches, use the agent release that applied it (its checksum is the ledger's); "
		      "if it does not, roll %s back below v%d and migrate again, which applies this agent's SQL",
		      r->set->name, v, by, r->set->name, v);
	free(by);
	return s;
}

#define IN(state) (1u << (state))

/* The versions of R whose state is in the mask STATES (IN(V_PENDING) | ...), separated by SEP. */
static void add_versions(struct strbuf *sb, const struct set_report *r, unsigned states, const char *sep)
{
	size_t k = 0;

	for (int v = 0; v <= r->st.latest; v++)
		if (states & IN(r->rows[v].state))
			sb_printf(sb, "%s%d", k++ ? sep : "", v);
}

static const char *state_words(enum version_state s)
{
	switch (s) {
	case V_APPLIED: return "applied";
	case V_EXTERNAL: return "applied externally";
	case V_PENDING: return "pending";
	case V_MISSING: return "missing";
	case V_NONE: break;
	}
	return "";
}

/* The versions as a table: version, name, when (UTC) and by whom. */
static void print_versions(const struct set_report *r)
{
	int width = 4;

	for (int v = 0; v <= r->st.latest; v++)
		if ((int)strlen(r->rows[v].name) > width)
			width = (int)strlen(r->rows[v].name);
	printf("  %-7s  %-*s  %-19s  %s\n", "version", width, "name", "applied (UTC)", "by");
	for (int v = 0; v <= r->st.latest; v++) {
		const struct version_row *row = &r->rows[v];
		char when[20] = "", *by = NULL;

		if (row->state == V_APPLIED) {
			/* 2026-01-31T12:00:00Z as 2026-01-31 12:00:00 */
			snprintf(when, sizeof(when), "%.10s %.8s", row->ledger.finished_at, row->ledger.finished_at + 11);
			by = applied_by(&row->ledger);
		} else if (row->state == V_EXTERNAL) {
			snprintf(when, sizeof(when), "unknown");
			by = xstrdup("the application's setup(), not this agent (no ledger entry)");
		} else if (row->state == V_PENDING) {
			snprintf(when, sizeof(when), "pending");
		} else if (row->state == V_MISSING) {
			snprintf(when, sizeof(when), "missing");
			by = xstrdup("not applied, yet a later version is");
		}
		if (by == NULL)
			printf("  %-7d  %-*s  %s\n", v, width, row->name, when);
		else
			printf("  %-7d  %-*s  %-19s  %s%s\n", v, width, row->name, when, by,
			       row->drift ? " (drift: see above)" : "");
		free(by);
	}
}

static void print_text(const struct config *cfg, const struct set_report *r)
{
	struct strbuf sb;

	sb_init(&sb);
	printf("set %s (schema %s, versions in %s)\n", r->set->name, set_schema_name(r->set, cfg),
	       r->set->version_table);
	if (r->st.recorded < 0)
		printf("  version:  none of %d (nothing applied yet)\n", r->st.latest);
	else
		printf("  version:  %d of %d%s\n", r->st.recorded, r->st.latest,
		       r->st.recorded > r->st.latest ? " (newer than this agent knows)" : "");
	add_versions(&sb, r, IN(V_PENDING), " ");
	printf("  pending:  %s\n", sb.len ? sb.buf : "none");
	sb_reset(&sb);
	if (r->nexternal > 0) {
		add_versions(&sb, r, IN(V_EXTERNAL), " ");
		printf("  applied externally (by the application's setup(), not by this agent): %s\n", sb.buf);
		sb_reset(&sb);
	}
	if (r->ndrift == 0)
		printf("  drift:    none\n");
	for (int v = 0; v <= r->st.latest; v++) {
		char *hint;

		if (!r->rows[v].drift)
			continue;
		hint = drift_hint(r, v);
		printf("  drift:    v%d: the ledger has sha256 %s, this agent's SQL has %s\n", v,
		       r->rows[v].ledger.checksum, set_file(r->set, v, true)->sha256);
		printf("            hint: %s\n", hint);
		free(hint);
	}
	if (r->st.latest >= 0 && (r->st.recorded >= 0 || r->npending > 0))
		print_versions(r);
	sb_free(&sb);
}

/* A JSON string, or null for NULL. */
static void add_json_or_null(struct strbuf *sb, const char *s)
{
	if (s == NULL)
		sb_add(sb, "null");
	else
		sb_add_json_string(sb, s);
}

static void print_json_versions(const struct set_report *r, struct strbuf *sb)
{
	size_t k = 0;

	sb_add(sb, ",\"versions\":[");
	for (int v = 0; v <= r->st.latest; v++) {
		const struct version_row *row = &r->rows[v];
		bool mine = row->state == V_APPLIED;

		if (row->state == V_NONE)
			continue;
		sb_printf(sb, "%s{\"version\":%d,\"name\":", k++ ? "," : "", v);
		sb_add_json_string(sb, row->name);
		sb_add(sb, ",\"state\":");
		sb_add_json_string(sb, state_words(row->state));
		sb_add(sb, ",\"applied_at\":");
		add_json_or_null(sb, mine ? row->ledger.finished_at : NULL);
		sb_add(sb, ",\"agent_version\":");
		add_json_or_null(sb, mine ? row->ledger.agent_version : NULL);
		sb_add(sb, ",\"host\":");
		add_json_or_null(sb, mine ? row->ledger.host : NULL);
		sb_printf(sb, ",\"drift\":%s}", row->drift ? "true" : "false");
	}
	sb_add(sb, "]");
}

static void print_json_drift(const struct set_report *r, struct strbuf *sb)
{
	size_t k = 0;

	sb_add(sb, ",\"drift\":[");
	for (int v = 0; v <= r->st.latest; v++) {
		const struct sql_file *f = set_file(r->set, v, true);
		char *file, *by, *hint;

		if (!r->rows[v].drift)
			continue;
		file = xasprintf("%04d_%s.up.sql", v, f->name);
		by = applied_by(&r->rows[v].ledger);
		hint = drift_hint(r, v);
		sb_printf(sb, "%s{\"version\":%d,\"file\":", k++ ? "," : "", v);
		sb_add_json_string(sb, file);
		sb_add(sb, ",\"ledger_sha256\":");
		sb_add_json_string(sb, r->rows[v].ledger.checksum);
		sb_add(sb, ",\"agent_sha256\":");
		sb_add_json_string(sb, f->sha256);
		sb_add(sb, ",\"applied_by\":");
		sb_add_json_string(sb, by);
		sb_add(sb, ",\"hint\":");
		sb_add_json_string(sb, hint);
		sb_add(sb, "}");
		free(file);
		free(by);
		free(hint);
	}
	sb_add(sb, "]");
}

static void print_json_set(const struct config *cfg, const struct set_report *r, struct strbuf *sb)
{
	sb_add(sb, "{\"name\":");
	sb_add_json_string(sb, r->set->name);
	sb_add(sb, ",\"schema\":");
	sb_add_json_string(sb, set_schema_name(r->set, cfg));
	sb_add(sb, ",\"version_table\":");
	sb_add_json_string(sb, r->set->version_table);
	if (r->st.recorded < 0)
		sb_add(sb, ",\"version\":null");
	else
		sb_printf(sb, ",\"version\":%d", r->st.recorded);
	sb_printf(sb, ",\"latest\":%d,\"applied\":[", r->st.latest);
	add_versions(sb, r, IN(V_APPLIED) | IN(V_EXTERNAL), ",");
	sb_add(sb, "],\"pending\":[");
	add_versions(sb, r, IN(V_PENDING), ",");
	sb_add(sb, "],\"applied_externally\":[");
	add_versions(sb, r, IN(V_EXTERNAL), ",");
	sb_add(sb, "]");
	print_json_versions(r, sb);
	print_json_drift(r, sb);
	sb_add(sb, "}");
}

/* Tables in checkpoint_quarantine_* schemas, "schema.table (N rows)". */
static int quarantined_tables(PGconn *conn, struct strlist *out, struct strbuf *json)
{
	PGresult *res = db_query(conn,
		"SELECT n.nspname, c.relname, coalesce(substring(obj_description(c.oid, 'pg_class')"
		" FROM 'holding ([0-9]+) rows'), 'null')"
		" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
		" WHERE n.nspname LIKE 'checkpoint\\_quarantine\\_%' AND c.relkind IN ('r', 'p')"
		" ORDER BY 1, 2", 0, NULL);

	if (res == NULL)
		return -1;
	sb_add(json, "\"quarantine\":[");
	for (int i = 0; i < PQntuples(res); i++) {
		sl_addf(out, "%s.%s (%s rows when quarantined)", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			strcmp(PQgetvalue(res, i, 2), "null") == 0 ? "?" : PQgetvalue(res, i, 2));
		sb_add(json, i ? ",{\"schema\":" : "{\"schema\":");
		sb_add_json_string(json, PQgetvalue(res, i, 0));
		sb_add(json, ",\"table\":");
		sb_add_json_string(json, PQgetvalue(res, i, 1));
		sb_printf(json, ",\"rows_when_quarantined\":%s}", PQgetvalue(res, i, 2));
	}
	sb_add(json, "]");
	PQclear(res);
	return 0;
}

/*
 * Prints the report. Returns STATUS_CURRENT, or with --exit-code the result
 * STATUS_PENDING or STATUS_DRIFT; an agent_err when it could not report.
 */
static int status_all(PGconn *conn, const struct config *cfg, bool json, bool exit_code)
{
	struct strbuf sb;
	struct strlist quarantine;
	bool pending = false, drift = false;
	int rc = 0;

	sb_init(&sb);
	sl_init(&quarantine);
	sb_add(&sb, "{\"sets\":[");
	for (size_t i = 0; i <= cfg->nsets && rc == 0; i++) {
		const struct set_def *set = i == 0 ? &agent_set : set_find(cfg->sets[i - 1]);
		struct set_report r;

		if ((rc = build_report(conn, cfg, set, &r)) == 0) {
			pending = pending || r.npending > 0;
			drift = drift || r.ndrift > 0;
			if (json) {
				sb_add(&sb, i ? "," : "");
				print_json_set(cfg, &r, &sb);
			} else {
				printf("%s", i ? "\n" : "");
				print_text(cfg, &r);
			}
		}
		report_free(&r);
	}
	sb_add(&sb, "],");
	if (rc == 0)
		rc = quarantined_tables(conn, &quarantine, &sb);
	if (rc == 0 && json) {
		sb_printf(&sb, ",\"pending\":%s,\"drift\":%s}", pending ? "true" : "false", drift ? "true" : "false");
		printf("%s\n", sb.buf);
	} else if (rc == 0) {
		printf("\nquarantined tables: %s\n", quarantine.n ? "" : "none");
		for (size_t i = 0; i < quarantine.n; i++)
			printf("  %s\n", quarantine.items[i]);
	}
	sl_free(&quarantine);
	sb_free(&sb);
	if (rc != 0)
		return db_read_fail_code(conn);
	if (!exit_code)
		return STATUS_CURRENT;
	return drift ? STATUS_DRIFT : pending ? STATUS_PENDING : STATUS_CURRENT;
}

static const struct option status_longopts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "exit-code", no_argument, NULL, 'e' },
	{ NULL, 0, NULL, 0 }
};

static const char status_help[] =
	"usage: checkpoint-agent status [--json] [--exit-code]\n"
	"\n"
	"Each set's recorded version ('none' before the first), its pending versions,\n"
	"versions applied externally (by the application's setup()), drift (a recorded\n"
	"checksum that differs from this agent's SQL) with how to resolve it, every\n"
	"version with when (UTC) and by which agent on which host it was applied, and\n"
	"the quarantined tables.\n"
	"\n"
	"Options:\n"
	"  --json           one JSON object on stdout\n"
	"  --exit-code      exit 1 while versions are pending, 2 on drift (for scripts)\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit: 0 (also with versions pending or drift, unless --exit-code), 64 usage,\n"
	"69 unreachable (or a query failed), 77 the role may not read a table it needs, 78 config.\n";

const struct command_info status_info = { "", status_longopts, status_help };

static const struct option verify_longopts[] = {
	{ NULL, 0, NULL, 0 }
};

static const char verify_help[] =
	"usage: checkpoint-agent verify\n"
	"\n"
	"Compares each set's live tables, columns, primary keys and indexes with the\n"
	"shape its recorded version implies (built from the embedded SQL on temporary\n"
	"tables, in a transaction that is rolled back). One line per difference.\n"
	"\n"
	"Options:\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit: 0 the schema matches, 65 it differs, 64 usage, 69 unreachable (or a\n"
	"query failed), 77 the role may not read what it needs, 78 config.\n";

const struct command_info verify_info = { "", verify_longopts, verify_help };

int cmd_status(const struct config *cfg, int argc, char **argv)
{
	bool json = false, exit_code = false;
	PGconn *conn;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", status_longopts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'e')
			exit_code = true;
		else
			return cli_bad_option("status", argv[optind - 1]);
	}
	if (optind < argc)
		return cli_bad_option("status", argv[optind]);
	if ((conn = db_connect_owner(cfg, &rc)) == NULL)
		return rc;
	rc = status_all(conn, cfg, json, exit_code);
	PQfinish(conn);
	return rc;
}

/* Verifies SET at its recorded version; appends "set: difference" lines. */
static int verify_one(PGconn *conn, const struct config *cfg, const struct set_def *set, struct strlist *all)
{
	struct set_state st;
	struct strlist diffs;
	int rc;

	sl_init(&diffs);
	rc = set_read_state(conn, cfg, set, &st);
	if (rc == 0 && st.recorded > st.latest)
		sl_addf(&diffs, "version %d is newer than this agent knows (%d)", st.recorded, st.latest);
	else if (rc == 0)
		rc = verify_set(conn, cfg, set, st.recorded, &diffs);
	for (size_t i = 0; i < diffs.n; i++)
		sl_addf(all, "%s v%d: %s", set->name, st.recorded, diffs.items[i]);
	set_state_free(&st);
	sl_free(&diffs);
	return rc;
}

int cmd_verify(const struct config *cfg, int argc, char **argv)
{
	struct strlist diffs;
	PGconn *conn;
	int rc = 0;

	optind = 1;
	opterr = 0;
	if (getopt_long(argc, argv, "+", verify_longopts, NULL) != -1)
		return cli_bad_option("verify", argv[optind - 1]);
	if (optind < argc)
		return cli_bad_option("verify", argv[optind]);
	if ((conn = db_connect_owner(cfg, &rc)) == NULL)
		return rc;
	sl_init(&diffs);
	for (size_t i = 0; i <= cfg->nsets && rc == 0; i++)
		rc = verify_one(conn, cfg, i == 0 ? &agent_set : set_find(cfg->sets[i - 1]), &diffs);
	if (rc != 0)
		rc = db_read_fail_code(conn);
	else if (diffs.n > 0) {
		for (size_t i = 0; i < diffs.n; i++)
			printf("%s\n", diffs.items[i]);
		log_error("the schema differs from its recorded version in %zu place%s", diffs.n,
			  diffs.n == 1 ? "" : "s");
		rc = AERR_SCHEMA;
	} else {
		printf("the schema matches the recorded version of every set\n");
	}
	sl_free(&diffs);
	PQfinish(conn);
	return rc;
}
