/*
 * prune.c: the batches of retention (see prune.h).
 *
 * A batch is one transaction: the batch statement (prune_sql.c) re-checks
 * and deletes in one snapshot; then, still inside the transaction and with
 * a fresh snapshot, a second query looks for rows that committed while the
 * statement ran (a writer that added a checkpoint to a thread being
 * pruned). If there are any, the batch rolls back and runs again without
 * those threads, which are left whole. A checkpoint that commits after the
 * commit is simply a new checkpoint of a thread whose history is gone, as
 * when an application resumes a thread just after its TTL removed it.
 *
 * Failures of one batch: a lock wait beyond lock_timeout (or a deadlock),
 * or a statement beyond statement_timeout, rolls back and splits the batch
 * in halves, down to one thread; a single thread is tried three times for
 * locks (then left and counted as busy) or left at once for time. Anything
 * else stops the run with the server's reason.
 */
#include "prune.h"
#include "agent.h"
#include "db.h"
#include "log.h"
#include "migrate.h"
#include "sets.h"
#include "util.h"
#include "walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The prune lock: "CPAG" and 2 (the migration lock is "CPAG" and 1). */
#define PRUNE_LOCK_SQL_KEYS "1129333063, 2"
#define LOCK_TRIES 3
/* Pauses between retries of a locked batch: util.c's backoff (jitter, steps doubling from 250 ms to 1 s). */
#define LOCK_RETRY_MS 250
#define LOCK_RETRY_MAX_MS 1000

const char *const prune_table_names[PT_COUNT] = {
	"checkpoints", "checkpoint_blobs", "checkpoint_writes", "agentos checkpoints", "store (expired)"
};

/* One set's run. */
struct set_run {
	PGconn *conn;
	const struct config *cfg;
	struct prune_opts *o;
	const struct prune_hooks *h;
	struct prune_totals *t;
	enum walk_table table;
	const char *schema;		/* as configured */
	char *qschema;			/* quoted */
	char *batch_sql;		/* prepared as batch_name */
	char *arrivals_sql;		/* prepared as arrivals_name */
	const char *batch_name, *arrivals_name;
	int prepared;			/* how many of the two are */
	char *last_done;		/* the last thread a finished batch covered */
	long long pruned_here;
	int busy_streak;		/* threads left in a row because of locks */
	bool stop;
};

enum outcome { OUT_DONE, OUT_ARRIVALS, OUT_LOCKED, OUT_TIMEOUT, OUT_CANCELED, OUT_LOST, OUT_FAILED };

int prune_parse_strategy(const char *s, enum prune_strategy *out)
{
	if (strcmp(s, "delete") == 0)
		*out = PRUNE_DELETE;
	else if (strcmp(s, "keep-latest") == 0 || strcmp(s, "keep_latest") == 0)
		*out = PRUNE_KEEP_LATEST;
	else
		return -1;
	return 0;
}

const char *prune_strategy_name(enum prune_strategy s)
{
	return s == PRUNE_DELETE ? "delete" : "keep-latest";
}

long long prune_total_rows(const struct prune_totals *t)
{
	long long n = 0;

	for (int i = 0; i < PT_COUNT; i++)
		n += t->rows[i];
	return n;
}

long long prune_total_bytes(const struct prune_totals *t)
{
	long long n = 0;

	for (int i = 0; i < PT_COUNT; i++)
		n += t->bytes[i];
	return n;
}

/* ---- stopping ---- */

/* True when no further batch may start; sets the reason once. */
static bool must_stop(struct set_run *r)
{
	if (r->stop)
		return true;
	if (r->h != NULL && r->h->keep_going != NULL && !r->h->keep_going(r->h->arg)) {
		r->t->stop_reason = "asked to stop";
	} else if (r->o->deadline > 0 && now_ms() >= r->o->deadline) {
		r->t->stop_reason = "--max-duration reached";
	} else if (r->o->limit > 0 && r->pruned_here >= r->o->limit) {
		r->t->stop_reason = "the limit of threads per run was reached";
	} else {
		return false;
	}
	r->stop = true;
	r->t->stopped = true;
	return true;
}

static void report_progress(struct set_run *r)
{
	if (r->h != NULL && r->h->progress != NULL)
		r->h->progress(r->t, r->h->arg);
}

/* ---- one batch ---- */

static bool exec_quiet(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok;
}

static enum outcome classify(struct set_run *r, PGresult *res, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char *e;

	if (db_lost(r->conn))
		return OUT_LOST;
	if (state != NULL && (strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0))
		return OUT_LOCKED;
	if (state != NULL && strcmp(state, "57014") == 0)
		return must_stop(r) ? OUT_CANCELED : OUT_TIMEOUT;
	e = db_error_text(res, r->conn);
	log_error("%s failed: %s", what, e);
	free(e);
	return OUT_FAILED;
}

/* Removes the threads of ARRIVED (a result's first column) from IDS/NEWEST; returns how many. */
static size_t drop_arrivals(const PGresult *arrived, const char **ids, const char **newest, size_t *n)
{
	size_t removed = 0;

	for (int a = 0; a < PQntuples(arrived); a++) {
		const char *id = PQgetvalue(arrived, a, 0);

		for (size_t i = 0; i < *n; i++) {
			if (strcmp(ids[i], id) != 0)
				continue;
			log_notice("thread %s received a checkpoint while it was being pruned: it is left whole", id);
			memmove(&ids[i], &ids[i + 1], (*n - i - 1) * sizeof(*ids));
			memmove(&newest[i], &newest[i + 1], (*n - i - 1) * sizeof(*newest));
			(*n)--;
			removed++;
			break;
		}
	}
	return removed;
}

/*
 * Looks, inside the batch's transaction, for rows that committed while the
 * statement ran in the threads it pruned. Returns the threads with such
 * rows (a result), or NULL after an error (*oc says which).
 */
static PGresult *find_arrivals(struct set_run *r, const PGresult *res, const char **newest_of, enum outcome *oc)
{
	const char **pruned = xcalloc((size_t)PQntuples(res), sizeof(char *));
	const char **newest = xcalloc((size_t)PQntuples(res), sizeof(char *));
	size_t n = 0;
	char *a1, *a2;
	const char *params[2];
	PGresult *arr;

	for (int i = 0; i < PQntuples(res); i++) {
		if (strcmp(PQgetvalue(res, i, 1), "pruned") == 0) {
			pruned[n] = PQgetvalue(res, i, 0);
			newest[n++] = newest_of[i];
		}
	}
	a1 = pg_text_array(pruned, n);
	a2 = pg_text_array(newest, n);
	params[0] = a1;
	params[1] = a2;
	arr = PQexecPrepared(r->conn, r->arrivals_name, 2, params, NULL, NULL, 0);
	if (arr == NULL || PQresultStatus(arr) != PGRES_TUPLES_OK) {
		*oc = classify(r, arr, "the re-check after a batch");
		PQclear(arr);
		arr = NULL;
	}
	free(a1);
	free(a2);
	free(pruned);
	free(newest);
	return arr;
}

/* Adds a finished batch's result to the totals. */
static void tally(struct set_run *r, const PGresult *res)
{
	struct prune_totals *t = r->t;
	int first = r->table == WALK_LANGGRAPH ? PT_CHECKPOINTS : PT_AGENTOS;
	int ntables = r->table == WALK_LANGGRAPH ? 3 : 1;

	for (int i = 0; i < PQntuples(res); i++) {
		const char *st = PQgetvalue(res, i, 1);

		if (strcmp(st, "pruned") == 0) {
			t->pruned++;
			r->pruned_here++;
		} else if (strcmp(st, "delta") == 0) {
			t->skipped_delta++;
			log_debug("thread %s keeps its history: its newest checkpoint holds a delta channel, whose "
				 "state is rebuilt from the older writes", PQgetvalue(res, i, 0));
		} else {
			t->skipped_newer++;
			log_debug("thread %s received a checkpoint after the decision: it is left whole",
				 PQgetvalue(res, i, 0));
		}
	}
	if (PQntuples(res) > 0) {
		for (int k = 0; k < ntables; k++) {
			t->rows[first + k] += atoll(PQgetvalue(res, 0, 2 + 2 * k));
			t->bytes[first + k] += atoll(PQgetvalue(res, 0, 3 + 2 * k));
		}
	}
	t->batches++;
}

/*
 * Prepares the set's two statements, at the first batch (after the first
 * decision: preparing takes the tables' locks, and may wait for them).
 * Planning them once saves a good part of every batch's time.
 */
static enum outcome prepare(struct set_run *r)
{
	const char *names[2] = { r->batch_name, r->arrivals_name }, *sqls[2] = { r->batch_sql, r->arrivals_sql };

	for (int i = r->prepared; i < 2; i++) {
		PGresult *res = PQprepare(r->conn, names[i], sqls[i], 2, NULL);

		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
			enum outcome oc = classify(r, res, "preparing prune's statements");

			PQclear(res);
			return oc;
		}
		PQclear(res);
		r->prepared = i + 1;
	}
	return OUT_DONE;
}

static void unprepare(struct set_run *r)
{
	const char *names[2] = { r->batch_name, r->arrivals_name };

	for (int i = 0; i < 2 && i < r->prepared && !db_lost(r->conn); i++) {
		char *sql = xasprintf("DEALLOCATE %s", names[i]);

		exec_quiet(r->conn, sql);
		free(sql);
	}
	r->prepared = 0;
}

/* One try of a batch; on OUT_ARRIVALS the threads that got new rows are gone from IDS. */
static enum outcome try_batch(struct set_run *r, const char **ids, const char **newest, size_t *n)
{
	char *a1 = pg_text_array(ids, *n), *a2 = pg_text_array(newest, *n);
	const char *params[2] = { a1, a2 };
	bool dry = r->o->dry_run;
	enum outcome oc = OUT_DONE;
	PGresult *res = NULL, *arr = NULL;
	long long t0 = now_ms();

	if (r->prepared < 2 && (oc = prepare(r)) != OUT_DONE)
		goto out;
	if (!dry && !exec_quiet(r->conn, "BEGIN")) {
		oc = classify(r, NULL, "BEGIN");
		goto out;
	}
	res = PQexecPrepared(r->conn, r->batch_name, 2, params, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		oc = classify(r, res, "a batch");
		goto rollback;
	}
	if (!dry) {
		arr = find_arrivals(r, res, newest, &oc);
		if (arr == NULL)
			goto rollback;
		if (PQntuples(arr) > 0) {
			r->t->skipped_newer += (long long)drop_arrivals(arr, ids, newest, n);
			oc = OUT_ARRIVALS;
			goto rollback;
		}
		if (!exec_quiet(r->conn, "COMMIT")) {
			oc = classify(r, NULL, "COMMIT of a batch");
			goto out;
		}
	}
	tally(r, res);
	free(r->last_done);
	r->last_done = xstrdup(ids[*n - 1]);
	log_debug("batch of %zu threads in %lld ms", *n, now_ms() - t0);
	goto out;
rollback:
	if (!dry && !db_lost(r->conn))
		exec_quiet(r->conn, "ROLLBACK");
out:
	PQclear(res);
	PQclear(arr);
	free(a1);
	free(a2);
	return oc;
}

static int run_batch(struct set_run *r, const char **ids, const char **newest, size_t n);

/* Runs the two halves of a batch that could not run whole. */
static int split(struct set_run *r, const char **ids, const char **newest, size_t n)
{
	size_t half = n / 2;
	int rc = run_batch(r, ids, newest, half);

	return rc != 0 || r->stop ? rc : run_batch(r, ids + half, newest + half, n - half);
}

/*
 * A thread whose rows stayed locked through every try is left. Three such
 * threads in a row mean the locks are not on a few rows (a table lock, a
 * migration): the run stops rather than wait on every thread.
 */
static void leave_locked(struct set_run *r, const char *id)
{
	log_warning("thread %s was left: its rows stayed locked by another session through %d tries of %d ms; "
		    "run prune again later", id, LOCK_TRIES, r->o->lock_timeout_ms);
	r->t->skipped_busy++;
	if (++r->busy_streak >= LOCK_TRIES) {
		log_warning("%d threads in a row stayed locked: stopping; find the session that holds the locks "
			    "(pg_locks) and run prune again", r->busy_streak);
		r->t->stop_reason = "the rows stayed locked by another session";
		r->t->stopped = true;
		r->stop = true;
	}
}

/*
 * Runs a batch to its end. A batch that waits too long for a lock, or
 * outlasts statement_timeout, is split in halves, so that one busy or huge
 * thread does not hold back the others; a single thread is retried (locks)
 * or left (time). 0, or an agent_err.
 */
static int run_batch(struct set_run *r, const char **ids, const char **newest, size_t n)
{
	struct backoff b;
	int lock_tries = 0;

	backoff_init(&b, LOCK_RETRY_MS, LOCK_RETRY_MAX_MS);
	while (n > 0) {
		switch (try_batch(r, ids, newest, &n)) {
		case OUT_DONE:
			r->busy_streak = 0;
			report_progress(r);
			return 0;
		case OUT_ARRIVALS:
			continue;
		case OUT_LOCKED:
			if (n > 1) {
				log_info("a batch of %zu threads waited more than %d ms for a lock; trying it in halves", n,
					 r->o->lock_timeout_ms);
				return split(r, ids, newest, n);
			}
			if (++lock_tries < LOCK_TRIES) {
				sleep_ms(backoff_next(&b));
				continue;
			}
			leave_locked(r, ids[0]);
			return 0;
		case OUT_TIMEOUT:
			if (n > 1)
				return split(r, ids, newest, n);
			log_warning("thread %s was left: pruning it alone takes longer than statement_timeout (%d ms); "
				    "raise database.statement_timeout to prune it", ids[0], r->cfg->statement_timeout);
			r->t->skipped_timeout++;
			return 0;
		case OUT_CANCELED:
			return 0;
		case OUT_LOST:
			log_error("the connection to the database was lost during a batch; nothing of that batch was "
				  "committed");
			return AERR_UNREACHABLE;
		case OUT_FAILED:
			return AERR_FAIL;
		}
	}
	return 0;
}

/* ---- a set ---- */

struct pending {
	const char **ids, **newest;
	struct walk_thread *owned;	/* the strings live here */
	size_t n, cap;
};

static void pending_add(struct pending *p, struct walk_thread *th)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->ids = xrealloc(p->ids, p->cap * sizeof(*p->ids));
		p->newest = xrealloc(p->newest, p->cap * sizeof(*p->newest));
		p->owned = xrealloc(p->owned, p->cap * sizeof(*p->owned));
	}
	p->owned[p->n] = *th;
	memset(th, 0, sizeof(*th));
	p->ids[p->n] = p->owned[p->n].thread_id;
	p->newest[p->n] = p->owned[p->n].newest;
	p->n++;
}

static void pending_clear(struct pending *p)
{
	for (size_t i = 0; i < p->n; i++)
		walk_thread_clear(&p->owned[i]);
	p->n = 0;
}

static void pending_free(struct pending *p)
{
	pending_clear(p);
	free(p->ids);
	free(p->newest);
	free(p->owned);
}

/* Runs the pending threads in batches of o->batch. */
static int flush(struct set_run *r, struct pending *p)
{
	int rc = 0;

	for (size_t i = 0; i < p->n && rc == 0; i += (size_t)r->o->batch) {
		size_t k = p->n - i < (size_t)r->o->batch ? p->n - i : (size_t)r->o->batch;

		if (r->o->limit > 0 && (long long)k > r->o->limit - r->pruned_here)
			k = (size_t)(r->o->limit - r->pruned_here);
		if (k == 0 || must_stop(r))
			break;
		rc = run_batch(r, p->ids + i, p->newest + i, k);
	}
	pending_clear(p);
	return rc;
}

/* Is TH a thread to prune? */
static bool wanted(struct set_run *r, const struct walk_thread *th, double now)
{
	if (r->o->strategy == PRUNE_KEEP_LATEST && !th->has_older)
		return false;		/* nothing to trim */
	if (th->newest_time < 0) {
		r->t->skipped_no_age++;
		log_warning("thread %s is left: neither the id nor the \"ts\" of its newest checkpoint is a time",
			    th->thread_id);
		return false;
	}
	return now - th->newest_time > (double)r->o->older_than;
}

static int walk_set(struct set_run *r, char **cursor, double now)
{
	struct walk w;
	struct pending p;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	if (walk_init(&w, r->conn, r->table, r->schema, *cursor) != 0)
		return AERR_CONFIG;
	w.need_older = r->o->strategy == PRUNE_KEEP_LATEST;
	r->t->phase = "scanning";
	while (!w.done && rc == 0 && !must_stop(r)) {
		struct walk_thread *v = NULL;
		size_t n = 0, cap = 0;

		if (walk_next(&w, &v, &n, &cap) != 0) {
			walk_threads_free(v, n);
			if (must_stop(r))
				break;	/* the stop cancelled the query */
			log_error("finding old threads failed: %s", w.error);
			rc = db_lost(r->conn) ? AERR_UNREACHABLE : AERR_FAIL;
			break;
		}
		for (size_t i = 0; i < n && rc == 0; i++) {
			r->t->scanned++;
			if (wanted(r, &v[i], now))
				pending_add(&p, &v[i]);
			if (p.n >= (size_t)r->o->batch)
				rc = flush(r, &p);
		}
		walk_threads_free(v, n);
		report_progress(r);
	}
	if (rc == 0 && !r->stop)
		rc = flush(r, &p);
	free(*cursor);
	*cursor = NULL;
	if (r->stop && r->last_done != NULL)
		*cursor = xstrdup(r->last_done);
	else if (r->stop && w.after_thread != NULL)
		*cursor = xstrdup(w.after_thread);
	pending_free(&p);
	walk_free(&w);
	return rc;
}

/* --thread: the given threads, in batches. FOUND[i] is set for those this set holds. */
static int list_set(struct set_run *r, bool *found)
{
	struct walk_thread *v = NULL;
	struct pending p;
	size_t n = 0;
	int rc;

	memset(&p, 0, sizeof(p));
	if (walk_lookup(r->conn, r->table, r->schema, r->o->threads, r->o->nthreads, &v, &n) != 0)
		return db_lost(r->conn) ? AERR_UNREACHABLE : AERR_FAIL;
	for (size_t i = 0; i < n; i++) {
		if (v[i].newest == NULL)
			continue;
		found[i] = true;
		if (r->o->strategy == PRUNE_KEEP_LATEST && !v[i].has_older)
			continue;
		pending_add(&p, &v[i]);
	}
	walk_threads_free(v, n);
	r->t->phase = "pruning";
	rc = flush(r, &p);
	pending_free(&p);
	return rc;
}

static int prune_set(PGconn *conn, const struct config *cfg, struct prune_opts *o, const struct prune_hooks *h,
		     struct prune_totals *t, enum walk_table table, bool *found, double now)
{
	struct set_run r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.conn = conn;
	r.cfg = cfg;
	r.o = o;
	r.h = h;
	r.t = t;
	r.table = table;
	r.schema = table == WALK_LANGGRAPH ? cfg->schema : cfg->agentos_schema;
	if ((r.qschema = db_ident(conn, r.schema)) == NULL)
		return AERR_CONFIG;
	r.batch_name = "cpa_prune_batch";
	r.arrivals_name = "cpa_prune_arrivals";
	if (table == WALK_LANGGRAPH) {
		r.batch_sql = prune_sql_langgraph_batch(r.qschema, o->strategy, o->dry_run);
		r.arrivals_sql = prune_sql_langgraph_arrivals(r.qschema, o->strategy);
	} else {
		r.batch_sql = prune_sql_agentos_batch(r.qschema, o->strategy, o->dry_run);
		r.arrivals_sql = prune_sql_agentos_arrivals(r.qschema, o->strategy);
	}
	if (o->nthreads > 0)
		rc = list_set(&r, found);
	else
		rc = walk_set(&r, table == WALK_LANGGRAPH ? &o->cursor_langgraph : &o->cursor_agentos, now);
	unprepare(&r);
	PQfreemem(r.qschema);
	free(r.batch_sql);
	free(r.arrivals_sql);
	free(r.last_done);
	return rc;
}

/* The store's expired rows, in transactions of LIMIT rows. */
static int prune_store(PGconn *conn, const struct config *cfg, struct prune_opts *o, const struct prune_hooks *h,
		       struct prune_totals *t)
{
	char *q = db_ident(conn, cfg->schema), *sql, limit[24];
	const char *params[1] = { limit };
	struct set_run r;
	long long n;
	struct backoff b;
	int rc = 0, tries = 0;

	if (q == NULL)
		return AERR_CONFIG;
	backoff_init(&b, LOCK_RETRY_MS, LOCK_RETRY_MAX_MS);
	sql = prune_sql_store_batch(q, o->dry_run);

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.h = h;
	r.t = t;
	r.conn = conn;
	snprintf(limit, sizeof(limit), "%lld", (long long)o->batch * PRUNE_STORE_ROWS_PER_THREAD);
	t->phase = "expiring store rows";
	while (!must_stop(&r)) {
		PGresult *res = PQexecParams(conn, sql, o->dry_run ? 0 : 1, NULL, params, NULL, NULL, 0);
		enum outcome oc;

		if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
			n = atoll(PQgetvalue(res, 0, 0));
			t->rows[PT_STORE] += n;
			t->bytes[PT_STORE] += atoll(PQgetvalue(res, 0, 1));
			t->batches++;
			PQclear(res);
			report_progress(&r);
			if (o->dry_run || n < (long long)o->batch * PRUNE_STORE_ROWS_PER_THREAD)
				break;
			continue;
		}
		oc = classify(&r, res, "expiring store rows");
		PQclear(res);
		if (oc == OUT_LOCKED && ++tries < LOCK_TRIES) {
			sleep_ms(backoff_next(&b));
			continue;
		}
		if (oc == OUT_LOCKED || oc == OUT_TIMEOUT) {
			log_warning("expired store rows were left: a batch could not get its locks or outlasted "
				    "statement_timeout; run prune again later");
			t->skipped_busy++;
		} else if (oc == OUT_LOST) {
			rc = AERR_UNREACHABLE;
		} else if (oc == OUT_FAILED) {
			rc = AERR_FAIL;
		}
		break;
	}
	free(sql);
	PQfreemem(q);
	return rc;
}

/* ---- the schema, the lock, the run ---- */

/* Is SET at a version prune knows (MIN or later)? 0, AERR_SCHEMA, or an error code; *RECORDED its version. */
static int check_set(PGconn *conn, const struct config *cfg, const char *name, int min, int *recorded)
{
	const struct set_def *set = set_find(name);
	struct set_state st;
	int rc = 0;

	if (set_read_state(conn, cfg, set, &st) != 0) {
		set_state_free(&st);
		return db_lost(conn) ? AERR_UNREACHABLE : AERR_FAIL;
	}
	if (st.recorded > st.latest) {
		log_error("prune: the %s set is at version %d in schema %s, newer than this agent knows (up to %d); "
			  "nothing was changed. Use the checkpoint-agent that migrated it", name, st.recorded,
			  set_schema_name(set, cfg), st.latest);
		rc = AERR_SCHEMA;
	} else if (st.recorded < min) {
		log_error("prune: the %s set is %s in schema %s, and prune needs version %d or later; nothing was "
			  "changed. Run checkpoint-agent migrate first", name,
			  st.recorded < 0 ? "not there" : "at an early version", set_schema_name(set, cfg), min);
		rc = AERR_SCHEMA;
	}
	*recorded = st.recorded;
	set_state_free(&st);
	return rc;
}

/* Every configured set at a version prune knows; *STORE_TTL: the store has expires_at (v2). */
static int check_schema(PGconn *conn, const struct config *cfg, bool *store_ttl)
{
	int rc = 0, v = -1;

	*store_ttl = false;
	if (config_has_set(cfg, "langgraph"))
		rc = check_set(conn, cfg, "langgraph", 3, &v);
	if (rc == 0 && config_has_set(cfg, "agentos"))
		rc = check_set(conn, cfg, "agentos", 1, &v);
	if (rc == 0 && config_has_set(cfg, "langgraph-store")) {
		rc = check_set(conn, cfg, "langgraph-store", 0, &v);
		*store_ttl = rc == 0 && v >= 2;
		if (rc == 0 && !*store_ttl)
			log_info("the store is at version %d, before its TTL columns (v2): it has no expired rows", v);
	}
	return rc;
}

static int take_lock(PGconn *conn)
{
	PGresult *res = db_query(conn, "SELECT pg_try_advisory_lock(" PRUNE_LOCK_SQL_KEYS "),"
				 " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
				 "  AND classid = 1129333063 AND objid = 2 AND objsubid = 2 AND pid <> pg_backend_pid()"
				 "  LIMIT 1)", 0, NULL);
	int rc = 0;

	if (res == NULL)
		return db_lost(conn) ? AERR_UNREACHABLE : AERR_FAIL;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		log_error("prune: another prune or retention sweep is running (pid %s); wait for it to finish, "
			  "or stop it, and run again", PQgetisnull(res, 0, 1) ? "unknown" : PQgetvalue(res, 0, 1));
		rc = AERR_LOCK;
	}
	PQclear(res);
	return rc;
}

static void release_lock(PGconn *conn)
{
	PGresult *res;

	if (db_lost(conn))
		return;
	res = PQexec(conn, "SELECT pg_advisory_unlock(" PRUNE_LOCK_SQL_KEYS ")");
	PQclear(res);
}

/* The server's clock, and the number of threads (from the planner's statistics) for the estimate. */
static int read_clock_and_estimate(PGconn *conn, const struct config *cfg, double *now, long long *estimate)
{
	const char *params[2] = { cfg->schema, cfg->agentos_schema };
	PGresult *res = db_query(conn,
		"SELECT extract(epoch FROM now()),"
		" (SELECT coalesce(sum(CASE WHEN s.n_distinct >= 0 THEN s.n_distinct"
		"   ELSE -s.n_distinct * greatest(c.reltuples, 0) END), 0)::bigint"
		"  FROM pg_stats s JOIN pg_namespace n ON n.nspname = s.schemaname"
		"  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename"
		"  WHERE s.tablename = 'checkpoints' AND s.attname = 'thread_id' AND s.schemaname IN ($1, $2))",
		2, params);

	if (res == NULL)
		return db_lost(conn) ? AERR_UNREACHABLE : AERR_FAIL;
	*now = strtod(PQgetvalue(res, 0, 0), NULL);
	*estimate = atoll(PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

static int prepare_session(PGconn *conn, int lock_timeout_ms)
{
	/* jit off: the batch statements are short, and their cost estimates would make JIT compile them for seconds. */
	char *sql = xasprintf("SET lock_timeout = %d; SET jit = off", lock_timeout_ms);
	int rc = db_exec(conn, sql);

	free(sql);
	return rc == 0 ? 0 : db_lost(conn) ? AERR_UNREACHABLE : AERR_FAIL;
}

int prune_run(PGconn *conn, const struct config *cfg, struct prune_opts *o, const struct prune_hooks *h,
	      struct prune_totals *t)
{
	bool *found = xcalloc(o->nthreads + 1, sizeof(bool)), store_ttl;
	double now = 0.0;
	int rc;

	memset(t, 0, sizeof(*t));
	t->started_ms = now_ms();
	t->phase = "starting";
	if ((rc = check_schema(conn, cfg, &store_ttl)) != 0 || (rc = prepare_session(conn, o->lock_timeout_ms)) != 0 ||
	    (rc = read_clock_and_estimate(conn, cfg, &now, &t->estimate)) != 0) {
		free(found);
		return rc;
	}
	if (!o->dry_run && (rc = take_lock(conn)) != 0) {
		free(found);
		return rc;
	}
	if (o->nthreads > 0)
		t->scanned = (long long)o->nthreads;
	if (config_has_set(cfg, "langgraph"))
		rc = prune_set(conn, cfg, o, h, t, WALK_LANGGRAPH, found, now);
	if (rc == 0 && config_has_set(cfg, "agentos"))
		rc = prune_set(conn, cfg, o, h, t, WALK_AGENTOS, found, now);
	if (rc == 0 && o->nthreads == 0 && store_ttl)
		rc = prune_store(conn, cfg, o, h, t);
	for (size_t i = 0; i < o->nthreads; i++) {
		if (!found[i]) {
			t->not_found++;
			log_warning("thread %s: no checkpoint of it was found", o->threads[i]);
		}
	}
	if (!o->dry_run)
		release_lock(conn);
	t->phase = "done";
	free(found);
	return rc;
}
