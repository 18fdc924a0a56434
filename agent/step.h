/*
 * step.h: running one version's file, up or down, with its bookkeeping, and
 * the context every migration function is given instead of globals.
 */
#ifndef STEP_H
#define STEP_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"
#include "sets.h"
#include "util.h"

/* What the database records of one set (set_read_state, migrate.h, reads it). */
struct set_state {
	bool schema_exists;
	bool table_exists;	/* the set's version table */
	int recorded;		/* highest recorded version, -1 for none */
	int latest;		/* highest version this agent embeds */
	bool *applied;		/* [0..latest]: a row exists in the version table */
};

/*
 * What a migration runs with. The callbacks let the caller (the service, or
 * the command line) watch and stop it; both may be NULL.
 *
 *   progress   a one-line description of a long wait, every few seconds
 *              (the service sends it as STATUS= and EXTEND_TIMEOUT_USEC=)
 *   alive      called at least every STEP_TICK_MS while a statement runs or
 *              the agent waits: the wait itself proves the loop is alive
 *              (the service feeds its watchdog). It returns false when the
 *              agent must stop: the running statement is cancelled
 *              (PQcancel), its transaction rolls back, and the step returns
 *              AERR_STOPPED.
 */
struct step_ctx {
	const struct config *cfg;
	void (*progress)(void *arg, const char *what);
	bool (*alive)(void *arg);
	void *arg;
	bool stopped;		/* a statement was cancelled because alive() said stop */
	char sqlstate[6];	/* SQLSTATE of the last statement that failed */
};

#define STEP_TICK_MS 250

/* A context for CFG with no callbacks. */
void step_ctx_init(struct step_ctx *ctx, const struct config *cfg);

/* Tells the caller's progress callback (and nobody else). */
void step_progress(struct step_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Calls alive(); false when the agent must stop (remembered in ctx->stopped). */
bool step_alive(struct step_ctx *ctx);

/* Sleeps MS, calling alive() every STEP_TICK_MS; false when the agent must stop. */
bool step_sleep(struct step_ctx *ctx, long long ms);

/*
 * Runs SQL (with NPARAMS text parameters, or several statements when
 * NPARAMS is 0) without blocking: alive() every STEP_TICK_MS, and after 5 s
 * every 5 s a report of the sessions it waits for, named LABEL. Returns NULL
 * on success (with the last result in *RES when RES is not NULL; caller
 * clears), or the reason it failed (caller frees), with ctx->sqlstate set.
 */
char *step_exec(struct step_ctx *ctx, PGconn *conn, const char *sql, int nparams, const char *const *params,
		const char *label, PGresult **res);

/* The agent_err of a failure: AERR_STOPPED, AERR_UNREACHABLE (connection lost) or AERR_FAIL. */
int step_fail_code(const struct step_ctx *ctx, PGconn *conn);

/* How a down step treats a table it would drop. */
struct down_ctx {
	const char *quarantine;	/* schema that receives tables holding rows */
	bool purge;		/* drop them anyway */
	bool dry_run;
	bool quiet;		/* a rehearsal: say nothing of quarantine */
};

/* Session settings for migrating: no statement timeout, and the server
 * notices a vanished agent during a long build. */
int step_prepare_session(PGconn *conn);

/* File F (split into STMTS) with its bookkeeping, in one transaction. DOWN is NULL going up. */
int step_run_in_transaction(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
			    const struct sql_file *f, const struct strlist *stmts, const struct down_ctx *down);

/* File F statement by statement outside a transaction (its no-transaction directive), then its bookkeeping. */
int step_run_alone(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
		   const struct sql_file *f, const struct strlist *stmts, const struct down_ctx *down);

/*
 * Rehearses the down steps of SET from its recorded version to TO + 1 in one
 * transaction that is then rolled back, so that a step that would fail or
 * refuse is found before anything changes. Returns 0 or an agent_err.
 */
int step_rehearse_down(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
		       const struct set_state *st, int to, const struct down_ctx *down);

/* 1 when index NAME in SCHEMA exists and is INVALID, 0 when not, -1 on error. */
int step_index_is_invalid(PGconn *conn, const char *schema, const char *name);

/* Drops index NAME in SCHEMA when it is INVALID; DRY_RUN prints instead. 0 or an agent_err. */
int step_drop_invalid_index(struct step_ctx *ctx, PGconn *conn, const char *schema, const char *name,
			    bool dry_run);

/* Splits F into STMTS and reads its directives into *FLAGS; 0, or AERR_FAIL after logging. */
int step_load_file(const struct sql_file *f, struct strlist *stmts, unsigned *flags);

#endif
