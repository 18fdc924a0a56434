/*
 * service.c: `checkpoint-agent run`, the systemd service (Type=notify).
 *
 * What it tells systemd, through libsystemd's sd_notify:
 *   STATUS=               while it waits for the database (backoff with jitter,
 *                         bounded by service.startup_timeout), and a one-line
 *                         summary after every check cycle
 *   EXTEND_TIMEOUT_USEC=  before READY, while a wait or a migration still
 *                         makes progress
 *   READY=1               once migrations are applied and no check is CRITICAL
 *                         (but `backup`, which alarms without gating)
 *   WATCHDOG=1            every WATCHDOG_USEC/2, from a helper thread that
 *                         makes no database call
 *   RELOADING=1, READY=1  around a config reload on SIGHUP (a bad file is
 *                         refused, logged, and the old config stays)
 *   STOPPING=1            on SIGTERM or SIGINT; then it exits 0
 *   ERRNO=                before it exits on a fatal error
 *
 * Following the leader. With a multi-host database.uri
 * (target_session_attrs=read-write), every reconnect finds the current
 * leader. A lost connection ends the wait between cycles at once (its socket
 * is watched), reconnects are retried at most every 2 s, and a move of the
 * leader is logged and said in STATUS=. With service.http_listen set, the
 * HTTP listener (http.c) serves the endpoints from its own thread.
 *
 * TTL sweeps (sweep.c) run in a thread of their own with a connection of
 * their own; the cycle's STATUS= line carries their state.
 *
 * Threads. The main thread does all the database work. The helper thread
 * waits for signals (blocked everywhere else) and sends WATCHDOG=1. It pings
 * only while the main thread keeps its promise to make progress by a
 * deadline: every database step is bounded (connect_timeout,
 * statement_timeout, the migration lock's timeout), so a main loop past its
 * deadline is stuck, and withholding WATCHDOG=1 lets systemd restart it.
 *
 * Test and benchmark options (not for production):
 *   --cycles N        stop (exit 0) after N check cycles
 *   --interval-ms N   milliseconds between cycles, overriding service.interval
 */
#include "agent.h"
#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "db_role.h"
#include "http.h"
#include "leader.h"
#include "log.h"
#include "migrate.h"
#include "sweep.h"
#include "step.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 250LL
/* Reconnection attempts while the database is down: at most this far apart, so
 * that the agent is healthy again within seconds of the server accepting. */
#define BACKOFF_MAX_MS 4000LL
#define STALL_MIN_MS 60000LL

/* ---- shared between the main thread and the helper thread ---- */

/* A SIGHUP before READY=1 waits: systemd has no reload before the start completes. */
static atomic_bool term_pending, hup_pending, helper_quit, stall_logged, ready_sent;
static atomic_llong deadline;		/* monotonic ms by which the main thread makes progress */
static int wake_fd = -1;		/* eventfd: the helper wakes the main thread */
static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static PGcancel *cancel_handle;		/* of the checks' connection, for a quick stop */
static uint64_t watchdog_usec;

/* The main thread's state. */
struct service {
	struct config *cfg;
	const char *config_path;
	bool explicit_path;
	long long max_cycles;		/* 0: forever */
	long long interval_ms;		/* -1: service.interval */
	PGconn *conn;			/* the checks' connection */
	double connect_ms;
	char *connect_error;
	int connect_rc;
	bool degraded;			/* the database is unreachable */
	long long down_since;		/* monotonic ms */
	unsigned attempts;
	struct backoff backoff;
	char *recovered;		/* a note for the next STATUS= */
	enum check_status last_worst;
	bool metrics_failing;
	bool notify_failing;
	char *server;			/* "host:port" the last connection reached */
	char *moved;			/* "the leader moved ..." for the next STATUS= */
};

static const struct service *current;

/* ---- notifications ---- */

/* Sends one notification; a failure is logged once (systemd may simply be absent). */
static void notify(struct service *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void notify(struct service *s, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int rc;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0) {
		va_end(ap);
		return;
	}
	va_end(ap);
	rc = sd_notify(0, msg);
	if (rc < 0 && !s->notify_failing)
		log_warning("cannot notify systemd (%s): %s", msg, strerror(-rc));
	s->notify_failing = rc < 0;
	free(msg);
}

/* A message made fit for one STATUS= line. */
static char *one_line(const char *s)
{
	char *t = xstrdup(s);

	for (char *c = t; *c; c++)
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	return t;
}

static void status_line(struct service *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void status_line(struct service *s, const char *fmt, ...)
{
	va_list ap;
	char *msg, *line;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0) {
		va_end(ap);
		return;
	}
	va_end(ap);
	line = one_line(msg);
	notify(s, "STATUS=%s", line);
	free(line);
	free(msg);
}

/* Logs a fatal error, tells systemd (STATUS= and ERRNO=), and returns RC. */
static int fatal(struct service *s, int rc, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fatal(struct service *s, int rc, int err, const char *fmt, ...)
{
	va_list ap;
	char *msg, *line;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = xstrdup("fatal error");
	va_end(ap);
	log_error("%s", msg);
	line = one_line(msg);
	notify(s, "STATUS=failed: %s\nERRNO=%d", line, err);
	free(line);
	free(msg);
	return rc;
}

static void extend_timeout(struct service *s, long long ms)
{
	notify(s, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)ms * 1000ULL);
}

/* Memory ran out (util.c exits 70 after this, the one exit outside main): tell systemd why, without allocating. */
static void on_out_of_memory(void)
{
	sd_notify(0, "STATUS=failed: out of memory\nERRNO=12");
}

/* ---- progress promises, the watchdog and signals ---- */

/* The main thread promises to make progress within MS. */
static void promise(long long ms)
{
	atomic_store(&deadline, now_ms() + ms);
	atomic_store(&stall_logged, false);
}

/* The longest a single check may take: each of its statements is bounded by statement_timeout. */
static long long step_bound_ms(const struct config *cfg)
{
	long long b = 20LL * cfg->statement_timeout + 2000LL * cfg->connect_timeout;

	return b > STALL_MIN_MS ? b : STALL_MIN_MS;
}

static bool on_check_tick(void)
{
	if (current != NULL)
		promise(step_bound_ms(current->cfg));
	return !atomic_load(&term_pending);
}

/* The migration's progress: STATUS= and more time to start (it runs before READY=1). */
static void on_migrate_progress(void *arg, const char *what)
{
	char *line = one_line(what);
	int rc;

	(void)arg;
	promise(STALL_MIN_MS);
	rc = sd_notifyf(0, "STATUS=migrating: %s\nEXTEND_TIMEOUT_USEC=%llu", line, 30000000ULL);
	if (rc < 0)
		log_debug("cannot notify systemd: %s", strerror(-rc));
	free(line);
}

/* Called every STEP_TICK_MS while a migration statement runs or waits: the wait is progress. */
static bool on_migrate_alive(void *arg)
{
	(void)arg;
	promise(STALL_MIN_MS);
	return !atomic_load(&term_pending);
}

static void wake_main(void)
{
	uint64_t one = 1;

	if (write(wake_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warning("cannot wake the main loop: %s", strerror(errno));
}

/* On SIGTERM, a check query in flight is cancelled so the stop is quick. */
static void cancel_running_query(void)
{
	char err[256];

	pthread_mutex_lock(&cancel_lock);
	if (cancel_handle != NULL && !PQcancel(cancel_handle, err, sizeof(err)))
		log_warning("cannot cancel the running check query: %s", err);
	pthread_mutex_unlock(&cancel_lock);
}

static void set_cancel_handle(PGconn *conn)
{
	PGcancel *c = conn ? PQgetCancel(conn) : NULL;

	if (conn != NULL && c == NULL)
		log_warning("libpq gave no cancel handle; a stop waits for the running query");
	pthread_mutex_lock(&cancel_lock);
	if (cancel_handle != NULL)
		PQfreeCancel(cancel_handle);
	cancel_handle = c;
	pthread_mutex_unlock(&cancel_lock);
}

static void ping_watchdog(void)
{
	long long late = now_ms() - atomic_load(&deadline);
	int rc;

	if (late > 0) {
		if (!atomic_exchange(&stall_logged, true))
			log_error("the main loop missed its progress deadline by %lld ms; withholding WATCHDOG=1 so "
				  "that systemd restarts the agent", late);
		return;
	}
	rc = sd_notify(0, "WATCHDOG=1");
	if (rc < 0)
		log_debug("cannot send WATCHDOG=1: %s", strerror(-rc));
}

static void *helper_main(void *arg)
{
	long long half_ms = (long long)(watchdog_usec / 2000ULL), next = now_ms() + half_ms;
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	while (!atomic_load(&helper_quit)) {
		long long wait = watchdog_usec ? next - now_ms() : 3600000LL;
		struct timespec ts;
		int sig;

		if (wait < 0)
			wait = 0;
		ts.tv_sec = (time_t)(wait / 1000);
		ts.tv_nsec = (long)(wait % 1000) * 1000000L;
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGHUP) {
			atomic_store(&hup_pending, true);
			wake_main();
		} else if (sig == SIGTERM || sig == SIGINT) {
			atomic_store(&term_pending, true);
			wake_main();
			cancel_running_query();
		}
		if (watchdog_usec && now_ms() >= next) {
			ping_watchdog();
			next = now_ms() + half_ms;
		}
	}
	return NULL;
}

static int start_helper(pthread_t *t)
{
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	if ((rc = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0) {
		log_error("cannot block signals: %s", strerror(rc));
		return -1;
	}
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd == -1) {
		log_error("cannot create an eventfd: %s", strerror(errno));
		return -1;
	}
	if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
		watchdog_usec = 0;
	if (watchdog_usec > 0 && watchdog_usec < 2000)
		watchdog_usec = 2000;
	if ((rc = pthread_create(t, NULL, helper_main, NULL)) != 0) {
		log_error("cannot start the watchdog thread: %s", strerror(rc));
		close(wake_fd);
		return -1;
	}
	return 0;
}

static void stop_helper(pthread_t t)
{
	atomic_store(&helper_quit, true);
	pthread_kill(t, SIGUSR1);
	pthread_join(t, NULL);
	close(wake_fd);
	wake_fd = -1;
	set_cancel_handle(NULL);
}

/* A stop, or (once READY=1 was sent) a reload, ends a wait early. */
static bool wait_interrupted(void)
{
	return atomic_load(&term_pending) || (atomic_load(&hup_pending) && atomic_load(&ready_sent));
}

/*
 * The connection WATCH (NULL: none) was closed by the server, or sent
 * something unasked: a restart or a terminated backend, to be noticed now
 * rather than at the next cycle.
 */
static bool connection_closed(PGconn *watch)
{
	if (PQconsumeInput(watch) == 0 || db_lost(watch))
		return true;
	for (PGnotify *n; (n = PQnotifies(watch)) != NULL;)
		PQfreemem(n);
	return false;
}

/* Sleeps MS, or less when a stop or reload is asked or the connection WATCH closes. */
static void wait_ms(long long ms, PGconn *watch)
{
	struct pollfd pfd[2] = { { wake_fd, POLLIN, 0 }, { watch ? PQsocket(watch) : -1, POLLIN, 0 } };
	long long end = now_ms() + ms;
	uint64_t v;

	promise(ms + STALL_MIN_MS);
	while (!wait_interrupted()) {
		long long left = end - now_ms();

		if (left <= 0)
			break;
		pfd[1].revents = 0;
		if (poll(pfd, pfd[1].fd >= 0 ? 2 : 1, left > 60000 ? 60000 : (int)left) == -1 && errno != EINTR) {
			log_warning("poll failed: %s", strerror(errno));
			sleep_ms(left > 1000 ? 1000 : left);
		}
		if (read(wake_fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
			log_warning("cannot read the eventfd: %s", strerror(errno));
		if (pfd[1].revents != 0 && connection_closed(watch)) {
			log_debug("the database closed the connection: checking at once");
			break;
		}
	}
}

/* The next delay before reconnecting (util.c's backoff: jitter, doubling up to BACKOFF_MAX_MS). */
static long long next_backoff(struct service *s)
{
	return backoff_next(&s->backoff);
}

/* ---- the connection ---- */

static void close_conn(struct service *s)
{
	set_cancel_handle(NULL);
	if (s->conn != NULL)
		PQfinish(s->conn);
	s->conn = NULL;
}

/* Notes which server a new connection reached; a different one than before means the leader moved. */
static void follow_leader(struct service *s)
{
	char *now = leader_address(s->conn);

	if (s->server != NULL && strcmp(s->server, now) != 0) {
		log_notice("the leader moved: from %s to %s; the agent follows it", s->server, now);
		free(s->moved);
		s->moved = xasprintf("leader moved from %s to %s; ", s->server, now);
	}
	free(s->server);
	s->server = now;
}

/* Opens the checks' connection; on failure S->connect_error says why. */
static bool open_conn(struct service *s)
{
	struct timespec a, b;

	close_conn(s);
	free(s->connect_error);
	s->connect_error = NULL;
	/* libpq tries each host of a multi-host URI in turn, each within connect_timeout. */
	promise(2000LL * s->cfg->connect_timeout * leader_host_count(s->cfg->uri) + 10000LL);
	clock_gettime(CLOCK_MONOTONIC, &a);
	s->conn = db_connect_quiet(s->cfg, &s->connect_rc, &s->connect_error);
	clock_gettime(CLOCK_MONOTONIC, &b);
	s->connect_ms = (double)(b.tv_sec - a.tv_sec) * 1000.0 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	set_cancel_handle(s->conn);
	if (s->conn != NULL)
		follow_leader(s);
	return s->conn != NULL;
}

/* ---- one check cycle ---- */

static void write_metrics(struct service *s, const struct check_report *rep)
{
	struct strbuf sb;
	char *why = NULL;

	if (s->cfg->metrics_file[0] == '\0')
		return;
	sb_init(&sb);
	report_prometheus(rep, &sb);
	if (write_file_atomic(s->cfg->metrics_file, sb.buf, sb.len, 0644, &why) != 0) {
		if (!s->metrics_failing)
			log_warning("cannot write the metrics file: %s", why);
		s->metrics_failing = true;
	} else if (s->metrics_failing) {
		log_notice("the metrics file %s is written again", s->cfg->metrics_file);
		s->metrics_failing = false;
	}
	free(why);
	sb_free(&sb);
}

/* Logs a change of the overall status, so the journal has the story without a line per cycle. */
static void log_transition(struct service *s, const struct check_report *rep, const char *summary)
{
	if (rep->worst == s->last_worst)
		return;
	if (rep->worst == CHECK_OK)
		log_notice("checks: %s", summary);
	else
		log_warning("checks: %s", summary);
	s->last_worst = rep->worst;
}

static void run_checks(struct service *s, struct check_report *rep)
{
	struct check_conn cc = { s->conn, s->connect_ms, s->connect_error, s->connect_rc, true };

	checks_run(s->cfg, &cc, rep);
}

static void mark_down(struct service *s)
{
	if (!s->degraded) {
		s->degraded = true;
		s->down_since = now_ms();
		s->attempts = 0;
		backoff_reset(&s->backoff);
		log_warning("the database is unreachable: %s; the agent stays up and reconnects with backoff",
			    s->connect_error ? s->connect_error : "the connection was lost");
	}
}

static void mark_up(struct service *s)
{
	if (!s->degraded)
		return;
	free(s->recovered);
	s->recovered = xasprintf("recovered after %lld s down; ", (now_ms() - s->down_since) / 1000);
	log_notice("the database is reachable again after %lld s and %u attempts",
		   (now_ms() - s->down_since) / 1000, s->attempts);
	s->degraded = false;
	backoff_reset(&s->backoff);
}

static long long interval_of(const struct service *s);

/* How long a cycle's result stays the answer of /ready: three intervals and a stalled step. */
static long long fresh_ms(const struct service *s)
{
	return 3 * interval_of(s) + step_bound_ms(s->cfg);
}

/* One cycle: reconnect when needed, run the checks, report. Returns the delay before the next one. */
static long long cycle(struct service *s, long long interval)
{
	struct check_report rep;
	long long delay = interval;
	char *summary;

	if (s->conn == NULL || db_lost(s->conn)) {
		if (!open_conn(s)) {
			mark_down(s);
			s->attempts++;
		} else {
			mark_up(s);
		}
	}
	run_checks(s, &rep);
	if (s->conn != NULL && db_lost(s->conn)) {
		free(s->connect_error);
		s->connect_error = xstrdup("the connection was lost during the checks");
		mark_down(s);
	}
	summary = report_summary(&rep);
	if (s->degraded) {
		delay = next_backoff(s);
		if (delay > interval && interval > 0)
			delay = interval;
		status_line(s, "degraded: database unreachable for %lld s (attempt %u, next in %.1f s): %s",
			    (now_ms() - s->down_since) / 1000, s->attempts, (double)delay / 1000.0,
			    s->connect_error ? s->connect_error : summary);
	} else {
		char *sweeping = sweep_status();

		status_line(s, "%s%s%s%s%s", s->moved ? s->moved : "", s->recovered ? s->recovered : "", summary,
			    sweeping ? "; " : "", sweeping ? sweeping : "");
		free(sweeping);
		free(s->recovered);
		s->recovered = NULL;
		free(s->moved);
		s->moved = NULL;
	}
	log_transition(s, &rep, summary);
	write_metrics(s, &rep);
	http_publish(&rep, fresh_ms(s));
	free(summary);
	check_report_free(&rep);
	return delay;
}

/* ---- start-up ---- */

/* Waits for the database until the start-up deadline. 0, or a fatal agent_err. */
static int wait_for_database(struct service *s, long long limit)
{
	backoff_reset(&s->backoff);
	s->attempts = 0;
	for (;;) {
		long long delay, left;

		if (atomic_load(&term_pending))
			return 0;
		if (open_conn(s))
			return 0;
		if (s->connect_rc == AERR_CONFIG)
			return fatal(s, AERR_CONFIG, EINVAL, "%s", s->connect_error);
		s->attempts++;
		left = limit - now_ms();
		if (left <= 0)
			return fatal(s, AERR_UNREACHABLE, ETIMEDOUT, "gave up waiting for the database after %d s and %u "
				     "attempts (service.startup_timeout): %s", s->cfg->startup_timeout, s->attempts,
				     s->connect_error);
		delay = next_backoff(s);
		delay = delay < left ? delay : left;
		if (s->attempts == 1)
			log_warning("waiting for the database: %s", s->connect_error);
		status_line(s, "waiting for the database (attempt %u, next in %.1f s, gives up in %lld s): %s",
			    s->attempts, (double)delay / 1000.0, left / 1000, s->connect_error);
		extend_timeout(s, delay + 2000LL * s->cfg->connect_timeout + 5000LL);
		wait_ms(delay, NULL);
	}
}

/*
 * Applies the migrations on a connection of their own (they change its
 * session settings). A stop cancels the running statement: the helper thread
 * through the cancel handle, the step through its alive() callback.
 */
static int apply_migrations(struct service *s)
{
	struct migrate_opts o = { NULL, 0, false, false };
	struct step_ctx ctx;
	int rc;

	status_line(s, "applying migrations");
	extend_timeout(s, 1000LL * s->cfg->lock_timeout + 30000LL);
	promise(1000LL * s->cfg->lock_timeout + STALL_MIN_MS);
	step_ctx_init(&ctx, s->cfg);
	ctx.progress = on_migrate_progress;
	ctx.alive = on_migrate_alive;
	if ((rc = db_owner_or_code(s->conn, s->cfg)) == 0)
		rc = migrate_apply(&ctx, s->conn, &o);
	close_conn(s);
	return rc;
}

static bool connect_is_critical(const struct check_report *rep)
{
	for (size_t i = 0; i < rep->n; i++)
		if (strcmp(rep->results[i].name, "connect") == 0)
			return rep->results[i].status == CHECK_CRITICAL;
	return true;
}

/* Checks until none is CRITICAL. 0 when ready, 1 to reconnect, else a fatal agent_err. */
static int first_checks(struct service *s, long long limit)
{
	backoff_reset(&s->backoff);
	while (!atomic_load(&term_pending)) {
		struct check_report rep;
		char *summary;
		long long delay, left;
		bool unreachable;

		if (!open_conn(s))
			return 1;
		run_checks(s, &rep);
		http_publish(&rep, fresh_ms(s));
		summary = report_summary(&rep);
		if (rep.gate_worst != CHECK_CRITICAL) {
			notify(s, "READY=1");
			atomic_store(&ready_sent, true);
			status_line(s, "%s", summary);
			log_notice("ready: %s", summary);
			s->last_worst = rep.worst;
			write_metrics(s, &rep);
			free(summary);
			check_report_free(&rep);
			return 0;
		}
		write_metrics(s, &rep);
		unreachable = connect_is_critical(&rep);
		check_report_free(&rep);
		left = limit - now_ms();
		if (left <= 0) {
			/* Unreachable only when the database cannot be reached; a reachable one that stays CRITICAL failed. */
			int code = unreachable ? AERR_UNREACHABLE : AERR_FAIL;
			int rc = fatal(s, code, EIO, "not ready after %d s (service.startup_timeout): %s",
				       s->cfg->startup_timeout, summary);

			free(summary);
			return rc;
		}
		delay = next_backoff(s);
		delay = delay < left ? delay : left;
		status_line(s, "not ready, checking again in %.1f s: %s", (double)delay / 1000.0, summary);
		extend_timeout(s, delay + step_bound_ms(s->cfg));
		free(summary);
		wait_ms(delay, NULL);
	}
	return 0;
}

/* Wait, migrate, check: 0 once READY=1 is sent (or a stop was asked), else a fatal agent_err. */
static int start_up(struct service *s)
{
	long long limit = now_ms() + 1000LL * s->cfg->startup_timeout;
	bool migrated = false;

	while (!atomic_load(&term_pending)) {
		int rc = wait_for_database(s, limit);

		if (rc != 0 || atomic_load(&term_pending))
			return rc;
		if (!migrated) {
			rc = apply_migrations(s);
			if (rc == AERR_STOPPED || atomic_load(&term_pending))
				return 0;
			if (rc == AERR_UNREACHABLE)
				continue;
			if (rc != 0)
				return fatal(s, rc, rc == AERR_LOCK ? ETIMEDOUT : EPROTO,
					     "the migrations failed (exit %d; the log above says why); fix the cause, then "
					     "restart the service", exit_code_for(rc));
			migrated = true;
		}
		rc = first_checks(s, limit);
		if (rc != 1)
			return rc;
	}
	return 0;
}

/* ---- reload and the loop ---- */

static void reload(struct service *s)
{
	struct config fresh;
	struct timespec ts;
	int rc;

	atomic_store(&hup_pending, false);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	notify(s, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s", (unsigned long long)ts.tv_sec * 1000000ULL +
	       (unsigned long long)ts.tv_nsec / 1000ULL, s->config_path);
	rc = config_load(s->config_path, s->explicit_path, &fresh);
	if (rc != 0) {
		config_free(&fresh);
		log_error("reload refused: %s has errors (above); the previous config stays in force", s->config_path);
		notify(s, "READY=1\nSTATUS=reload refused: %s has errors; the previous config stays in force",
		       s->config_path);
		return;
	}
	http_stop();		/* its thread reads the config being replaced */
	config_free(s->cfg);
	*s->cfg = fresh;
	close_conn(s);		/* the database settings may have changed */
	if (http_start(s->cfg) != 0)
		log_error("reloaded without the HTTP listener (above); fix service.http_listen and reload again");
	sweep_reload();
	log_notice("reloaded %s", s->config_path);
	notify(s, "READY=1\nSTATUS=reloaded %s", s->config_path);
}

/* The interval between cycles, in ms: --interval-ms, else service.interval. */
static long long interval_of(const struct service *s)
{
	return s->interval_ms >= 0 ? s->interval_ms : 1000LL * s->cfg->interval;
}

/* Cycles until a stop is asked (or --cycles are done). The first waits an interval: start-up just checked. */
static int main_loop(struct service *s)
{
	long long cycles = 0, delay = interval_of(s);

	for (;;) {
		long long started;

		if (delay > 0)
			wait_ms(delay, s->degraded ? NULL : s->conn);
		else
			promise(step_bound_ms(s->cfg));
		if (atomic_load(&term_pending))
			return 0;
		if (atomic_load(&hup_pending)) {
			reload(s);
			delay = 0;	/* check the new config at once */
			continue;
		}
		started = now_ms();
		delay = cycle(s, interval_of(s));
		if (s->max_cycles > 0 && ++cycles >= s->max_cycles)
			return 0;
		if (!s->degraded)
			delay -= now_ms() - started;	/* a fixed rhythm, not interval plus the cycle's time */
	}
}

/* ---- the command ---- */

static int parse_count(const char *opt, const char *v, long long min, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || *out < min) {
		log_error("run: %s needs a whole number of at least %lld, not '%s'", opt, min, v);
		return AERR_USAGE;
	}
	return 0;
}

static const struct option run_longopts[] = {
	{ "cycles", required_argument, NULL, 'C' },
	{ "interval-ms", required_argument, NULL, 'I' },
	{ NULL, 0, NULL, 0 }
};

static const char run_help[] =
	"usage: checkpoint-agent run\n"
	"\n"
	"The systemd service (Type=notify): waits for the database, applies the\n"
	"migrations, sends READY=1 once no check is CRITICAL, then checks every\n"
	"service.interval seconds, feeding the watchdog (WatchdogSec=). SIGHUP\n"
	"reloads the config; SIGTERM stops it (a running statement is cancelled).\n"
	"With a multi-host database.uri (target_session_attrs=read-write) it follows\n"
	"the leader after a failover without a restart, and says so in STATUS=.\n"
	"With service.http_listen set (\"127.0.0.1:9188\"), it serves GET /health,\n"
	"/ready, /primary, /replica?lag=16MB (or 10s) and /metrics (200 or 503).\n"
	"\n"
	"Options:\n"
	"  --cycles=N        for tests and benchmarks: stop (exit 0) after N check cycles\n"
	"  --interval-ms=MS  for tests and benchmarks: cycle every MS milliseconds\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit: 0 stopped by SIGTERM/SIGINT, 64 usage, 69 the database never came\n"
	"up (service.startup_timeout), 70 not ready or a migration failed, 75 lock\n"
	"timeout, 78 config.\n";

const struct command_info run_info = { "", run_longopts, run_help };

static int parse_run_args(struct service *s, int argc, char **argv)
{
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", run_longopts, NULL)) != -1) {
		if (c == 'C')
			rc = parse_count("--cycles", optarg, 1, &s->max_cycles);
		else if (c == 'I')
			rc = parse_count("--interval-ms", optarg, 0, &s->interval_ms);
		else
			rc = cli_bad_option("run", argv[optind - 1]);
		if (rc != 0)
			return rc;
	}
	if (optind < argc)
		return cli_bad_option("run", argv[optind]);
	return 0;
}

int cmd_run(struct config *cfg, const char *config_path, bool explicit_path, int argc, char **argv)
{
	struct service s;
	pthread_t helper;
	int rc;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.config_path = config_path;
	s.explicit_path = explicit_path;
	s.interval_ms = -1;
	s.last_worst = CHECK_OK;
	if ((rc = parse_run_args(&s, argc, argv)) != 0)
		return rc;
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	promise(STALL_MIN_MS);
	if (start_helper(&helper) != 0)
		return fatal(&s, AERR_FAIL, EAGAIN, "cannot start the service's helper thread");
	current = &s;
	backoff_init(&s.backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	xalloc_on_failure(on_out_of_memory);
	checks_set_tick(on_check_tick);

	/* Started after start_helper: its thread inherits the blocked signals. */
	if (http_start(cfg) != 0)
		rc = fatal(&s, AERR_CONFIG, EADDRNOTAVAIL, "cannot start the HTTP listener (service.http_listen)");
	else
		rc = start_up(&s);
	/* TTL sweeps (the retention group) in a thread of their own, once the schema is in place. */
	if (rc == 0 && !atomic_load(&term_pending) && sweep_start(config_path, explicit_path) != 0)
		log_warning("the service runs without TTL sweeps");
	if (rc == 0 && !atomic_load(&term_pending))
		rc = main_loop(&s);
	if (rc == 0) {
		notify(&s, "STOPPING=1\nSTATUS=stopping");
		log_notice("stopping");
	}
	sweep_stop();
	http_shutdown();
	close_conn(&s);
	checks_set_tick(NULL);
	current = NULL;
	stop_helper(helper);
	free(s.connect_error);
	free(s.recovered);
	free(s.server);
	free(s.moved);
	return rc;
}
