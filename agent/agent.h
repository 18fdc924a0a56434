/*
 * agent.h: what every part of checkpoint-agent shares: the exit codes.
 *
 * The exit codes follow sysexits(3) where one fits; status and check use the
 * small codes of their own conventions (see README.md, "Exit codes").
 */
#ifndef AGENT_H
#define AGENT_H

#ifndef AGENT_VERSION
#define AGENT_VERSION "0.0.0"
#endif

enum agent_exit {
	EXIT_OK = 0,
	EXIT_PENDING = 1,	/* status: versions are pending */
	EXIT_DRIFT = 2,		/* status: a recorded checksum differs */
	EXIT_USAGE = 64,	/* bad command line */
	EXIT_SCHEMA = 65,	/* the schema differs from what it should be */
	EXIT_UNREACHABLE = 69,	/* the database cannot be reached */
	EXIT_STEP = 70,		/* a migration or rollback step failed or was refused */
	EXIT_LOCK = 75,		/* the migration lock was not had in time */
	EXIT_NOPERM = 77,	/* status, verify: the role may not read what they need */
	EXIT_CONFIG = 78,	/* the config file is wrong */
	EXIT_STOPPED = 143	/* stopped by SIGTERM or SIGINT (128 + the signal): the step was rolled back */
};

/* Nagios plugin codes, used by `check`. */
enum check_status {
	CHECK_OK = 0,
	CHECK_WARNING = 1,
	CHECK_CRITICAL = 2,
	CHECK_UNKNOWN = 3
};

#endif
