/*
 * agent.h: what every part of checkpoint-agent shares: the error convention
 * and the exit codes.
 *
 * The error convention (one, across the agent):
 *
 *   - A function that can fail returns an int: 0 on success, a negative
 *     enum agent_err on failure. Where its header says so, a value > 0 is an
 *     answer (a count; 1 for yes), never an error. A function that can fail
 *     only one way returns -1, which is AERR_FAIL.
 *   - A function that returns a pointer returns NULL on failure; where the
 *     failure has several kinds (db_connect), it also sets *rc to the
 *     agent_err.
 *   - The failure is logged once, where it is detected, in words that say
 *     what failed, why, and what to do. Callers propagate the code without
 *     logging it again. (A helper that returns the reason as a string, NULL
 *     on success, such as step.c's, leaves the logging to its one caller.)
 *   - bool is for questions (is it a standby? must we stop?), not for errors.
 *   - Results are not errors: `check` returns a Nagios status (enum
 *     check_status, 0..3) and `status --exit-code` a status_result (1
 *     pending, 2 drift); a command passes its result (>= 0) through as the
 *     exit status.
 *   - Only the dispatcher (main.c, with cli.c's exit_code_for) turns an
 *     agent_err into an exit code (enum agent_exit, README "Exit codes");
 *     no other file names EXIT_* or calls exit(). The one exception is
 *     running out of memory: util.c's x*alloc print why and exit 70, as git
 *     and OpenBSD's daemons do (the service tells systemd first).
 *     tests/t0001-lint.sh checks both rules. (A broken invariant of the
 *     agent's own, a bug rather than an error, is an abort(): check_result.c.)
 */
#ifndef AGENT_H
#define AGENT_H

#ifndef AGENT_VERSION
#define AGENT_VERSION "0.0.0"
#endif

/* What went wrong, for the exit code only: the message was logged where it happened. */
enum agent_err {
	AERR_OK = 0,
	AERR_FAIL = -1,		/* failed or refused: a step, a query, a write (70) */
	AERR_USAGE = -2,	/* a bad command line (64; `check`: 3) */
	AERR_CONFIG = -3,	/* the config file, password file or connection string is wrong (78) */
	AERR_UNREACHABLE = -4,	/* the database cannot be reached, or the connection was lost (69) */
	AERR_NOPERM = -5,	/* the role lacks a privilege a read needs (77) */
	AERR_SCHEMA = -6,	/* the schema differs from what it should be, or is at an unknown version (65) */
	AERR_LOCK = -7,		/* a lock, or a writable leader, was not had in time (75) */
	AERR_STOPPED = -8	/* stopped by SIGTERM or SIGINT; the running step was rolled back (128 + signal) */
};

/* The process's exit codes: only main.c and cli.c use these names. */
enum agent_exit {
	EXIT_OK = 0,
	EXIT_PENDING = 1,	/* status --exit-code: versions are pending */
	EXIT_DRIFT = 2,		/* status --exit-code: a recorded checksum differs */
	EXIT_USAGE = 64,	/* bad command line */
	EXIT_SCHEMA = 65,	/* the schema differs from what it should be */
	EXIT_UNREACHABLE = 69,	/* the database cannot be reached */
	EXIT_STEP = 70,		/* a migration or rollback step failed or was refused */
	EXIT_LOCK = 75,		/* the migration lock was not had in time */
	EXIT_NOPERM = 77,	/* status, verify: the role may not read what they need */
	EXIT_CONFIG = 78,	/* the config file is wrong */
	EXIT_STOPPED = 143	/* stopped by SIGTERM (128 + the signal; SIGINT gives 130) */
};

/*
 * The exit code for a command's return value RC: a result (>= 0) as it is,
 * an agent_err as the README's table says (AERR_STOPPED: 128 + the signal
 * that stopped the command). For the dispatcher; elsewhere only for a
 * message that names the exit code (prune's STATUS=, the service's last
 * words, a failed sweep's, which is prune's). (cli.c)
 */
int exit_code_for(int rc);

/* `status --exit-code`: the result, which is also the exit status. */
enum status_result {
	STATUS_CURRENT = 0,
	STATUS_PENDING = 1,
	STATUS_DRIFT = 2
};

/* Nagios plugin codes, the result of `check`. */
enum check_status {
	CHECK_OK = 0,
	CHECK_WARNING = 1,
	CHECK_CRITICAL = 2,
	CHECK_UNKNOWN = 3
};

#endif
