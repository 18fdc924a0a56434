/*
 * check_cmd.c: `checkpoint-agent check [--format text|json|prometheus]`, one
 * health probe with the Nagios plugin exit codes: 0 OK, 1 WARNING,
 * 2 CRITICAL, 3 UNKNOWN (usage errors too). The report goes to stdout; the checks are in
 * checks.c and the formats in report.c.
 */
#include "check.h"
#include "commands.h"
#include "db.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum report_format { FORMAT_TEXT, FORMAT_JSON, FORMAT_PROMETHEUS };

static int parse_format(const char *s, enum report_format *f)
{
	if (strcmp(s, "text") == 0)
		*f = FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*f = FORMAT_JSON;
	else if (strcmp(s, "prometheus") == 0)
		*f = FORMAT_PROMETHEUS;
	else
		return -1;
	return 0;
}

static const struct option longopts[] = {
	{ "format", required_argument, NULL, 'f' },
	{ NULL, 0, NULL, 0 }
};

static const char check_help[] =
	"usage: checkpoint-agent check [--format text|json|prometheus]\n"
	"\n"
	"One health probe: an authenticated connection as the application's role,\n"
	"then every check (query, writable, schema, pool_headroom,\n"
	"idle_in_transaction, long_transactions, lock_waits, disk, size, wraparound).\n"
	"\n"
	"Options:\n"
	"  -f, --format=F   text (default), json, or prometheus (node_exporter's textfile)\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit (Nagios plugin codes): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; usage\n"
	"errors are UNKNOWN (3) too; an unreadable config file is 78.\n";

const struct command_info check_info = { "f:", longopts, check_help };

/* A usage error: UNKNOWN, as a Nagios plugin says it. */
static int check_usage(const char *what, const char *arg)
{
	log_error("check: %s '%s'; usage: checkpoint-agent check [--format text|json|prometheus]", what, arg);
	return CHECK_UNKNOWN;
}

static int parse_check_args(int argc, char **argv, enum report_format *f)
{
	int c;

	*f = FORMAT_TEXT;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+f:", longopts, NULL)) != -1) {
		if (c != 'f')
			return check_usage("unknown or incomplete option", argv[optind - 1]);
		if (parse_format(optarg, f) != 0)
			return check_usage("unknown format (text, json or prometheus)", optarg);
	}
	if (optind < argc)
		return check_usage("unknown argument", argv[optind]);
	return 0;
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1000.0 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void print_report(const struct check_report *rep, enum report_format f)
{
	struct strbuf out;

	sb_init(&out);
	if (f == FORMAT_JSON)
		report_json(rep, &out);
	else if (f == FORMAT_PROMETHEUS)
		report_prometheus(rep, &out);
	else
		report_text(rep, &out);
	fwrite(out.buf, 1, out.len, stdout);
	if (fflush(stdout) != 0)
		log_error("cannot write the report to stdout");
	sb_free(&out);
}

int cmd_check(const struct config *cfg, int argc, char **argv)
{
	struct check_conn cc = { NULL, 0.0, NULL, 0, false };
	struct check_report rep;
	enum report_format f;
	struct timespec t0;
	char *why = NULL;
	int rc;

	if ((rc = parse_check_args(argc, argv, &f)) != 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cc.conn = db_connect_quiet(cfg, &cc.connect_rc, &why);
	cc.connect_ms = elapsed_ms(&t0);
	cc.connect_error = why;
	checks_run(cfg, &cc, &rep);
	print_report(&rep, f);
	rc = (int)rep.worst;
	check_report_free(&rep);
	if (cc.conn != NULL)
		PQfinish(cc.conn);
	free(why);
	return rc;
}
