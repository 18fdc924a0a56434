/*
 * verify.h: comparing the live catalog with the shape a version implies.
 *
 * The expected shape is not written down twice: the agent builds it by
 * running the set's up files 0..V on temporary tables (pg_temp) inside a
 * transaction that it rolls back, and reads both shapes from the catalog
 * with the same query.
 */
#ifndef VERIFY_H
#define VERIFY_H

#include <libpq-fe.h>

#include "config.h"
#include "sets.h"
#include "util.h"

/*
 * Appends one line per difference between SET's live tables at VERSION and
 * the expected shape: tables, columns (type, nullability, default), primary
 * keys and indexes (definition and validity). Returns 0, or -1 on a database
 * error (logged).
 */
int verify_set(PGconn *conn, const struct config *cfg, const struct set_def *set, int version,
	       struct strlist *diffs);

/* Appends "schema.index on table" for every INVALID index in SET's schema. */
int verify_invalid_indexes(PGconn *conn, const struct config *cfg, const struct set_def *set,
			   struct strlist *out);

#endif
