/*
 * lock.c: the migration lock, a session-level advisory lock taken by polling
 * pg_try_advisory_lock. The agent never waits inside pg_advisory_lock and
 * never holds a transaction open while it waits: a blocked waiter would hold
 * back every concurrent index build in the database, which then deadlocks
 * and leaves the index INVALID.
 */
#include "lock.h"
#include "agent.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* The lock's two keys: "CPAG" and 1, the same for every agent. */
#define LOCK_KEY1 "1129333063"
#define LOCK_KEY2 "1"

static int try_lock(PGconn *conn, bool *got)
{
	PGresult *res = db_query(conn, "SELECT pg_try_advisory_lock(" LOCK_KEY1 ", " LOCK_KEY2 ")", 0, NULL);

	if (res == NULL)
		return -1;
	*got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return 0;
}

/* The pid of the session that holds the lock, for the message; 0 if unknown. */
static int lock_holder(PGconn *conn)
{
	PGresult *res = db_query(conn,
		"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
		" AND classid = " LOCK_KEY1 "::bigint::oid AND objid = " LOCK_KEY2 "::oid AND objsubid = 2"
		" LIMIT 1", 0, NULL);
	int pid = 0;

	if (res == NULL)
		return 0;
	if (PQntuples(res) == 1)
		pid = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return pid;
}

int lock_acquire(struct step_ctx *ctx, PGconn *conn)
{
	int timeout_s = ctx->cfg->lock_timeout;
	long long start = now_ms(), deadline = start + (long long)timeout_s * 1000, last_note = start;
	struct backoff b;
	bool got = false;

	/* 150 to 300 ms, so that waiting agents do not poll in step. */
	backoff_init(&b, 300, 300);
	for (;;) {
		if (try_lock(conn, &got) != 0)
			return step_fail_code(ctx, conn);
		if (got)
			return 0;
		if (now_ms() >= deadline) {
			int pid = lock_holder(conn);

			log_error("the migration lock is still held by another session (pid %d) after %d s; "
				  "another agent is migrating. Wait and run again, or raise migrations.lock_timeout",
				  pid, timeout_s);
			return AERR_LOCK;
		}
		if (now_ms() - last_note >= 5000) {
			char *what = xasprintf("waiting for the migration lock (held by pid %d) for %lld s",
					       lock_holder(conn), (now_ms() - start) / 1000);

			log_info("%s", what);
			step_progress(ctx, "%s", what);
			free(what);
			last_note = now_ms();
		}
		if (!step_sleep(ctx, backoff_next(&b))) {
			log_notice("stopped while waiting for the migration lock; nothing was changed");
			return AERR_STOPPED;
		}
	}
}

void lock_release(PGconn *conn)
{
	PGresult *res;

	if (db_lost(conn))
		return;
	res = PQexec(conn, "SELECT pg_advisory_unlock(" LOCK_KEY1 ", " LOCK_KEY2 ")");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warning("releasing the migration lock failed: %s; it is released when the session ends",
			    PQerrorMessage(conn));
	PQclear(res);
}
