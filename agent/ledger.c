/*
 * ledger.c: writing and reading the ledger.
 */
#include "ledger.h"
#include "agent.h"
#include "db.h"
#include "log.h"
#include "util.h"

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

char *ledger_insert_sql(PGconn *conn, const struct config *cfg, const struct sql_file *f, const char *started_at)
{
	char host[256], version[16], *schema = db_ident(conn, cfg->agent_schema), *lit[7], *sql = NULL;
	const char *values[7];
	bool ok = schema != NULL;

	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(version, sizeof(version), "%d", f->version);
	values[0] = f->set;
	values[1] = version;
	values[2] = f->direction;
	values[3] = f->sha256;
	values[4] = started_at;
	values[5] = AGENT_VERSION;
	values[6] = host;
	for (int i = 0; i < 7; i++) {
		lit[i] = db_literal(conn, values[i]);
		ok = ok && lit[i] != NULL;
	}
	if (ok)
		sql = xasprintf("INSERT INTO %s.ledger (set_name, version, direction, checksum, started_at, agent_version, "
				"host) VALUES (%s, %s, %s, %s, %s, %s, %s)", schema, lit[0], lit[1], lit[2], lit[3], lit[4],
				lit[5], lit[6]);
	for (int i = 0; i < 7; i++)
		PQfreemem(lit[i]);
	PQfreemem(schema);
	return sql;
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
	if ((schema = db_ident(conn, cfg->agent_schema)) == NULL)
		return -1;
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

void ledger_entry_free(struct ledger_entry *e)
{
	free(e->checksum);
	free(e->finished_at);
	free(e->agent_version);
	free(e->host);
}
