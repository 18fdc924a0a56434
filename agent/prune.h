/*
 * prune.h: retention, shared by the `prune` command (prune_cmd.c) and the
 * TTL sweeps of `run` (sweep.c).
 *
 * prune_run finds the threads whose newest checkpoint is older than a TTL
 * (walk.c) or takes the threads it is given, and deletes them whole
 * (delete) or down to their newest checkpoint per namespace (keep-latest),
 * in batches: each its own short transaction with lock_timeout bounded,
 * each re-checking that no thread received a newer checkpoint since the
 * decision. It also removes the agentos set's old threads and the store's
 * expired rows, when those sets are configured. One pruner at a time: a
 * session-level advisory lock, never waited for.
 *
 * It connects the way `migrate` does (db_connect), so whatever privilege
 * the migrations run with covers the deletes too.
 */
#ifndef PRUNE_H
#define PRUNE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "prune_sql.h"

struct prune_opts {
	enum prune_strategy strategy;
	long long older_than;		/* seconds: threads whose newest checkpoint is older */
	const char *const *threads;	/* --thread: these threads, whatever their age */
	size_t nthreads;
	int batch;			/* threads per transaction */
	int lock_timeout_ms;		/* a batch's wait for a row or table lock */
	long long deadline;		/* monotonic ms after which no batch starts; 0: none */
	long long limit;		/* threads pruned per set at most; 0: no limit */
	bool dry_run;
	/* in/out, per set: resume the walk after this thread (sweeps); NULL: from the start */
	char *cursor_langgraph;
	char *cursor_agentos;
};

enum prune_table { PT_CHECKPOINTS, PT_BLOBS, PT_WRITES, PT_AGENTOS, PT_STORE, PT_COUNT };

extern const char *const prune_table_names[PT_COUNT];

struct prune_totals {
	long long scanned;		/* threads looked at */
	long long pruned;		/* threads deleted or trimmed (or that would be) */
	long long skipped_delta;	/* keep-latest: state rebuilt from history */
	long long skipped_newer;	/* a checkpoint arrived after the decision */
	long long skipped_busy;		/* locked for longer than the lock timeout, every try */
	long long skipped_timeout;	/* one thread's batch outlasted statement_timeout */
	long long skipped_no_age;	/* no checkpoint clock could be read */
	long long not_found;		/* --thread: no such thread */
	long long rows[PT_COUNT], bytes[PT_COUNT];
	long long estimate;		/* threads in the tables, estimated; 0: unknown */
	long long started_ms;		/* monotonic */
	long long batches;
	const char *phase;		/* what it is doing, for progress lines */
	bool stopped;			/* stopped before the end; stop_reason says why */
	const char *stop_reason;
};

struct prune_hooks {
	bool (*keep_going)(void *arg);	/* asked before each batch; false: stop */
	void (*progress)(const struct prune_totals *t, void *arg);	/* after each batch */
	void *arg;
};

/* Defaults of the prune command and the sweeps. */
#define PRUNE_LOCK_TIMEOUT_MS 1000
#define PRUNE_STORE_ROWS_PER_THREAD 20	/* store rows per transaction: this times the batch */

/*
 * Checks that every configured set is at a version prune knows (before any
 * change), takes the prune lock (not for a dry run), and prunes. Returns 0,
 * AERR_SCHEMA (nothing changed), AERR_LOCK (another pruner, or threads
 * left because their locks were held), AERR_UNREACHABLE or AERR_FAIL.
 */
int prune_run(PGconn *conn, const struct config *cfg, struct prune_opts *o, const struct prune_hooks *h,
	      struct prune_totals *t);

long long prune_total_rows(const struct prune_totals *t);
long long prune_total_bytes(const struct prune_totals *t);

/* "delete" / "keep-latest" (and the hosted platform's "keep_latest"); -1 if neither. */
int prune_parse_strategy(const char *s, enum prune_strategy *out);
const char *prune_strategy_name(enum prune_strategy s);

#endif
