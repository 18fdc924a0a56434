/*
 * check_cmd.c: `checkpoint-agent check [--format text|json|prometheus]
 * [--only LIST] [--skip LIST] [-w N] [-c N]`, one health probe with the
 * Nagios plugin exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage
 * errors too: main.c maps AERR_USAGE to UNKNOWN for it). The report goes to stdout; the checks are in checks.c, the
 * formats in report.c, --only, --skip, -w and -c in check_args.c.
 */
#include "check.h"
#include "check_args.h"
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
	{ "only", required_argument, NULL, 'o' },
	{ "skip", required_argument, NULL, 's' },
	{ "warning", required_argument, NULL, 'w' },
	{ "critical", required_argument, NULL, 'c' },
	{ NULL, 0, NULL, 0 }
};

static const char check_help[] =
	"usage: checkpoint-agent check [--format text|json|prometheus] [--only LIST]\n"
	"                              [--skip LIST] [-w N -c N]\n"
	"\n"
	"One health probe: an authenticated connection as the application's role,\n"
	"then every check (query, writable, schema, pool_headroom,\n"
	"idle_in_transaction, long_transactions, lock_waits, disk, size, bloat,\n"
	"wraparound, wal, backup, replication). replication knows the role of this\n"
	"node's server (database.node_uri, else the one database.uri reached): a\n"
	"leader's synchronous standbys and each replica's lag, or a standby's\n"
	"streaming state and replay lag. The text output is a Nagios plugin's: a\n"
	"first line 'STATUS - summary | perfdata', then one line per check, worst\n"
	"first. A check that does not apply here is SKIPPED and changes nothing.\n"
	"\n"
	"Options:\n"
	"  -f, --format=F     text (default), json, or prometheus (node_exporter's textfile)\n"
	"  --only=LIST        only these checks (comma-separated names)\n"
	"  --skip=LIST        every check but these\n"
	"  -w, --warning=N    the WARNING threshold of the one check --only names\n"
	"  -c, --critical=N   its CRITICAL threshold (after the command, -c is this, as\n"
	"                     for every Nagios plugin: give the config file as\n"
	"                     --config=FILE, or -c FILE before the command)\n"
	"  --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit (Nagios plugin codes): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; usage\n"
	"errors are UNKNOWN (3) too; an unreadable config file is 78.\n";

/* "c:" here is the critical threshold: main.c leaves -c to a Nagios command (check_info's user). */
const struct command_info check_info = { "f:w:c:", longopts, check_help };

/* A usage error (main.c makes it UNKNOWN, as a Nagios plugin says it). */
static int check_usage(const char *what, const char *arg)
{
	log_error("check: %s '%s'; usage: checkpoint-agent check [--format text|json|prometheus] "
		  "[--only LIST] [--skip LIST] [-w N -c N]", what, arg);
	return AERR_USAGE;
}

static int parse_check_args(int argc, char **argv, enum report_format *f, struct check_args *a)
{
	int c, rc = 0;

	*f = FORMAT_TEXT;
	check_args_init(a);
	optind = 1;
	opterr = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, "+:f:w:c:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (parse_format(optarg, f) != 0)
				rc = check_usage("unknown format (text, json or prometheus)", optarg);
			break;
		case 'o':
		case 's':
			rc = check_args_select(a, optarg, c == 'o');
			break;
		case 'w':
			a->warn = optarg;
			break;
		case 'c':
			a->crit = optarg;
			break;
		case ':':
			rc = check_usage("option needs a value:", argv[optind - 1]);
			break;
		default:
			rc = check_usage("unknown or incomplete option", argv[optind - 1]);
			break;
		}
	}
	if (rc == 0 && optind < argc)
		rc = check_usage("unknown argument", argv[optind]);
	return rc;
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
	struct check_args args;
	struct config run_cfg;
	enum report_format f;
	struct timespec t0;
	char *why = NULL;
	int rc;

	if ((rc = parse_check_args(argc, argv, &f, &args)) != 0)
		return rc;
	/* This run's thresholds: the config's, with -w and -c on top (a shallow copy; nothing is freed). */
	run_cfg = *cfg;
	if ((rc = check_args_thresholds(&args, &run_cfg.checks)) != 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cc.conn = db_connect_quiet(&run_cfg, &cc.connect_rc, &why);
	cc.connect_ms = elapsed_ms(&t0);
	cc.connect_error = why;
	checks_run_some(&run_cfg, &cc, args.skip, &rep);
	print_report(&rep, f);
	rc = (int)rep.worst;
	check_report_free(&rep);
	if (cc.conn != NULL)
		PQfinish(cc.conn);
	free(why);
	return rc;
}
