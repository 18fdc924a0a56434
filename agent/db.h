/*
 * db.h: connecting to PostgreSQL and running statements, with every error
 * reported once, in words, and never with the password.
 */
#ifndef DB_H
#define DB_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"

/*
 * Opens a connection as the configured role. The password, if any, comes from
 * database.password_file (or libpq's own passfile) and goes to libpq in
 * memory only. On failure returns NULL, logs libpq's reason, and sets *rc to
 * AERR_UNREACHABLE (or AERR_CONFIG when the password file is unusable).
 */
PGconn *db_connect(const struct config *cfg, int *rc);

/* Like db_connect, but quiet: the reason goes to *why (caller frees). */
PGconn *db_connect_quiet(const struct config *cfg, int *rc, char **why);

/*
 * Why the connection CONN failed, with the hint that fits libpq's reason, in
 * *WHY (caller frees; a second line starts "hint: "). Returns AERR_CONFIG
 * when the connection string is wrong (it cannot be parsed, names an
 * unknown parameter or a bad value), else AERR_UNREACHABLE. (db_hint.c)
 */
int db_explain_failure(const struct config *cfg, PGconn *conn, char **why);
/* The message for a connection string libpq refuses (MSG is libpq's reason), with where it came from (caller frees). */
char *db_conninfo_error(const struct config *cfg, const char *msg);

/* "role@host:port/db" of a connection string, without its password: for messages (caller frees). */
char *db_redacted_target(const char *conninfo);

/* Where the connection points, "role@host:port/db", for messages. */
char *db_describe(PGconn *conn);

/* Runs SQL that returns no rows. Returns 0, or -1 after logging the error. */
int db_exec(PGconn *conn, const char *sql);

/* Runs a query with text parameters; returns the result, or NULL after logging. */
PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params);

/*
 * A quoted identifier / literal (PQescapeIdentifier / PQescapeLiteral);
 * caller frees with PQfreemem. NULL, after logging, when libpq refuses (a
 * byte sequence invalid in the client encoding, or no memory).
 */
char *db_ident(PGconn *conn, const char *name);
char *db_literal(PGconn *conn, const char *value);

/* The server's error of a failed result, with its detail and hint, one string (caller frees). */
char *db_error_text(const PGresult *res, PGconn *conn);

/*
 * The agent_err of a read-only command (status, verify) whose db_query or
 * db_exec failed: AERR_NOPERM when the role lacked a privilege (SQLSTATE
 * 42501), else AERR_UNREACHABLE (the connection was lost, or the database
 * refused to answer).
 */
int db_read_fail_code(PGconn *conn);

/* True when the connection is gone (so the caller returns AERR_UNREACHABLE, not AERR_FAIL). */
bool db_lost(PGconn *conn);

#endif
