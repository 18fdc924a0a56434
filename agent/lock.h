/*
 * lock.h: the migration lock that lets many agents start at once.
 */
#ifndef LOCK_H
#define LOCK_H

#include <libpq-fe.h>

#include "db.h"
#include "migrate.h"

/* Polls for the lock for up to TIMEOUT_S seconds. Returns 0, EXIT_LOCK or EXIT_UNREACHABLE. */
int lock_acquire(PGconn *conn, int timeout_s, progress_fn progress);
void lock_release(PGconn *conn);

#endif
