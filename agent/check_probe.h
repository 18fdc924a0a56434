/*
 * check_probe.h: what the check files share, and nothing else includes: the
 * probe (one run's connection, config, report and state file), the result
 * and sample API, the levels, and the query helpers. The checks themselves
 * are in check_*.c, one file per concern; checks.c runs them in order.
 */
#ifndef CHECK_PROBE_H
#define CHECK_PROBE_H

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "check.h"
#include "config.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)

/*
 * The checks' queries that take no parameter: checks.c sends them together,
 * one round trip, before the checks run; each check takes its result with
 * probe_query (or runs the query itself when the batch failed).
 */
enum prefetch {
	PRE_RECOVERY, PRE_SLOTS, PRE_SESSIONS, PRE_IDLE, PRE_XACT, PRE_LOCKS, PRE_WRAPAROUND, PRE_WAL, PRE_N
};
extern const char *const prefetch_sql[PRE_N];	/* check_sessions.c */
extern const char wal_sql[];			/* check_wal.c */

struct probe {
	PGresult *pre[PRE_N];		/* prefetched results, taken by probe_query */
	const struct config *cfg;
	PGconn *conn;
	const struct check_conn *cc;
	struct check_report *rep;
	struct size_state state;	/* the state file, read once per run */
	char *state_path;		/* where it is (state_path_resolve), or NULL: not kept */
	char *state_note;		/* why it is not where service.state_file says, or NULL */
	char *state_error;		/* why it cannot be kept or read, or NULL */
	char *db_key;			/* "host:port/db", the state's keys start with it */
};

/* One check: fills R from the probe's connection (never NULL when it is called). */
typedef void (*check_fn)(struct probe *p, struct check_result *r);

/* ---- results and samples (check_result.c) ---- */

double mono_ms(void);
struct check_result *result_new(struct check_report *rep, const char *name);
/* Sets R's status and its one-line message (newlines and tabs become spaces). */
void result_set(struct check_result *r, enum check_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Marks R as not applicable here (status OK, so it does not change the run's status), saying why. */
void result_skip(struct check_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct check_sample *sample_add(struct check_result *r, const char *metric, const char *help, double v);
struct check_sample *sample_add1(struct check_result *r, const char *metric, const char *help,
				 const char *label, const char *value_label, double v);
/* The thresholds S is judged by, in S's own unit (seconds, bytes, ratio): they go into the perfdata. */
void sample_levels(struct check_sample *s, enum sample_levels kind, double warn, double crit);
void sample_add2(struct check_result *r, const char *metric, const char *help,
		 const char *l0, const char *v0, const char *l1, const char *v1, double v);

/* Higher is worse / lower is worse (free space). */
enum check_status level_high(double v, double warn, double crit);
enum check_status level_low(double v, double warn, double crit);
enum check_status worse(enum check_status a, enum check_status b);
/* Appends one finding ("; "-separated) to MSG and raises *STATUS to ST if worse. */
void finding_vadd(enum check_status *status, struct strbuf *msg, enum check_status st, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* "12.3 MiB" and so on. */
void format_bytes(char *buf, size_t n, double b);

/*
 * Rates (table growth, WAL) from the state file, which the CLI and the
 * service share: two samples per figure, KEY and KEY-next; the rate is
 * measured against the newest one at least RATE_MIN_AGE_S old, so neither a
 * check a second after the previous one nor the first check after an outage
 * (a sample days old, the whole gap then being the window) gives a false
 * alarm. The window is 5 to 10 minutes when checks are frequent.
 */
#define RATE_MIN_AGE_S 300
struct rate_sample {
	bool present;
	long long bytes, at;
};
struct rate_sample rate_sample_of(const struct size_state *st, const char *key);
/* The sample to measure against, or NULL when none is old enough. */
const struct rate_sample *rate_reference(const struct rate_sample *base, const struct rate_sample *next,
					 long long now);
/* Keeps the two samples: a new baseline when there is none, the next one once it is old enough. */
void rate_update(struct size_state *st, const char *base_key, const char *next_key, const struct rate_sample *base,
		 const struct rate_sample *next, long long value, long long now);

/* ---- queries ---- */

/*
 * Runs SQL with text parameters. On failure sets R to FAIL with "WHAT: the
 * server's error" and returns NULL.
 */
PGresult *run_query(struct probe *p, struct check_result *r, enum check_status fail, const char *what,
		    const char *sql, int nparams, const char *const *params);
/* The prefetched result of WHICH (the caller clears it), else run_query of its SQL. */
PGresult *probe_query(struct probe *p, struct check_result *r, enum prefetch which, enum check_status fail,
		      const char *what);
/* A cell as a number (0 when NULL or absent) or a string ("" then). */
double get_num(const PGresult *res, int row, int col);
const char *get_str(const PGresult *res, int row, int col);
/* "schema"."table", quoted for SQL (caller frees); NULL when a name cannot be quoted (logged). */
char *qualified(PGconn *conn, const char *schema, const char *table);

/* ---- the checks, by file ---- */

/* check_basic.c */
bool slots_exhausted(const char *why);
void check_connect(struct probe *p);
void check_query(struct probe *p, struct check_result *r);
void check_writable(struct probe *p, struct check_result *r);
/* check_schema.c */
void check_schema(struct probe *p, struct check_result *r);
/* check_sessions.c */
void check_pool(struct probe *p, struct check_result *r);
void check_idle_in_transaction(struct probe *p, struct check_result *r);
void check_long_transactions(struct probe *p, struct check_result *r);
void check_lock_waits(struct probe *p, struct check_result *r);
void check_wraparound(struct probe *p, struct check_result *r);
/* check_size.c */
void check_size(struct probe *p, struct check_result *r);
/* check_disk.c */
void check_disk(struct probe *p, struct check_result *r);
/* check_replication.c */
void check_replication(struct probe *p, struct check_result *r);
/* check_bloat.c */
void check_bloat(struct probe *p, struct check_result *r);
/* check_backup.c */
void check_backup(struct probe *p, struct check_result *r);
/* check_wal.c */
void check_wal(struct probe *p, struct check_result *r);

#endif
