/*
 * db.c: the one place that builds connection parameters. The password file
 * is checked like libpq checks .pgpass: a file that others can read is
 * refused, since the password would no longer be a secret.
 */
#include "db.h"
#include "agent.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Reads the first line of FILE into *pw. Returns 0 or AERR_CONFIG, with *why set. */
static int read_password_file(const char *file, char **pw, char **why)
{
	struct stat st;
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	*pw = NULL;
	f = fopen(file, "r");
	if (f == NULL) {
		*why = xasprintf("cannot open the password file %s: %s; check database.password_file "
				 "and that this user may read it", file, strerror(errno));
		return AERR_CONFIG;
	}
	if (fstat(fileno(f), &st) == -1 || (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP))) {
		fclose(f);
		*why = xasprintf("the password file %s can be read or written by others; "
				 "make it 0600 or 0640 (chmod 0640 %s)", file, file);
		return AERR_CONFIG;
	}
	n = getline(&line, &cap, f);
	fclose(f);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n <= 0) {
		free(line);
		*why = xasprintf("the password file %s is empty (its first line is the password)", file);
		return AERR_CONFIG;
	}
	*pw = line;
	return 0;
}

static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* The value of KEY in OPTS when set and not empty, else NULL. */
static const char *conninfo_value(const PQconninfoOption *opts, const char *key)
{
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, key) == 0)
			return o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
	return NULL;
}

/*
 * The connection's parameters: the user's connection string first and
 * winning, then the agent's own only where the string does not set them
 * (connect_timeout, application_name). The agent's statement_timeout goes in
 * front of the string's options (or PGOPTIONS), so a -c there wins over it.
 */
struct conn_params {
	const char *keys[8], *vals[8];
	char timeout[16];
	char *options;
};

static int conn_params_build(const struct config *cfg, const PQconninfoOption *user, const char *pw,
			     struct conn_params *cp)
{
	const char *theirs = conninfo_value(user, "options"), *env = getenv("PGOPTIONS");
	int k = 0;

	if (theirs == NULL && env != NULL && *env != '\0')
		theirs = env;
	snprintf(cp->timeout, sizeof(cp->timeout), "%d", cfg->connect_timeout);
	cp->options = xasprintf("-c statement_timeout=%d%s%s", cfg->statement_timeout, theirs ? " " : "",
				theirs ? theirs : "");
	cp->keys[k] = "dbname", cp->vals[k++] = cfg->uri;
	if (conninfo_value(user, "connect_timeout") == NULL)
		cp->keys[k] = "connect_timeout", cp->vals[k++] = cp->timeout;
	if (conninfo_value(user, "application_name") == NULL)
		cp->keys[k] = "application_name", cp->vals[k++] = cfg->application_name;
	cp->keys[k] = "options", cp->vals[k++] = cp->options;
	if (pw != NULL)
		cp->keys[k] = "password", cp->vals[k++] = pw;
	cp->keys[k] = NULL, cp->vals[k] = NULL;
	return k;
}

PGconn *db_connect_quiet(const struct config *cfg, int *rc, char **why)
{
	PQconninfoOption *user;
	struct conn_params cp;
	char *pw = NULL, *err = NULL;
	PGconn *conn;

	*why = NULL;
	user = PQconninfoParse(cfg->uri, &err);
	if (user == NULL) {
		*why = db_conninfo_error(cfg, err ? err : "out of memory");
		PQfreemem(err);
		*rc = AERR_CONFIG;
		return NULL;
	}
	if (cfg->password_file[0] != '\0' && (*rc = read_password_file(cfg->password_file, &pw, why)) != 0) {
		PQconninfoFree(user);
		return NULL;
	}
	conn_params_build(cfg, user, pw, &cp);
	conn = PQconnectdbParams(cp.keys, cp.vals, 1);
	wipe_free(pw);
	free(cp.options);
	PQconninfoFree(user);
	if (conn == NULL) {
		*why = xstrdup("libpq could not allocate a connection");
		*rc = AERR_UNREACHABLE;
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		*rc = db_explain_failure(cfg, conn, why);
		PQfinish(conn);
		return NULL;
	}
	*rc = 0;
	return conn;
}

PGconn *db_connect(const struct config *cfg, int *rc)
{
	char *why = NULL;
	PGconn *conn = db_connect_quiet(cfg, rc, &why);

	if (conn == NULL) {
		log_error("%s", why);
		free(why);
	}
	return conn;
}

char *db_redacted_target(const char *conninfo)
{
	PQconninfoOption *opts, *o;
	const char *user = "", *host = "", *port = "", *dbname = "";
	char *err = NULL, *s;

	opts = PQconninfoParse(conninfo, &err);
	if (opts == NULL) {
		PQfreemem(err);
		return xstrdup("(a connection string libpq cannot parse)");
	}
	for (o = opts; o->keyword != NULL; o++) {
		const char *v = o->val ? o->val : "";

		if (strcmp(o->keyword, "user") == 0)
			user = v;
		else if (strcmp(o->keyword, "host") == 0)
			host = v;
		else if (strcmp(o->keyword, "port") == 0)
			port = v;
		else if (strcmp(o->keyword, "dbname") == 0)
			dbname = v;
	}
	s = xasprintf("%s%s%s%s%s/%s", user, *user ? "@" : "", *host ? host : "localhost",
		      *port ? ":" : "", port, dbname);
	PQconninfoFree(opts);
	return s;
}

char *db_describe(PGconn *conn)
{
	const char *host = PQhost(conn);

	return xasprintf("%s@%s:%s/%s", PQuser(conn), host && *host ? host : "localhost",
			 PQport(conn), PQdb(conn));
}

char *db_error_text(const PGresult *res, PGconn *conn)
{
	struct strbuf sb;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;

	sb_init(&sb);
	if (msg != NULL) {
		sb_add(&sb, msg);
	} else {
		const char *e = PQerrorMessage(conn);
		size_t n = strlen(e);

		while (n > 0 && e[n - 1] == '\n')
			n--;
		sb_addn(&sb, e, n);
	}
	if (detail != NULL)
		sb_printf(&sb, " (%s)", detail);
	if (hint != NULL)
		sb_printf(&sb, "; hint: %s", hint);
	return sb_detach(&sb);
}

static char last_sqlstate[6];

static void remember_sqlstate(const PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	snprintf(last_sqlstate, sizeof(last_sqlstate), "%s", st ? st : "");
}

int db_read_fail_code(PGconn *conn)
{
	if (db_lost(conn))
		return AERR_UNREACHABLE;
	if (strcmp(last_sqlstate, "42501") == 0)
		return AERR_NOPERM;
	return AERR_UNREACHABLE;
}

int db_exec(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
		char *e = db_error_text(res, conn);

		remember_sqlstate(res);
		log_error("the database refused a statement: %s", e);
		free(e);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		char *e = db_error_text(res, conn);

		remember_sqlstate(res);
		log_error("a query failed: %s", e);
		free(e);
		PQclear(res);
		return NULL;
	}
	return res;
}

char *db_ident(PGconn *conn, const char *name)
{
	char *s = PQescapeIdentifier(conn, name, strlen(name));

	if (s == NULL)
		log_error("cannot quote the identifier \"%s\": %s", name, PQerrorMessage(conn));
	return s;
}

char *db_literal(PGconn *conn, const char *value)
{
	char *s = PQescapeLiteral(conn, value, strlen(value));

	if (s == NULL)
		log_error("cannot quote a literal: %s", PQerrorMessage(conn));
	return s;
}

bool db_lost(PGconn *conn)
{
	return conn == NULL || PQstatus(conn) != CONNECTION_OK;
}
