/*
 * sweep.h: the TTL sweeps of `checkpoint-agent run` (the retention group of
 * the config). They run in a thread of their own, on a connection of their
 * own, so a sweep never delays the check cycle or the watchdog: the main
 * loop neither waits for a sweep nor shares a connection with it.
 */
#ifndef SWEEP_H
#define SWEEP_H

#include <stdbool.h>

/*
 * Starts the sweeper with its own copy of the config at CONFIG_PATH. It
 * idles while retention.ttl is 0. Returns 0, or -1 after logging.
 */
int sweep_start(const char *config_path, bool explicit_path);

/* The config was reloaded: the sweeper stops at its next batch, re-reads it, and sweeps at once if on. */
void sweep_reload(void);

/* Stops the sweeper: the running statement is cancelled (its batch rolls back) and the thread joined. */
void sweep_stop(void);

/* What the sweeper is doing, for the service's STATUS= line; NULL while retention is off. Caller frees. */
char *sweep_status(void);

#endif
