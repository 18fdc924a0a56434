/*
 * commands.h: the entry point of each command. Each parses its own options
 * (ARGV[0] is the command's name) and returns the process's exit code.
 */
#ifndef COMMANDS_H
#define COMMANDS_H

#include "config.h"

int cmd_migrate(const struct config *cfg, int argc, char **argv);
int cmd_status(const struct config *cfg, int argc, char **argv);
int cmd_verify(const struct config *cfg, int argc, char **argv);
int cmd_rollback(const struct config *cfg, int argc, char **argv);
int cmd_check(const struct config *cfg, int argc, char **argv);
int cmd_prune(const struct config *cfg, int argc, char **argv);
int cmd_usage(const struct config *cfg, int argc, char **argv);

/* The service; it re-reads CONFIG_PATH on SIGHUP. */
int cmd_run(struct config *cfg, const char *config_path, bool explicit_path, int argc, char **argv);

#endif
