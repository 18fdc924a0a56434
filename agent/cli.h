/*
 * cli.h: what the commands share on the command line: option values that
 * need the config (--set, --to), usage errors, per-command help, and
 * stopping a command-line migration cleanly on SIGINT or SIGTERM.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>

#include "config.h"
#include "step.h"

/* --set NAME: a set the config names. 0, or AERR_USAGE after logging. */
int cli_parse_set(const struct config *cfg, const char *name, const char **out);

/* --to V: a whole number from MIN. 0, or AERR_USAGE after logging. */
int cli_parse_version(const char *arg, int min, int *out);

/* --to V of SET: V within MIN..SET's latest version. 0, or AERR_USAGE naming the range. */
int cli_check_target(const char *command, const char *set, int to, int min);

/* "COMMAND: unknown or incomplete option 'ARG'" and where help is; returns AERR_USAGE. */
int cli_bad_option(const char *command, const char *arg);

/*
 * Makes SIGINT and SIGTERM ask a command-line migration to stop: the running
 * statement is cancelled and rolled back, the lock released, the command
 * returns AERR_STOPPED, and exit_code_for (agent.h) makes that 128 + the
 * signal. CTX's alive callback is set to notice it.
 */
void cli_stop_on_signals(struct step_ctx *ctx);
/* Records that SIG stopped the command, for exit_code_for(AERR_STOPPED) (128 + SIG); async-signal-safe. */
void cli_stopped_by(int sig);

#endif
