/*
 * migrate.h: applying and rolling back versions, under the migration lock.
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"
#include "sets.h"
#include "step.h"

int set_read_state(PGconn *conn, const struct config *cfg, const struct set_def *set, struct set_state *st);
void set_state_free(struct set_state *st);

struct migrate_opts {
	const char *only_set;	/* NULL: every configured set */
	int to;			/* target version */
	bool has_to;
	bool dry_run;
};

/*
 * Takes the migration lock and applies every pending version of the agent's
 * own set and of the configured sets (or ONLY_SET, up to TO). Returns an
 * agent_err: 0, AERR_LOCK, AERR_FAIL, AERR_UNREACHABLE or AERR_STOPPED.
 */
int migrate_apply(struct step_ctx *ctx, PGconn *conn, const struct migrate_opts *o);

/* Brings the agent's own set (ledger, heartbeat) up to date; the caller holds the lock. */
int migrate_own_set(struct step_ctx *ctx, PGconn *conn);

/* Creates schema NAME unless it exists; DRY_RUN prints the statement. 0 or -1 (logged). */
int ensure_schema(PGconn *conn, const char *name, bool dry_run);

#endif
