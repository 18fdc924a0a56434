/*
 * main.c: the command line. `checkpoint-agent [-c FILE] [-v] COMMAND [options]`.
 * It reads the config, then hands over to the command (commands.h).
 */
#include "agent.h"
#include "commands.h"
#include "config.h"
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: checkpoint-agent [-c FILE] [-v] COMMAND [options]\n"
	"\n"
	"Applies and rolls back the LangGraph checkpoint schema, and checks the\n"
	"database's health.\n"
	"\n"
	"Commands:\n"
	"  migrate [--set S] [--to V] [--dry-run]      apply pending versions\n"
	"  status [--json]                             versions, pending, drift, quarantine\n"
	"  verify                                      compare the live schema with its version\n"
	"  rollback --to V [--set S] [--dry-run] [--purge]\n"
	"                                              run down files to version V (-1: all)\n"
	"  check [--format text|json|prometheus]       one health probe, Nagios-style\n"
	"  prune [--strategy delete|keep-latest] [--older-than DURATION | --thread ID...]\n"
	"        [--batch N] [--max-duration SECONDS] [--lock-timeout MS] [--dry-run]\n"
	"                                              remove old threads (retention)\n"
	"  usage [--json]                              where the space goes: tables, thread ages\n"
	"  run [--cycles N] [--interval-ms MS]         the systemd service (the two options are\n"
	"                                              for tests and benchmarks: stop after N\n"
	"                                              cycles; cycle every MS milliseconds)\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE   config file (default " CONFIG_DEFAULT_PATH ")\n"
	"  -v, --verbose       say more\n"
	"  -h, --help          this text\n"
	"  -V, --version       the agent's version\n"
	"\n"
	"The database is database.uri in the config, or CHECKPOINT_DB_URI.\n"
	"Exit codes: 0 ok, 64 usage, 65 schema differs, 69 database unreachable,\n"
	"70 step failed or refused, 75 lock timeout, 78 config error;\n"
	"status: 1 pending, 2 drift; check: 1 warning, 2 critical, 3 unknown;\n"
	"prune: 65 a schema version it does not know, 75 another pruner or rows left locked.\n";

static int usage_error(const char *what)
{
	if (what != NULL)
		log_error("%s", what);
	log_info("Try 'checkpoint-agent --help'.");	/* via log: the journal's prefix */
	return EXIT_USAGE;
}

/* The commands: each parses its own options; ARGV[0] is its name. */
static const struct command {
	const char *name;
	int (*fn)(const struct config *cfg, int argc, char **argv);
} commands[] = {
	{ "migrate", cmd_migrate },
	{ "status", cmd_status },
	{ "verify", cmd_verify },
	{ "rollback", cmd_rollback },
	{ "check", cmd_check },
	{ "prune", cmd_prune },
	{ "usage", cmd_usage },
	{ "run", NULL },		/* the service: it re-reads its config on SIGHUP */
};

#define COMMAND_NAMES "migrate, status, verify, rollback, check, prune, usage and run"

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const char *config_path = CONFIG_DEFAULT_PATH;
	bool explicit_path = false;
	const struct command *cmd;
	struct config cfg;
	int i, rc;

	log_init();
	/* The lock's polling jitter: agents started together must not poll in step. */
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("checkpoint-agent %s\n", AGENT_VERSION);
			return EXIT_OK;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			log_set_verbose(true);
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= argc)
				return usage_error("option -c needs a file name");
			config_path = argv[++i];
			explicit_path = true;
		} else {
			log_error("unknown option '%s'", a);
			return usage_error(NULL);
		}
	}
	if (i >= argc)
		return usage_error("no command given; the commands are " COMMAND_NAMES);

	if ((cmd = find_command(argv[i])) == NULL) {
		log_error("unknown command '%s'; the commands are " COMMAND_NAMES, argv[i]);
		return usage_error(NULL);
	}
	if ((rc = config_load(config_path, explicit_path, &cfg)) != 0) {
		config_free(&cfg);
		return rc;
	}

	argc -= i;
	argv += i;
	if (cmd->fn != NULL)
		rc = cmd->fn(&cfg, argc, argv);
	else
		rc = cmd_run(&cfg, config_path, explicit_path, argc, argv);
	config_free(&cfg);
	return rc;
}
