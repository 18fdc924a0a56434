/*
 * step.h: running one version's file, up or down, with its bookkeeping.
 */
#ifndef STEP_H
#define STEP_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"
#include "migrate.h"
#include "sets.h"
#include "util.h"

/* How a down step treats a table it would drop. */
struct down_ctx {
	const char *quarantine;	/* schema that receives tables holding rows */
	bool purge;		/* drop them anyway */
	bool dry_run;
	bool quiet;		/* a rehearsal: say nothing of quarantine */
};

/* Session settings for migrating: no statement timeout, and the server
 * notices a vanished agent during a long build. Also remembers CFG. */
int step_prepare_session(PGconn *conn, const struct config *cfg);

/* File F (split into STMTS) with its bookkeeping, in one transaction. DOWN is NULL going up. */
int step_run_in_transaction(PGconn *conn, const struct config *cfg, const struct set_def *set,
			    const struct sql_file *f, const struct strlist *stmts, const struct down_ctx *down);

/* File F statement by statement outside a transaction (CONCURRENTLY), then its bookkeeping. */
int step_run_alone(PGconn *conn, const struct config *cfg, const struct set_def *set,
		   const struct sql_file *f, const struct strlist *stmts, const struct down_ctx *down);

/*
 * Rehearses the down steps of SET from its recorded version to TO + 1 in one
 * transaction that is then rolled back, so that a step that would fail or
 * refuse is found before anything changes. Returns 0, EXIT_STEP or
 * EXIT_UNREACHABLE.
 */
int step_rehearse_down(PGconn *conn, const struct config *cfg, const struct set_def *set,
		       const struct set_state *st, int to, const struct down_ctx *down);

/* Runs SQL outside a transaction, reporting every few seconds what it waits for. 0 or an exit code. */
int exec_watched(PGconn *conn, const char *sql, const char *what);

/* 1 when index NAME in SCHEMA exists and is INVALID, 0 when not, -1 on error. */
int step_index_is_invalid(PGconn *conn, const char *schema, const char *name);

/* Drops index NAME in SCHEMA when it is INVALID; DRY_RUN prints instead. */
int step_drop_invalid_index(PGconn *conn, const char *schema, const char *name, bool dry_run);

/* Helpers shared by the commands (migrate.c). */
int ensure_schema(PGconn *conn, const char *name, bool dry_run);
int parse_set_option(const struct config *cfg, const char *name, const char **out);
int parse_version_option(const char *arg, int min, int *out);
int usage_bad_option(const char *command, const char *arg);
progress_fn migrate_progress(void);

/* Brings the agent's own set (ledger, heartbeat) up to date; the caller holds the lock. */
int migrate_own_set(PGconn *conn, const struct config *cfg);

#endif
