/*
 * status.c: `status` and `verify`, the read-only commands.
 *
 * status reports, for each set: the recorded version, the applied and
 * pending versions, the versions applied by someone else (LangGraph's own
 * setup()), and drift: a ledger checksum that differs from the embedded SQL.
 * It also lists the tables in quarantine schemas.
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

struct set_report {
	const struct set_def *set;
	struct set_state st;
	struct strlist applied, pending, external, drift;
};

/* "0-4,6" style ranges would hide gaps less clearly than a plain list. */
static void add_version(struct strlist *l, int v)
{
	sl_addf(l, "%d", v);
}

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
	rc = ledger_last_entries(conn, cfg, set, r->st.latest, entries);
	for (int v = 0; rc == 0 && v <= r->st.latest; v++) {
		const struct sql_file *f = set_file(set, v, true);

		if (!r->st.applied[v]) {
			if (v > r->st.recorded)
				add_version(&r->pending, v);
			continue;
		}
		add_version(&r->applied, v);
		if (!entries[v].present || !entries[v].up)
			add_version(&r->external, v);
		else if (f != NULL && !sql_file_checksum_matches(f, entries[v].checksum))
			sl_addf(&r->drift, "v%d: the ledger has sha256 %s, this agent's SQL has %s", v,
				entries[v].checksum, f->sha256);
	}
	ledger_entries_free(entries, r->st.latest);
	free(entries);
	return rc;
}

static void report_free(struct set_report *r)
{
	set_state_free(&r->st);
	sl_free(&r->applied);
	sl_free(&r->pending);
	sl_free(&r->external);
	sl_free(&r->drift);
}

static void join(struct strbuf *sb, const struct strlist *l, const char *sep, bool json)
{
	for (size_t i = 0; i < l->n; i++) {
		sb_add(sb, i ? sep : "");
		if (json && strchr(l->items[i], ' ') != NULL)
			sb_add_json_string(sb, l->items[i]);
		else
			sb_add(sb, l->items[i]);
	}
}

static void print_text(const struct config *cfg, const struct set_report *r)
{
	struct strbuf sb;

	sb_init(&sb);
	printf("set %s (schema %s, versions in %s)\n", r->set->name, set_schema_name(r->set, cfg),
	       r->set->version_table);
	printf("  version:  %d of %d\n", r->st.recorded, r->st.latest);
	join(&sb, &r->applied, " ", false);
	printf("  applied:  %s\n", sb.len ? sb.buf : "none");
	sb_reset(&sb);
	join(&sb, &r->pending, " ", false);
	printf("  pending:  %s\n", sb.len ? sb.buf : "none");
	sb_reset(&sb);
	if (r->external.n > 0) {
		join(&sb, &r->external, " ", false);
		printf("  applied externally (by the application's setup(), not by this agent): %s\n", sb.buf);
		sb_reset(&sb);
	}
	if (r->drift.n == 0)
		printf("  drift:    none\n");
	for (size_t i = 0; i < r->drift.n; i++)
		printf("  drift:    %s\n", r->drift.items[i]);
	sb_free(&sb);
}

static void print_json_set(const struct config *cfg, const struct set_report *r, struct strbuf *sb)
{
	sb_add(sb, "{\"name\":");
	sb_add_json_string(sb, r->set->name);
	sb_add(sb, ",\"schema\":");
	sb_add_json_string(sb, set_schema_name(r->set, cfg));
	sb_printf(sb, ",\"version\":%d,\"latest\":%d,\"applied\":[", r->st.recorded, r->st.latest);
	join(sb, &r->applied, ",", true);
	sb_add(sb, "],\"pending\":[");
	join(sb, &r->pending, ",", true);
	sb_add(sb, "],\"applied_externally\":[");
	join(sb, &r->external, ",", true);
	sb_add(sb, "],\"drift\":[");
	for (size_t i = 0; i < r->drift.n; i++) {
		sb_add(sb, i ? "," : "");
		sb_add_json_string(sb, r->drift.items[i]);
	}
	sb_add(sb, "]}");
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

static int status_all(PGconn *conn, const struct config *cfg, bool json)
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
			pending = pending || r.pending.n > 0;
			drift = drift || r.drift.n > 0;
			if (json) {
				sb_add(&sb, i ? "," : "");
				print_json_set(cfg, &r, &sb);
			} else {
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
		printf("quarantined tables: %s\n", quarantine.n ? "" : "none");
		for (size_t i = 0; i < quarantine.n; i++)
			printf("  %s\n", quarantine.items[i]);
	}
	sl_free(&quarantine);
	sb_free(&sb);
	if (rc != 0)
		return db_read_fail_code(conn);
	return drift ? EXIT_DRIFT : pending ? EXIT_PENDING : EXIT_OK;
}

static const struct option status_longopts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ NULL, 0, NULL, 0 }
};

static const char status_help[] =
	"usage: checkpoint-agent status [--json]\n"
	"\n"
	"Each set's recorded version, its applied and pending versions, versions\n"
	"applied externally (by the application's setup()), drift (a recorded\n"
	"checksum that differs from this agent's SQL), and the quarantined tables.\n"
	"\n"
	"Options:\n"
	"  --json           one JSON object on stdout\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit: 0 nothing pending, 1 versions pending, 2 drift, 64 usage,\n"
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
	bool json = false;
	PGconn *conn;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", status_longopts, NULL)) != -1) {
		if (c != 'j')
			return cli_bad_option("status", argv[optind - 1]);
		json = true;
	}
	if (optind < argc)
		return cli_bad_option("status", argv[optind]);
	if ((conn = db_connect_owner(cfg, &rc)) == NULL)
		return rc;
	rc = status_all(conn, cfg, json);
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
		rc = EXIT_SCHEMA;
	} else {
		printf("the schema matches the recorded version of every set\n");
	}
	sl_free(&diffs);
	PQfinish(conn);
	return rc;
}
