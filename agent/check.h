/*
 * check.h: the health checks, their report and its formats; shared by
 * `check` (check_cmd.c) and the service (service.c).
 *
 *   checks.c   runs the checks on one connection and fills a check_report;
 *              the checks themselves are check_*.c, one file per concern
 *              (check_probe.h is what they share)
 *   report.c   prints a report as text, JSON or Prometheus metrics
 *   state.c    the state file (the previous size sample of every table), and
 *              writing a file atomically
 */
#ifndef CHECK_H
#define CHECK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "agent.h"
#include "config.h"
#include "util.h"

/* Every Prometheus metric's name starts with this. */
#define METRIC_PREFIX "checkpoint_agent_"

/* Which way a sample's thresholds point, for the perfdata of the text format. */
enum sample_levels {
	LEVELS_NONE,			/* no threshold of its own */
	LEVELS_HIGH,			/* WARNING at or above warn, CRITICAL at or above crit */
	LEVELS_LOW			/* WARNING below warn, CRITICAL below crit (free space) */
};

/*
 * One measured value: a Prometheus sample, also listed in the JSON and, as
 * Nagios perfdata, in the text format's first line. A metric ending in
 * _seconds or _bytes gets the unit s or B there; one ending in _ratio runs
 * from 0 to 1.
 */
struct check_sample {
	const char *metric;		/* without METRIC_PREFIX, e.g. "connect_seconds" */
	const char *help;
	const char *label[2];		/* label names, NULL when unused */
	char *value_label[2];		/* their values (owned) */
	double value;
	enum sample_levels levels;	/* set by sample_levels: the check's thresholds, in the sample's unit */
	double warn, crit;
};

struct check_result {
	const char *name;		/* "connect", "query", ... */
	enum check_status status;
	bool skipped;			/* it does not apply here: status OK, the message says why */
	char *message;			/* one line, for a person */
	double seconds;			/* how long the check took */
	struct check_sample *samples;
	size_t nsamples, cap;
};

#define CHECK_MAX 16

struct check_report {
	struct check_result results[CHECK_MAX];
	size_t n;
	enum check_status worst;	/* CRITICAL > WARNING > UNKNOWN > OK */
	enum check_status gate_worst;	/* the same over the checks that gate readiness (not backup) */
	double duration_s;		/* of the whole run */
	long long finished_at;		/* Unix time, seconds */
};

/* How the checks reach the database. */
struct check_conn {
	PGconn *conn;			/* NULL: the connection failed */
	double connect_ms;		/* how long opening it took */
	const char *connect_error;	/* why it failed, when conn is NULL */
	int connect_rc;			/* db_connect_quiet's code then: AERR_UNREACHABLE or AERR_CONFIG */
	bool persistent;		/* the service's long-lived connection */
};

/*
 * Runs every check and fills REP (check_report_free releases it). Reads and
 * rewrites cfg->state_file for the size growth. Errors become UNKNOWN or
 * CRITICAL results; nothing here exits.
 */
void checks_run(const struct config *cfg, const struct check_conn *cc, struct check_report *rep);
/* The same, leaving out the checks whose SKIP[check_index(name)] is true (NULL: none). */
void checks_run_some(const struct config *cfg, const struct check_conn *cc, const bool *skip,
		     struct check_report *rep);
void check_report_free(struct check_report *rep);

/* The checks, in the order they run ("connect" first): how many, the Ith's name (NULL past the end), NAME's index or -1. */
size_t check_count(void);
const char *check_name(size_t i);
int check_index(const char *name);

/*
 * Called before each check. The service uses it to tell its watchdog
 * thread that the main loop still makes progress, and returns false to skip
 * the remaining checks (it is stopping). NULL: nobody listens.
 */
typedef bool (*check_tick_fn)(void);
void checks_set_tick(check_tick_fn fn);

const char *check_status_name(enum check_status st);
/* A result's state: its status's name, or "SKIPPED". */
const char *result_state_name(const struct check_result *r);
/* Severity order: CRITICAL 3, WARNING 2, UNKNOWN 1, OK 0. */
int check_severity(enum check_status st);

/* The formats. Each appends to OUT. */
void report_text(const struct check_report *rep, struct strbuf *out);
void report_json(const struct check_report *rep, struct strbuf *out);
void report_prometheus(const struct check_report *rep, struct strbuf *out);
/* One line for systemd's STATUS=: the overall status and the worst checks' messages. */
char *report_summary(const struct check_report *rep);

/* The state file: the previous size sample of each table, keyed by "host:port/db schema.table". */
struct size_sample {
	char *key;
	long long bytes;
	long long at;			/* Unix time, seconds */
};

struct size_state {
	struct size_sample *items;
	size_t n, cap;
	bool dirty;			/* changed since it was read: worth writing */
};

/*
 * Where the state file goes: CONFIGURED, its folder made (0750) when missing.
 * When that folder cannot be written and CONFIGURED is the built-in default
 * (CONFIG_DEFAULT_STATE_FILE), the user's own $XDG_STATE_HOME/checkpoint-agent/state
 * (~/.local/state/checkpoint-agent/state), its folders made (0700), and
 * *NOTE says so. Returns the path (caller frees), or NULL with *WHY set.
 */
char *state_path_resolve(const char *configured, char **note, char **why);

/* Reads PATH into ST. A missing file is an empty state. Returns 0, or -1 with *why set (caller frees). */
int state_read(const char *path, struct size_state *st, char **why);
/* Writes ST to PATH atomically. Returns 0, or -1 with *why set. */
int state_write(const char *path, const struct size_state *st, char **why);
const struct size_sample *state_find(const struct size_state *st, const char *key);
/* Sets KEY's sample, adding it when absent; marks ST dirty when that changes it. */
void state_put(struct size_state *st, const char *key, long long bytes, long long at);
void state_free(struct size_state *st);

/*
 * Writes DATA to PATH atomically: a temporary file in the same folder,
 * fsync, chmod MODE, rename, fsync of the folder. Returns 0, or -1 with *why
 * set (caller frees).
 */
int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode, char **why);

#endif
