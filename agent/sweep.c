/*
 * sweep.c: the TTL sweeps of `run` (see sweep.h).
 *
 * The sweeper thread keeps its own config (it reads the file itself, at
 * start and after each reload), connects for each sweep the way `migrate`
 * and `prune` do, and runs prune_run with retention's strategy, ttl,
 * sweep_limit and batch. A sweep stops at its next batch when the service
 * reloads or stops; a stop also cancels the statement in flight, which
 * rolls its batch back. Where a sweep stopped, the next one goes on (a
 * cursor per set), so sweeps that hit sweep_limit still cover every thread
 * in turn.
 */
#include "sweep.h"
#include "agent.h"
#include "config.h"
#include "db.h"
#include "db_role.h"
#include "duration.h"
#include "human.h"
#include "log.h"
#include "prune.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static pthread_t sweeper;
static bool running;

/* Guarded by mu. */
static bool stop_asked, reload_asked;
static PGcancel *cancel;
static char *status;

static char *config_path;
static bool config_explicit;

/* The sweeper's own state. */
struct sweeper_state {
	struct config cfg;
	bool have_cfg;
	char *cursor_langgraph, *cursor_agentos;
	long long next_sweep;		/* monotonic ms */
	bool failing;			/* the last sweep failed: say so once */
};

static void set_status(char *s)
{
	pthread_mutex_lock(&mu);
	free(status);
	status = s;
	pthread_mutex_unlock(&mu);
}

char *sweep_status(void)
{
	char *s;

	pthread_mutex_lock(&mu);
	s = status ? xstrdup(status) : NULL;
	pthread_mutex_unlock(&mu);
	return s;
}

static bool keep_going(void *arg)
{
	bool go;

	(void)arg;
	pthread_mutex_lock(&mu);
	go = !stop_asked && !reload_asked;
	pthread_mutex_unlock(&mu);
	return go;
}

static void on_progress(const struct prune_totals *t, void *arg)
{
	char rows[32], size[32];

	(void)arg;
	human_count(prune_total_rows(t), rows, sizeof(rows));
	human_bytes((double)prune_total_bytes(t), size, sizeof(size));
	set_status(xasprintf("retention: sweeping, %lld threads pruned so far (%s rows, %s)", t->pruned, rows, size));
}

static void set_cancel(PGconn *conn)
{
	PGcancel *c = conn ? PQgetCancel(conn) : NULL;

	pthread_mutex_lock(&mu);
	if (cancel != NULL)
		PQfreeCancel(cancel);
	cancel = c;
	pthread_mutex_unlock(&mu);
}

/* Reads the config into S (keeping the old one when the file is bad). */
static void load_config(struct sweeper_state *s)
{
	struct config fresh;
	char *name;

	if (config_load(config_path, config_explicit, &fresh) != 0) {
		config_free(&fresh);
		if (s->have_cfg)
			log_error("retention: the config has errors (above); the sweeps go on with the previous one");
		return;
	}
	/* Told apart from the checks in pg_stat_activity. */
	name = xasprintf("%s retention", fresh.application_name);
	free(fresh.application_name);
	fresh.application_name = name;
	if (s->have_cfg)
		config_free(&s->cfg);
	s->cfg = fresh;
	s->have_cfg = true;
}

static void log_outcome(struct sweeper_state *s, int rc, const struct prune_totals *t, double secs)
{
	char rows[32], size[32], ttl[24], when[16];
	time_t now = time(NULL);
	struct tm tm;

	human_count(prune_total_rows(t), rows, sizeof(rows));
	human_bytes((double)prune_total_bytes(t), size, sizeof(size));
	duration_format(s->cfg.retention_ttl, ttl, sizeof(ttl));
	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (rc == AERR_LOCK && t->batches == 0 && t->pruned == 0) {
		set_status(xasprintf("retention: sweep at %s skipped: another prune is running", when));
		return;
	}
	if (rc != 0) {
		if (!s->failing)
			log_error("retention: the sweep failed (exit %d; the log above says why); the next one is in %lld s",
				  exit_code_for(rc), s->cfg.retention_sweep_interval);
		s->failing = true;
		set_status(xasprintf("retention: the sweep at %s failed (exit %d)", when, exit_code_for(rc)));
		return;
	}
	if (s->failing)
		log_notice("retention: sweeps work again");
	s->failing = false;
	if (t->pruned > 0 || t->rows[PT_STORE] > 0 || t->skipped_delta || t->skipped_newer || t->skipped_busy)
		log_notice("retention sweep (%s, ttl %s): %lld threads pruned, %s rows (%s) in %.1f s; skipped: %lld with "
			   "a delta channel, %lld written to meanwhile, %lld locked%s%s",
			   s->cfg.retention_strategy, ttl, t->pruned, rows, size, secs, t->skipped_delta,
			   t->skipped_newer, t->skipped_busy, t->stopped ? "; stopped: " : "",
			   t->stopped ? t->stop_reason : "");
	set_status(xasprintf("retention: last sweep at %s pruned %lld threads (%s rows, %s)", when, t->pruned, rows,
			     size));
}

static void run_sweep(struct sweeper_state *s)
{
	struct prune_opts o;
	struct prune_totals t;
	struct prune_hooks h = { keep_going, on_progress, NULL };
	char *why = NULL;
	long long t0 = now_ms();
	PGconn *conn;
	int rc;

	memset(&o, 0, sizeof(o));
	memset(&t, 0, sizeof(t));
	if (prune_parse_strategy(s->cfg.retention_strategy, &o.strategy) != 0)
		o.strategy = PRUNE_DELETE;
	o.older_than = s->cfg.retention_ttl;
	o.batch = s->cfg.retention_batch;
	o.lock_timeout_ms = PRUNE_LOCK_TIMEOUT_MS;
	o.limit = s->cfg.retention_sweep_limit;
	o.cursor_langgraph = s->cursor_langgraph;
	o.cursor_agentos = s->cursor_agentos;
	set_status(xstrdup("retention: sweeping"));
	/* The connection path of migrate and prune (then SET ROLE to the owner): the deletes have the migrations' privileges. */
	conn = db_connect_quiet(&s->cfg, &rc, &why);
	if (conn == NULL) {
		if (!s->failing)
			log_warning("retention: cannot connect for a sweep: %s", why);
		s->failing = true;
		set_status(xstrdup("retention: the last sweep could not connect"));
		free(why);
		return;
	}
	if (db_become_owner(conn, &s->cfg, &why) != 0) {
		if (!s->failing)
			log_warning("retention: %s", why);
		s->failing = true;
		set_status(xstrdup("retention: the last sweep could not act as the owner role"));
		free(why);
		PQfinish(conn);
		return;
	}
	set_cancel(conn);
	rc = prune_run(conn, &s->cfg, &o, &h, &t);
	set_cancel(NULL);
	PQfinish(conn);
	s->cursor_langgraph = o.cursor_langgraph;
	s->cursor_agentos = o.cursor_agentos;
	log_outcome(s, rc, &t, (double)(now_ms() - t0) / 1000.0);
}

/* Waits until DEADLINE (monotonic ms; 0: until told), a stop or a reload. */
static void wait_until(long long deadline)
{
	pthread_mutex_lock(&mu);
	while (!stop_asked && !reload_asked) {
		struct timespec ts;
		long long left;

		if (deadline == 0) {
			pthread_cond_wait(&cv, &mu);
			continue;
		}
		left = deadline - now_ms();
		if (left <= 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cv, &mu, &ts);
	}
	pthread_mutex_unlock(&mu);
}

static void *sweeper_main(void *arg)
{
	struct sweeper_state s;

	(void)arg;
	memset(&s, 0, sizeof(s));
	for (;;) {
		bool reload;

		pthread_mutex_lock(&mu);
		if (stop_asked) {
			pthread_mutex_unlock(&mu);
			break;
		}
		reload = reload_asked || !s.have_cfg;
		reload_asked = false;
		pthread_mutex_unlock(&mu);
		if (reload) {
			load_config(&s);
			s.next_sweep = now_ms();	/* new settings take effect at once */
		}
		if (!s.have_cfg || s.cfg.retention_ttl <= 0) {
			set_status(NULL);
			wait_until(0);
			continue;
		}
		if (now_ms() < s.next_sweep) {
			wait_until(s.next_sweep);
			continue;
		}
		s.next_sweep = now_ms() + 1000LL * s.cfg.retention_sweep_interval;
		run_sweep(&s);
	}
	if (s.have_cfg)
		config_free(&s.cfg);
	free(s.cursor_langgraph);
	free(s.cursor_agentos);
	return NULL;
}

int sweep_start(const char *path, bool explicit_path)
{
	pthread_condattr_t ca;
	int rc;

	config_path = xstrdup(path);
	config_explicit = explicit_path;
	stop_asked = reload_asked = false;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc == 0)
		rc = pthread_create(&sweeper, NULL, sweeper_main, NULL);
	if (rc != 0) {
		log_error("retention: cannot start the sweeper thread: %s; no TTL sweeps will run", strerror(rc));
		free(config_path);
		config_path = NULL;
		return -1;
	}
	running = true;
	return 0;
}

void sweep_reload(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&mu);
	reload_asked = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

void sweep_stop(void)
{
	char err[256];

	if (!running)
		return;
	pthread_mutex_lock(&mu);
	stop_asked = true;
	pthread_cond_broadcast(&cv);
	if (cancel != NULL && !PQcancel(cancel, err, sizeof(err)))
		log_warning("retention: cannot cancel the sweep's statement: %s", err);
	pthread_mutex_unlock(&mu);
	pthread_join(sweeper, NULL);
	running = false;
	pthread_cond_destroy(&cv);
	set_cancel(NULL);
	set_status(NULL);
	free(config_path);
	config_path = NULL;
}
