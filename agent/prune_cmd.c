/*
 * prune_cmd.c: `checkpoint-agent prune`, retention on demand (or from a
 * timer): the options, progress on a terminal and in systemd's STATUS=, and
 * the summary. The work is prune.c's.
 *
 *   prune [--strategy delete|keep-latest] [--older-than DURATION | --thread ID...]
 *         [--batch N] [--max-duration SECONDS] [--lock-timeout MS] [--dry-run]
 *
 * SIGINT or SIGTERM stops it after the batch in progress, with the summary
 * and exit 130 or 143 (a second one kills it; an interrupted batch rolls
 * back).
 */
#include "agent.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "db_role.h"
#include "duration.h"
#include "human.h"
#include "log.h"
#include "prune.h"
#include "step.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define PROGRESS_TERMINAL_MS 1000
#define PROGRESS_STATUS_MS 2000
#define PROGRESS_LOG_MS 30000

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
	cli_stopped_by(sig);
}

struct display {
	bool terminal;		/* stderr is a terminal: a line rewritten in place */
	bool notify;		/* NOTIFY_SOCKET: STATUS= lines */
	bool drawn;		/* a progress line is on the terminal */
	long long last_terminal, last_status, last_log;
	const struct prune_opts *o;
};

static bool keep_going(void *arg)
{
	(void)arg;
	return !interrupted;
}

/* One progress line: threads, rows, rate, and the estimate of what is left. */
static char *progress_line(const struct prune_totals *t, const struct prune_opts *o)
{
	double secs = (double)(now_ms() - t->started_ms) / 1000.0, frac = 0.0;
	long long rows = prune_total_rows(t), skipped = t->skipped_delta + t->skipped_newer + t->skipped_busy +
		t->skipped_timeout + t->skipped_no_age;
	char scanned[32], pruned[32], rows_s[32], rate[32], size[32], left[48] = "";

	human_count(t->scanned, scanned, sizeof(scanned));
	human_count(t->pruned, pruned, sizeof(pruned));
	human_count(rows, rows_s, sizeof(rows_s));
	human_count(secs > 0 ? (long long)((double)rows / secs) : 0, rate, sizeof(rate));
	human_bytes((double)prune_total_bytes(t), size, sizeof(size));
	if (o->nthreads > 0)
		frac = (double)(t->pruned + skipped) / (double)o->nthreads;
	else if (t->estimate > 0)
		frac = (double)t->scanned / (double)t->estimate;
	if (frac > 0.02 && frac < 1.0) {
		char a[32];

		human_age(secs * (1.0 - frac) / frac, a, sizeof(a));
		snprintf(left, sizeof(left), ", about %s left", a);
	}
	if (t->estimate > 0 && o->nthreads == 0) {
		char est[32];

		human_count(t->estimate, est, sizeof(est));
		return xasprintf("prune %s: %s of ~%s threads scanned, %s %s, %lld skipped; %s rows (%s), %s rows/s%s",
				 t->phase, scanned, est, pruned, o->dry_run ? "to prune" : "pruned", skipped, rows_s,
				 size, rate, left);
	}
	return xasprintf("prune %s: %s threads scanned, %s %s, %lld skipped; %s rows (%s), %s rows/s%s", t->phase,
			 scanned, pruned, o->dry_run ? "to prune" : "pruned", skipped, rows_s, size, rate, left);
}

static void on_progress(const struct prune_totals *t, void *arg)
{
	struct display *d = arg;
	long long now = now_ms();
	char *line = NULL;

	if (d->terminal && now - d->last_terminal >= PROGRESS_TERMINAL_MS) {
		line = progress_line(t, d->o);
		fprintf(stderr, "\r%s\033[K", line);
		fflush(stderr);
		d->drawn = true;
		d->last_terminal = now;
	}
	if (d->notify && now - d->last_status >= PROGRESS_STATUS_MS) {
		if (line == NULL)
			line = progress_line(t, d->o);
		if (sd_notifyf(0, "STATUS=%s", line) < 0)
			d->notify = false;
		d->last_status = now;
	}
	if (!d->terminal && now - d->last_log >= PROGRESS_LOG_MS && now - t->started_ms >= PROGRESS_LOG_MS) {
		if (line == NULL)
			line = progress_line(t, d->o);
		log_info("%s", line);
		d->last_log = now;
	}
	free(line);
}

static void print_table_line(const char *name, long long rows, long long bytes)
{
	char r[32], b[32];

	human_count(rows, r, sizeof(r));
	human_bytes((double)bytes, b, sizeof(b));
	printf("  %-22s %14s rows  %12s\n", name, r, b);
}

static void print_summary(const struct config *cfg, const struct prune_opts *o, const struct prune_totals *t)
{
	double secs = (double)(now_ms() - t->started_ms) / 1000.0;
	long long rows = prune_total_rows(t);
	char what[64], n1[32], n2[32], rate[32];

	if (o->nthreads > 0)
		snprintf(what, sizeof(what), "%zu named thread%s", o->nthreads, o->nthreads == 1 ? "" : "s");
	else {
		char d[24];

		duration_format(o->older_than, d, sizeof(d));
		snprintf(what, sizeof(what), "threads older than %s", d);
	}
	printf("prune %s, %s%s\n", prune_strategy_name(o->strategy), what,
	       o->dry_run ? " (dry run: nothing was changed)" : "");
	human_count(t->scanned, n1, sizeof(n1));
	human_count(t->pruned, n2, sizeof(n2));
	printf("  threads: %s scanned, %s %s\n", n1, n2, o->dry_run ? "would be pruned" : "pruned");
	if (config_has_set(cfg, "langgraph"))
		for (int i = PT_CHECKPOINTS; i <= PT_WRITES; i++)
			print_table_line(prune_table_names[i], t->rows[i], t->bytes[i]);
	if (config_has_set(cfg, "agentos"))
		print_table_line(prune_table_names[PT_AGENTOS], t->rows[PT_AGENTOS], t->bytes[PT_AGENTOS]);
	if (config_has_set(cfg, "langgraph-store") && o->nthreads == 0)
		print_table_line(prune_table_names[PT_STORE], t->rows[PT_STORE], t->bytes[PT_STORE]);
	human_count(secs > 0 ? (long long)((double)rows / secs) : rows, rate, sizeof(rate));
	print_table_line(o->dry_run ? "total (would go)" : "total (gone)", rows, prune_total_bytes(t));
	printf("  in %.1f s, %lld transactions, %s rows/s\n", secs, t->batches, rate);
	if (t->skipped_delta)
		printf("  skipped: %lld threads whose newest checkpoint needs their history (a delta channel; "
		       "delete removes them whole)\n", t->skipped_delta);
	if (t->skipped_newer)
		printf("  skipped: %lld threads that received a checkpoint after the decision (left whole)\n",
		       t->skipped_newer);
	if (t->skipped_busy)
		printf("  skipped: %lld threads (or store batches) whose rows stayed locked by another session\n",
		       t->skipped_busy);
	if (t->skipped_timeout)
		printf("  skipped: %lld threads too large to prune within statement_timeout\n", t->skipped_timeout);
	if (t->skipped_no_age)
		printf("  skipped: %lld threads whose age cannot be read\n", t->skipped_no_age);
	if (t->not_found)
		printf("  not found: %lld of the named threads\n", t->not_found);
	if (t->stopped)
		printf("  stopped before the end: %s; run prune again to go on\n", t->stop_reason);
	fflush(stdout);
}

static int prune_usage(const char *arg, const char *why)
{
	log_error("prune: %s: %s", arg, why);
	log_info("usage: checkpoint-agent prune [--strategy delete|keep-latest] [--older-than DURATION | --thread ID...] "
		 "[--batch N] [--max-duration SECONDS] [--lock-timeout MS] [--dry-run]");
	return AERR_USAGE;
}

/* A whole number from MIN to MAX. */
static int parse_number(const char *opt, const char *v, long long min, long long max, long long *out)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
		char *arg = xasprintf("%s %s", opt, v), *why;
		int rc;

		why = xasprintf("must be a whole number from %lld to %lld", min, max);
		rc = prune_usage(arg, why);
		free(why);
		free(arg);
		return rc;
	}
	*out = n;
	return 0;
}

struct prune_args {
	struct prune_opts o;
	struct strlist threads;
	bool have_older_than;
};

static int parse_option(int c, const char *arg, struct prune_args *a)
{
	long long n;
	int rc = 0;
	char *label;

	switch (c) {
	case 's':
		if (prune_parse_strategy(arg, &a->o.strategy) != 0) {
			label = xasprintf("--strategy %s", arg);
			rc = prune_usage(label, "unknown strategy; the strategies are delete and keep-latest");
			free(label);
		}
		return rc;
	case 'o':
		if (duration_parse(arg, &a->o.older_than) != 0 || a->o.older_than < 1) {
			label = xasprintf("--older-than %s", arg);
			rc = prune_usage(label, "not a duration: write a whole number and a unit, e.g. 30d, 12h or 90m "
					 "(s, m, h, d or w), of at least 1s");
			free(label);
		}
		a->have_older_than = true;
		return rc;
	case 't':
		if (arg[0] == '\0')
			return prune_usage("--thread \"\"", "a thread id cannot be empty");
		if (!sl_contains(&a->threads, arg))
			sl_add(&a->threads, arg);
		return 0;
	case 'b':
		if ((rc = parse_number("--batch", arg, 1, 10000, &n)) == 0)
			a->o.batch = (int)n;
		return rc;
	case 'm':
		if ((rc = parse_number("--max-duration", arg, 1, 86400LL * 365, &n)) == 0)
			a->o.deadline = now_ms() + n * 1000;
		return rc;
	case 'l':
		if ((rc = parse_number("--lock-timeout", arg, 10, 600000, &n)) == 0)
			a->o.lock_timeout_ms = (int)n;
		return rc;
	case 'n':
		a->o.dry_run = true;
		return 0;
	default:
		return cli_bad_option("prune", arg);
	}
}

static const struct option prune_longopts[] = {
	{ "strategy", required_argument, NULL, 's' },
	{ "older-than", required_argument, NULL, 'o' },
	{ "thread", required_argument, NULL, 't' },
	{ "batch", required_argument, NULL, 'b' },
	{ "max-duration", required_argument, NULL, 'm' },
	{ "lock-timeout", required_argument, NULL, 'l' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ NULL, 0, NULL, 0 }
};

static const char prune_help[] =
	"usage: checkpoint-agent prune [--strategy delete|keep-latest]\n"
	"         [--older-than DURATION | --thread ID...] [--batch N]\n"
	"         [--max-duration SECONDS] [--lock-timeout MS] [--dry-run]\n"
	"\n"
	"Removes old threads of the langgraph and agentos sets, and the store's\n"
	"expired rows, in batches of short transactions. A thread that receives a\n"
	"checkpoint while it is pruned keeps it.\n"
	"\n"
	"Options:\n"
	"  --strategy delete       a thread older than the TTL goes whole (default;\n"
	"                          retention.strategy in the config)\n"
	"  --strategy keep-latest  such a thread keeps its newest checkpoint per\n"
	"                          namespace; threads with delta channels are skipped\n"
	"  --older-than DURATION   age of a thread's newest checkpoint: 30d, 12h, 90m\n"
	"                          (s, m, h, d, w); default retention.ttl\n"
	"  --thread ID             prune this thread whatever its age (repeatable)\n"
	"  --batch N               threads per transaction, 1 to 10000 (default\n"
	"                          retention.batch, 50)\n"
	"  --max-duration SECONDS  stop after this long; the next run goes on\n"
	"  --lock-timeout MS       lock_timeout of each batch, 10 to 600000 (default 2000)\n"
	"  --dry-run               count what would go: threads, rows, bytes\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit: 0 done, 64 usage, 65 a schema version it does not know (nothing\n"
	"changed), 69 unreachable, 70 a statement failed, 75 another pruner runs or\n"
	"rows stayed locked, 78 config, 130/143 stopped by SIGINT/SIGTERM.\n";

const struct command_info prune_info = { "", prune_longopts, prune_help };

static int parse_prune_args(const struct config *cfg, int argc, char **argv, struct prune_args *a)
{
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", prune_longopts, NULL)) != -1) {
		int rc;

		if (c == '?')
			return cli_bad_option("prune", argv[optind - 1]);
		if ((rc = parse_option(c, optarg, a)) != 0)
			return rc;
	}
	if (optind < argc)
		return cli_bad_option("prune", argv[optind]);
	if (a->have_older_than && a->threads.n > 0)
		return prune_usage("--thread", "names threads to prune whatever their age; leave out --older-than");
	if (!a->have_older_than && a->threads.n == 0) {
		if (cfg->retention_ttl <= 0)
			return prune_usage("--older-than", "missing: give --older-than DURATION or --thread ID (or set "
					   "retention.ttl in the config)");
		a->o.older_than = cfg->retention_ttl;
	}
	a->o.threads = (const char *const *)a->threads.items;
	a->o.nthreads = a->threads.n;
	return 0;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = (int)SA_RESETHAND;	/* a second one stops it at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cmd_prune(const struct config *cfg, int argc, char **argv)
{
	struct prune_args a;
	struct prune_totals t;
	struct display d;
	struct prune_hooks h = { keep_going, on_progress, &d };
	PGconn *conn;
	int rc;

	memset(&a, 0, sizeof(a));
	sl_init(&a.threads);
	a.o.strategy = strcmp(cfg->retention_strategy, "keep_latest") == 0 ? PRUNE_KEEP_LATEST : PRUNE_DELETE;
	a.o.batch = cfg->retention_batch;
	a.o.lock_timeout_ms = PRUNE_LOCK_TIMEOUT_MS;
	if ((rc = parse_prune_args(cfg, argc, argv, &a)) != 0) {
		sl_free(&a.threads);
		return rc;
	}
	memset(&d, 0, sizeof(d));
	d.o = &a.o;
	d.terminal = isatty(STDERR_FILENO) && !log_to_journal();
	d.notify = getenv("NOTIFY_SOCKET") != NULL;
	install_signals();
	/* The same connection path as migrate (the owner role, database.owner_role): whatever privilege it has, the deletes have. */
	if ((conn = db_connect_owner(cfg, &rc)) == NULL) {
		sl_free(&a.threads);
		return rc;
	}
	rc = prune_run(conn, cfg, &a.o, &h, &t);
	if (d.drawn)
		fputs("\r\033[K", stderr);
	if (interrupted && (rc == 0 || rc == AERR_FAIL))
		rc = AERR_STOPPED;	/* what was deleted stays; the batch in progress rolled back */
	if (rc == 0 || rc == AERR_UNREACHABLE || rc == AERR_FAIL || rc == AERR_STOPPED)
		print_summary(cfg, &a.o, &t);
	if (rc == 0 && t.skipped_busy > 0) {
		log_warning("prune: some rows stayed locked by other sessions and were left; run prune again later");
		rc = AERR_LOCK;
	}
	if (d.notify) {
		char *line = progress_line(&t, &a.o);

		sd_notifyf(0, "STATUS=finished (exit %d): %s", exit_code_for(rc), line);
		free(line);
	}
	PQfinish(conn);
	free(a.o.cursor_langgraph);
	free(a.o.cursor_agentos);
	sl_free(&a.threads);
	return rc;
}
