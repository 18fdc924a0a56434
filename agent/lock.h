/*
 * lock.h: the migration lock that lets many agents start at once.
 */
#ifndef LOCK_H
#define LOCK_H

#include <libpq-fe.h>

#include "db.h"
#include "step.h"

/*
 * Polls for the lock for up to migrations.lock_timeout. Returns 0, AERR_LOCK,
 * AERR_UNREACHABLE, AERR_FAIL or AERR_STOPPED.
 */
int lock_acquire(struct step_ctx *ctx, PGconn *conn);
void lock_release(PGconn *conn);

#endif
