/*
 * migrate.h: applying and rolling back versions, under the migration lock.
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"
#include "sets.h"

/* What the database records of one set. */
struct set_state {
	bool schema_exists;
	bool table_exists;	/* the set's version table */
	int recorded;		/* highest recorded version, -1 for none */
	int latest;		/* highest version this agent embeds */
	bool *applied;		/* [0..latest]: a row exists in the version table */
};

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
 * exit code: 0, EXIT_LOCK, EXIT_STEP or EXIT_UNREACHABLE.
 */
int migrate_apply(PGconn *conn, const struct config *cfg, const struct migrate_opts *o);

/*
 * Called, at most every few seconds, while the agent waits for the lock or
 * for a long step, with a one-line description. The service uses it to send
 * STATUS= and EXTEND_TIMEOUT_USEC=. NULL (the default) means nobody listens.
 */
typedef void (*progress_fn)(const char *what);
void migrate_set_progress(progress_fn fn);

#endif
