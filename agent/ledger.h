/*
 * ledger.h: the agent's record of every version it applied or rolled back,
 * in the table ledger of the agent's schema (sql/agent/0000_ledger.up.sql).
 */
#ifndef LEDGER_H
#define LEDGER_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"
#include "sets.h"

/* The database's clock_timestamp() now, as text, for a step's start (caller frees). */
char *ledger_now(PGconn *conn);

/*
 * The INSERT of F's ledger row, its values quoted (PQescapeLiteral), so that
 * it can share one message with the version row and the COMMIT (caller
 * frees). NULL when a value cannot be quoted (logged).
 */
char *ledger_insert_sql(PGconn *conn, const struct config *cfg, const struct sql_file *f, const char *started_at);

/* The last entry of each version of SET. */
struct ledger_entry {
	bool present;
	bool up;		/* its direction */
	char *checksum;
	char *finished_at;	/* UTC, ISO 8601: 2026-01-31T12:00:00Z */
	char *agent_version;
	char *host;
};

/*
 * Fills ENTRIES[0..latest] with the last ledger entry of each version of SET.
 * Returns 0 (also when the ledger does not exist yet) or -1.
 */
int ledger_last_entries(PGconn *conn, const struct config *cfg, const struct set_def *set, int latest,
			struct ledger_entry *entries);
/* Frees the strings of one entry. */
void ledger_entry_free(struct ledger_entry *e);

#endif
