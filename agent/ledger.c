/*
 * ledger.c: writing and reading the ledger.
 */
#include "ledger.h"
#include "agent.h"
#include "db.h"
#include "log.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *ledger_now(PGconn *conn)
{
	PGresult *res = db_query(conn, "SELECT clock_timestamp()::text", 0, NULL);
	char *s;

	if (res == NULL)
		return NULL;
	s = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return s;
}

static void host_name(char *buf, size_t len)
{
	if (gethostname(buf, len) == -1)
		snprintf(buf, len, "unknown");
	buf[len - 1] = '\0';
}

int ledger_record(PGconn *conn, const struct config *cfg, const struct sql_file *f, const char *started_at)
{
	char host[HOST_NAME_MAX + 1], version[16];
	char *schema = db_ident(conn, cfg->agent_schema);
	char *sql = xasprintf("INSERT INTO %s.ledger (set_name, version, direction, checksum, started_at, "
			      "agent_version, host) VALUES ($1, $2, $3, $4, $5, $6, $7)", schema);
	const char *params[7];
	PGresult *res;
	int rc = 0;

	host_name(host, sizeof(host));
	snprintf(version, sizeof(version), "%d", f->version);
	params[0] = f->set;
	params[1] = version;
	params[2] = f->direction;
	params[3] = f->sha256;
	params[4] = started_at;
	params[5] = AGENT_VERSION;
	params[6] = host;
	res = PQexecParams(conn, sql, 7, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		char *e = db_error_text(res, conn);

		log_error("recording %s v%d in the ledger failed: %s", f->set, f->version, e);
		free(e);
		rc = -1;
	}
	PQclear(res);
	free(sql);
	PQfreemem(schema);
	return rc;
}

int ledger_last_entries(PGconn *conn, const struct config *cfg, const struct set_def *set, int latest,
			struct ledger_entry *entries)
{
	const char *params[2] = { cfg->agent_schema, set->name };
	PGresult *res;
	char *schema, *sql;

	for (int v = 0; v <= latest; v++)
		entries[v] = (struct ledger_entry){ false, false, NULL, NULL, NULL, NULL };
	res = db_query(conn, "SELECT to_regclass(format('%I.ledger', $1::text)) IS NOT NULL", 1, params);
	if (res == NULL)
		return -1;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		return 0;
	}
	PQclear(res);
	schema = db_ident(conn, cfg->agent_schema);
	sql = xasprintf("SELECT DISTINCT ON (version) version, direction, checksum, "
			"to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), agent_version, host "
			"FROM %s.ledger WHERE set_name = $1 ORDER BY version, id DESC", schema);
	PQfreemem(schema);
	res = db_query(conn, sql, 1, params + 1);
	free(sql);
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		int v = atoi(PQgetvalue(res, i, 0));

		if (v < 0 || v > latest)
			continue;
		entries[v].present = true;
		entries[v].up = strcmp(PQgetvalue(res, i, 1), "up") == 0;
		entries[v].checksum = xstrdup(PQgetvalue(res, i, 2));
		entries[v].finished_at = xstrdup(PQgetvalue(res, i, 3));
		entries[v].agent_version = xstrdup(PQgetvalue(res, i, 4));
		entries[v].host = xstrdup(PQgetvalue(res, i, 5));
	}
	PQclear(res);
	return 0;
}

void ledger_entries_free(struct ledger_entry *entries, int latest)
{
	for (int v = 0; v <= latest; v++) {
		free(entries[v].checksum);
		free(entries[v].finished_at);
		free(entries[v].agent_version);
		free(entries[v].host);
	}
}
