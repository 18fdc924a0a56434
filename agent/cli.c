/*
 * cli.c: option values that need the config, usage errors, stopping a
 * command-line migration on a signal, and the one mapping of an agent_err
 * to the process's exit code (exit_code_for, for main.c).
 */
#include "cli.h"
#include "agent.h"
#include "log.h"
#include "sets.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_set(const struct config *cfg, const char *name, const char **out)
{
	if (set_find(name) == NULL || set_find(name) == &agent_set) {
		log_error("--set %s: unknown set; the sets are langgraph, langgraph-store and agentos", name);
		return AERR_USAGE;
	}
	if (!config_has_set(cfg, name)) {
		log_error("--set %s: the set is not in migrations.sets of the config; add it there first", name);
		return AERR_USAGE;
	}
	*out = name;
	return 0;
}

int cli_parse_version(const char *arg, int min, int *out)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*arg == '\0' || *end != '\0' || v < min || v > 100000) {
		log_error("--to %s: not a version number (a whole number from %d)", arg, min);
		return AERR_USAGE;
	}
	*out = (int)v;
	return 0;
}

int cli_check_target(const char *command, const char *set_name, int to, int min)
{
	const struct set_def *set = set_find(set_name);
	int latest = set ? set_latest(set) : -1;

	if (set != NULL && to > latest) {
		log_error("%s --to %d: %s has versions %d to %d; choose one of them", command, to, set_name, min,
			  latest);
		return AERR_USAGE;
	}
	return 0;
}

int cli_bad_option(const char *command, const char *arg)
{
	log_error("%s: unknown or incomplete option '%s'", command, arg ? arg : "?");
	log_info("Try 'checkpoint-agent %s --help'.", command);	/* via log: the journal's prefix */
	return AERR_USAGE;
}

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

void cli_stopped_by(int sig)
{
	stop_signal = sig;
}

static bool cli_alive(void *arg)
{
	(void)arg;
	return stop_signal == 0;
}

void cli_stop_on_signals(struct step_ctx *ctx)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ctx->alive = cli_alive;
}

int exit_code_for(int rc)
{
	switch (rc) {
	case AERR_USAGE:
		return EXIT_USAGE;
	case AERR_CONFIG:
		return EXIT_CONFIG;
	case AERR_UNREACHABLE:
		return EXIT_UNREACHABLE;
	case AERR_NOPERM:
		return EXIT_NOPERM;
	case AERR_SCHEMA:
		return EXIT_SCHEMA;
	case AERR_LOCK:
		return EXIT_LOCK;
	case AERR_STOPPED:
		return stop_signal != 0 ? 128 + stop_signal : EXIT_STOPPED;
	default:
		return rc >= 0 ? rc : EXIT_STEP;	/* a result as it is; AERR_FAIL */
	}
}
