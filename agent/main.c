/*
 * main.c: the command line. `checkpoint-agent [-c FILE] [-v] COMMAND [options]`.
 *
 * The options every command accepts (-c/--config, -v/--verbose,
 * -h/--help) may come before or after the command's name, in either
 * spelling (-c FILE, -cFILE, --config FILE, --config=FILE), except that
 * after `check`, a Nagios plugin, -c is its critical threshold (--config
 * stays). main.c finds
 * them with getopt_long over the command's own options (its command_info),
 * reads the config, and hands the command the rest. What the command
 * returns becomes the exit code here, and only here (exit_code_for).
 */
#include "agent.h"
#include "cli.h"
#include "commands.h"
#include "config.h"
#include "log.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: checkpoint-agent [-c FILE] [-v] COMMAND [options]\n"
	"       checkpoint-agent help [COMMAND]\n"
	"\n"
	"Applies and rolls back the LangGraph checkpoint schema, and checks the\n"
	"database's health.\n"
	"\n"
	"Commands:\n"
	"  migrate [--set S] [--to V] [--dry-run]      apply pending versions\n"
	"  status [--json] [--exit-code]               versions, pending, drift, quarantine\n"
	"  verify                                      compare the live schema with its version\n"
	"  rollback --to V [--set S] [--dry-run] [--purge]\n"
	"                                              run down files to version V (-1: all)\n"
	"  check [--format text|json|prometheus] [--only LIST] [--skip LIST] [-w N -c N]\n"
	"                                              one health probe, a Nagios plugin\n"
	"  prune [--strategy delete|keep-latest] [--older-than DURATION | --thread ID...]\n"
	"        [--batch N] [--max-duration SECONDS] [--lock-timeout MS] [--dry-run]\n"
	"                                              remove old threads (retention)\n"
	"  usage [--json] [--top N]                    where the space goes: tables, thread ages\n"
	"  run                                         the systemd service\n"
	"  help [COMMAND]                              this text, or a command's options\n"
	"\n"
	"Options (before or after the command):\n"
	"  -c, --config=FILE   config file (default " CONFIG_DEFAULT_PATH ");\n"
	"                      after `check`, -c is its critical threshold: use --config\n"
	"  -v, --verbose       say more\n"
	"  -h, --help          this text; after a command, that command's help\n"
	"  -V, --version       the agent's version\n"
	"\n"
	"The database is database.uri in the config, or CHECKPOINT_DB_URI.\n"
	"Exit codes: 0 ok, 64 usage, 65 schema differs, 69 database unreachable,\n"
	"70 step failed or refused, 75 lock timeout, 77 no privilege (status,\n"
	"verify), 78 config error, 130/143 stopped by SIGINT/SIGTERM;\n"
	"status --exit-code: 1 pending, 2 drift; check: 1 warning, 2 critical, 3 unknown;\n"
	"prune: 65 a schema version it does not know, 75 another pruner or rows left locked.\n";

/* The commands: each parses its own options; ARGV[0] is its name. */
static const struct command {
	const char *name;
	int (*fn)(const struct config *cfg, int argc, char **argv);
	const struct command_info *info;	/* NULL: no help, no common options after the name */
	bool nagios;				/* a Nagios plugin: usage errors exit 3 (UNKNOWN), and
						   after its name -c is its critical threshold (--config stays) */
} commands[] = {
	{ "migrate", cmd_migrate, &migrate_info, false },
	{ "status", cmd_status, &status_info, false },
	{ "verify", cmd_verify, &verify_info, false },
	{ "rollback", cmd_rollback, &rollback_info, false },
	{ "check", cmd_check, &check_info, true },
	{ "prune", cmd_prune, &prune_info, false },
	{ "usage", cmd_usage, &usage_info, false },
	{ "run", NULL, &run_info, false },	/* the service: it re-reads its config on SIGHUP */
};

#define COMMAND_NAMES "migrate, status, verify, rollback, check, prune, usage, run and help"

/* What the command line says, apart from the command's own options. */
struct invocation {
	const char *config_path;
	bool explicit_path;
	bool help;
	const struct command *cmd;
	int argc;			/* the command's name and its own options */
	char **argv;
	struct strlist owned;		/* the strings of ARGV that were made here */
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

static int usage_error(const char *what)
{
	if (what != NULL)
		log_error("%s", what);
	log_info("Try 'checkpoint-agent --help'.");	/* via log: the journal's prefix */
	return AERR_USAGE;
}

/* The options every command accepts. */
static const struct option common_longopts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

static void common_option(struct invocation *inv, int c, const char *arg)
{
	if (c == 'c') {
		inv->config_path = arg;
		inv->explicit_path = true;
	} else if (c == 'v') {
		log_set_verbose(true);
	} else if (c == 'h') {
		inv->help = true;
	}
}

/* getopt_long's value for --config when -c is the command's own (a Nagios plugin's critical threshold). */
#define CONFIG_LONG_ONLY 256

/* The common options and the command's own, as one getopt_long table (caller frees). */
static struct option *merged_longopts(const struct command_info *info, bool own_c)
{
	size_t n = 0, k = 0;
	struct option *all;

	while (info->longopts[n].name != NULL)
		n++;
	all = xcalloc(n + 4, sizeof(*all));
	for (size_t i = 0; i < n; i++)
		all[k++] = info->longopts[i];
	for (size_t i = 0; i < 3; i++)		/* config, verbose, help */
		all[k++] = common_longopts[i];
	if (own_c)
		all[n].val = CONFIG_LONG_ONLY;
	return all;
}

/* Appends the option C (long option LONGOPT when not NULL) and its ARG to the command's argv. */
static void keep_option(struct invocation *inv, int c, const struct option *longopt, const char *arg)
{
	if (longopt != NULL && arg != NULL)
		sl_addf(&inv->owned, "--%s=%s", longopt->name, arg);
	else if (longopt != NULL)
		sl_addf(&inv->owned, "--%s", longopt->name);
	else {
		sl_addf(&inv->owned, "-%c", c);
		if (arg != NULL)
			sl_add(&inv->owned, arg);
	}
}

/*
 * Splits the command's arguments (ARGV[0] is its name) into the common
 * options, handled here, and its own, kept in INV->argv. 0 or AERR_USAGE.
 */
static int split_command_args(struct invocation *inv, int argc, char **argv)
{
	const struct command_info *info = inv->cmd->info;
	bool own_c = inv->cmd->nagios;
	struct option *all = merged_longopts(info, own_c);
	char *shortopts = xasprintf("%svh%s", own_c ? "" : "c:", info->shortopts);
	int c, idx, rc = 0;

	sl_add(&inv->owned, argv[0]);
	optind = 1;
	opterr = 0;
	for (idx = -1; (c = getopt_long(argc, argv, shortopts, all, &idx)) != -1; idx = -1) {
		if (c == '?' || c == ':') {
			rc = cli_bad_option(inv->cmd->name, argv[optind - 1]);
			break;
		}
		if (c == CONFIG_LONG_ONLY)
			common_option(inv, 'c', optarg);
		else if ((c == 'c' && !own_c) || c == 'v' || c == 'h')
			common_option(inv, c, optarg);
		else
			keep_option(inv, c, idx >= 0 ? &all[idx] : NULL, optarg);
	}
	for (int i = optind; rc == 0 && i < argc; i++)
		sl_add(&inv->owned, argv[i]);	/* positional words: the command refuses them */
	free(shortopts);
	free(all);
	inv->argc = (int)inv->owned.n;
	inv->argv = xcalloc(inv->owned.n + 1, sizeof(char *));
	for (size_t i = 0; i < inv->owned.n; i++)
		inv->argv[i] = inv->owned.items[i];
	return rc;
}

/* `help [COMMAND]`: 0, or AERR_USAGE for an unknown command. */
static int help_command(int argc, char **argv)
{
	const struct command *cmd;

	if (argc < 2) {
		fputs(usage_text, stdout);
		return 0;
	}
	cmd = find_command(argv[1]);
	if (cmd == NULL) {
		log_error("help: unknown command '%s'; the commands are " COMMAND_NAMES, argv[1]);
		return AERR_USAGE;
	}
	fputs(cmd->info && cmd->info->help ? cmd->info->help : usage_text, stdout);
	return 0;
}

/* The global options before the command: 0 to go on, 1 when done (--version), or AERR_USAGE. */
static int parse_global(struct invocation *inv, int argc, char **argv)
{
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+c:vhV", common_longopts, NULL)) != -1) {
		switch (c) {
		case 'V':
			printf("checkpoint-agent %s\n", AGENT_VERSION);
			return 1;
		case 'c':
		case 'v':
		case 'h':
			common_option(inv, c, optarg);
			break;
		default:
			log_error("unknown or incomplete option '%s'", argv[optind - 1]);
			return usage_error(NULL);
		}
	}
	return 0;
}

static int run_command(struct invocation *inv)
{
	struct config cfg;
	int rc;

	if ((rc = config_load(inv->config_path, inv->explicit_path, &cfg)) != 0) {
		config_free(&cfg);
		return rc;
	}
	if (inv->cmd->fn != NULL)
		rc = inv->cmd->fn(&cfg, inv->argc, inv->argv);
	else
		rc = cmd_run(&cfg, inv->config_path, inv->explicit_path, inv->argc, inv->argv);
	config_free(&cfg);
	return rc;
}

/* Runs the command line: the command's return value (a result >= 0, or an agent_err). */
static int dispatch(struct invocation *inv, int argc, char **argv)
{
	int rc = parse_global(inv, argc, argv), first;

	if (rc != 0)
		return rc < 0 ? rc : 0;
	first = optind;
	if (first >= argc && inv->help) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (first >= argc)
		return usage_error("no command given; the commands are " COMMAND_NAMES);
	if (strcmp(argv[first], "help") == 0)
		return help_command(argc - first, argv + first);
	if ((inv->cmd = find_command(argv[first])) == NULL) {
		log_error("unknown command '%s'; the commands are " COMMAND_NAMES, argv[first]);
		return usage_error(NULL);
	}
	if (inv->cmd->info == NULL) {
		inv->argc = argc - first;
		inv->argv = NULL;
	} else if ((rc = split_command_args(inv, argc - first, argv + first)) != 0) {
		return rc;
	}
	if (inv->help) {
		fputs(inv->cmd->info && inv->cmd->info->help ? inv->cmd->info->help : usage_text, stdout);
		return 0;
	}
	if (inv->argv == NULL) {
		inv->argv = argv + first;
		return run_command(inv);
	}
	return run_command(inv);
}

int main(int argc, char **argv)
{
	struct invocation inv = { CONFIG_DEFAULT_PATH, false, false, NULL, 0, NULL, { NULL, 0, 0 } };
	int rc;

	log_init();
	/* Retry jitter: agents started together must not poll in step. */
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	rc = dispatch(&inv, argc, argv);
	if (inv.cmd != NULL && inv.cmd->nagios && rc == AERR_USAGE)
		rc = CHECK_UNKNOWN;	/* a Nagios plugin's usage error */
	if (inv.argv != NULL && inv.owned.n > 0)
		free(inv.argv);
	sl_free(&inv.owned);
	return exit_code_for(rc);	/* the one place an error becomes an exit code */
}
