/*
 * commands.h: the entry point of each command. Each parses its own options
 * (ARGV[0] is the command's name) and returns 0, its result (> 0: check's
 * Nagios status, status --exit-code's status_result), or an agent_err;
 * main.c turns that into the exit code (exit_code_for, agent.h).
 *
 * A command's command_info tells main.c its options, so that the options
 * every command accepts (-c/--config, -v/--verbose, -h/--help) are found
 * after the command's name too, and its help text for `COMMAND --help` and
 * `help COMMAND`.
 */
#ifndef COMMANDS_H
#define COMMANDS_H

#include <getopt.h>

#include "config.h"

struct command_info {
	const char *shortopts;		/* the command's own, without the common ones */
	const struct option *longopts;	/* ends with a zeroed entry */
	const char *help;		/* what `COMMAND --help` prints */
};

int cmd_migrate(const struct config *cfg, int argc, char **argv);
int cmd_status(const struct config *cfg, int argc, char **argv);
int cmd_verify(const struct config *cfg, int argc, char **argv);
int cmd_rollback(const struct config *cfg, int argc, char **argv);
int cmd_check(const struct config *cfg, int argc, char **argv);
int cmd_prune(const struct config *cfg, int argc, char **argv);
int cmd_usage(const struct config *cfg, int argc, char **argv);

extern const struct command_info migrate_info, status_info, verify_info, rollback_info, check_info, run_info;
extern const struct command_info prune_info, usage_info;

/* The service; it re-reads CONFIG_PATH on SIGHUP. */
int cmd_run(struct config *cfg, const char *config_path, bool explicit_path, int argc, char **argv);

#endif
