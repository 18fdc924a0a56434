/*
 * db_hint.c: what to do about a connection that failed. libpq says why; the
 * reason picks the hint: a wrong password points at the file it came from,
 * a missing one lists where the agent looked, a refused connection at the
 * server and its port, and so on. A connection string libpq cannot parse,
 * or one with an unknown parameter or a bad value, is a configuration error
 * (exit 78), not an unreachable database (69).
 *
 * libpq's own messages are matched in English: the agent never calls
 * setlocale, so libpq does not translate them. Messages the server sends
 * (a wrong password, a missing role) follow its lc_messages; in another
 * language they get the general hint.
 */
#include "db.h"
#include "agent.h"
#include "util.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where the connection was going, as libpq resolved it (defaults and PG* variables included). */
struct target {
	const char *host, *port, *user, *db;
};

/* Does libpq read S as a connection string (rather than a bare database name)? Its own rule. */
static bool is_conninfo(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0 || strchr(s, '=') != NULL;
}

/* The value of KEY in the configured connection string, or NULL. */
static char *conninfo_value(const char *conninfo, const char *key)
{
	PQconninfoOption *opts, *o;
	char *err = NULL, *v = NULL;

	if (!is_conninfo(conninfo))
		return NULL;
	opts = PQconninfoParse(conninfo, &err);
	if (opts == NULL) {
		PQfreemem(err);
		return NULL;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, key) == 0 && o->val != NULL && *o->val != '\0')
			v = xstrdup(o->val);
	PQconninfoFree(opts);
	return v;
}

/* libpq's password file: passfile in the URI, PGPASSFILE, or ~/.pgpass (caller frees). */
static char *passfile_path(const struct config *cfg)
{
	char *p = conninfo_value(cfg->uri, "passfile");
	const char *home = getenv("HOME"), *env = getenv("PGPASSFILE");

	if (p != NULL)
		return p;
	if (env != NULL && *env != '\0')
		return xstrdup(env);
	if (home == NULL || *home == '\0') {
		struct passwd *pw = getpwuid(getuid());

		home = pw ? pw->pw_dir : NULL;
	}
	return home ? xasprintf("%s/.pgpass", home) : xstrdup("~/.pgpass");
}

/* What is wrong with the password file at PATH, as libpq would see it, or NULL when it looks usable. */
static char *passfile_problem(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return xasprintf("%s does not exist (%s)", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return xasprintf("%s is not a plain file", path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return xasprintf("%s can be read by others, so libpq ignores it: chmod 0600 %s", path, path);
	if (access(path, R_OK) == -1)
		return xasprintf("%s cannot be read by this user (%s)", path, strerror(errno));
	return NULL;
}

/* "the password in X": where the password that libpq sent came from (caller frees). */
static char *password_source(const struct config *cfg)
{
	char *in_uri = conninfo_value(cfg->uri, "password"), *s, *pf;

	if (in_uri != NULL) {
		char *origin = config_uri_origin(cfg);

		explicit_bzero(in_uri, strlen(in_uri));
		free(in_uri);
		s = xasprintf("the password in the connection string (%s)", origin);
		free(origin);
		return s;
	}
	if (cfg->password_file[0] != '\0')
		return xasprintf("the first line of database.password_file (%s)", cfg->password_file);
	if (getenv("PGPASSWORD") != NULL)
		return xstrdup("PGPASSWORD");
	pf = passfile_path(cfg);
	s = xasprintf("the matching line of libpq's password file %s", pf);
	free(pf);
	return s;
}

static char *hint_wrong_password(const struct config *cfg, const struct target *t)
{
	char *src = password_source(cfg);
	char *s = xasprintf("the server refused the password of role %s: it came from %s. Put the role's current "
			    "password there, or set a new one (ALTER ROLE %s PASSWORD ..., as a superuser)",
			    t->user, src, t->user);

	free(src);
	return s;
}

static char *hint_no_password(const struct config *cfg, const struct target *t)
{
	char *pf = passfile_path(cfg), *problem = passfile_problem(pf), *s;
	char *where = problem ? xstrdup(problem) :
		xasprintf("%s has no line for %s:%s:%s:%s", pf, t->host, t->port, t->db, t->user);

	s = xasprintf("the server asks role %s for a password and the agent found none. It looked at "
		      "database.password_file (not set), PGPASSWORD (not set) and libpq's password file: %s. "
		      "Set database.password_file to a 0600 file whose first line is the password, or add the line "
		      "%s:%s:%s:%s:PASSWORD to %s (0600)", t->user, where, t->host, t->port, t->db, t->user, pf);
	free(where);
	free(problem);
	free(pf);
	return s;
}

static char *hint_refused(const struct config *cfg, const struct target *t)
{
	char *origin = config_uri_origin(cfg), *s;

	s = xasprintf("nothing accepts connections at %s port %s: start PostgreSQL (pg_lsclusters shows the "
		      "clusters and their ports), or correct the host and port (from %s)", t->host, t->port, origin);
	free(origin);
	return s;
}

static char *hint_socket(const struct config *cfg, const struct target *t)
{
	(void)cfg;
	return xasprintf("no PostgreSQL socket in %s for port %s: start the server, or point host at its "
			 "unix_socket_directories, or connect over TCP (host=localhost)", t->host, t->port);
}

static char *hint_host(const struct config *cfg, const struct target *t)
{
	char *origin = config_uri_origin(cfg), *s;

	s = xasprintf("the host name %s does not resolve: correct it (from %s) or add it to DNS or /etc/hosts",
		      t->host, origin);
	free(origin);
	return s;
}

static char *hint_timeout(const struct config *cfg, const struct target *t)
{
	return xasprintf("%s port %s did not answer within database.connect_timeout (%d s): the host is down, or "
			 "a firewall drops the packets", t->host, t->port, cfg->connect_timeout);
}

static char *hint_hba(const struct config *cfg, const struct target *t)
{
	(void)cfg;
	return xasprintf("the server's pg_hba.conf has no line for role %s, database %s from this client: add one "
			 "(with scram-sha-256) and reload PostgreSQL (SELECT pg_reload_conf())", t->user, t->db);
}

static char *hint_peer(const struct config *cfg, const struct target *t)
{
	(void)cfg;
	return xasprintf("the server authenticates socket connections of role %s by the operating system user "
			 "(peer/ident): run as that user, or connect over TCP with a password (host=localhost)", t->user);
}

static char *hint_role(const struct config *cfg, const struct target *t)
{
	char *origin = config_uri_origin(cfg), *s;

	s = xasprintf("role %s does not exist on this server: create it (CREATE ROLE %s LOGIN, or provision.sh), "
		      "or correct the user (from %s)", t->user, t->user, origin);
	free(origin);
	return s;
}

static char *hint_database(const struct config *cfg, const struct target *t)
{
	char *origin = config_uri_origin(cfg), *s;

	s = xasprintf("database %s does not exist on this server: create it (createdb -O %s %s, or provision.sh), "
		      "or correct the database name (from %s)", t->db, t->user, t->db, origin);
	free(origin);
	return s;
}

static char *hint_slots(const struct config *cfg, const struct target *t)
{
	(void)cfg;
	(void)t;
	return xstrdup("every connection slot is taken: find who holds them (pg_stat_activity), shrink the "
		       "pools, or raise max_connections");
}

static char *hint_starting(const struct config *cfg, const struct target *t)
{
	(void)cfg;
	(void)t;
	return xstrdup("the server is starting, stopping or recovering: try again in a moment (`run` waits "
		       "by itself, up to service.startup_timeout)");
}

static char *hint_ssl(const struct config *cfg, const struct target *t)
{
	(void)cfg;
	(void)t;
	return xstrdup("the connection's TLS settings do not match the server's: check sslmode (and sslrootcert) "
		       "in the connection string against the server's ssl settings");
}

static char *hint_general(const struct config *cfg, const struct target *t)
{
	char *origin = config_uri_origin(cfg), *s;

	(void)t;
	s = xasprintf("check that PostgreSQL runs, that the address, role and database (from %s) are right, and "
		      "that pg_hba.conf admits this client", origin);
	free(origin);
	return s;
}

/* libpq's reasons, most specific first. */
static const struct {
	const char *needle;
	char *(*hint)(const struct config *cfg, const struct target *t);
} reasons[] = {
	{ "password authentication failed", hint_wrong_password },
	{ "no password supplied", hint_no_password },
	{ "Peer authentication failed", hint_peer },
	{ "Ident authentication failed", hint_peer },
	{ "no pg_hba.conf entry", hint_hba },
	{ "pg_hba.conf rejects connection", hint_hba },
	{ "does not exist", NULL },	/* role or database: told apart below */
	{ "too many clients already", hint_slots },
	{ "remaining connection slots are reserved", hint_slots },
	{ "the database system is starting up", hint_starting },
	{ "the database system is shutting down", hint_starting },
	{ "the database system is in recovery mode", hint_starting },
	{ "could not translate host name", hint_host },
	{ "timeout expired", hint_timeout },
	{ "No such file or directory", hint_socket },
	{ "Connection refused", hint_refused },
	{ "does not support SSL", hint_ssl },
	{ "SSL error", hint_ssl },
	{ "certificate", hint_ssl },
};

/* Messages libpq gives before it connects anywhere: the connection string is wrong. */
static const char *const config_errors[] = {
	"invalid connection option", "invalid URI", "missing \"=\" after", "unterminated quoted string",
	"invalid percent-encoded token", "forbidden value %00", "invalid integer value", "invalid port number",
	"invalid sslmode value", "invalid gssencmode value", "invalid target_session_attrs value",
	"invalid load_balance_hosts value", "invalid channel_binding value", "invalid ssl_min_protocol_version",
	"invalid ssl_max_protocol_version", "invalid require_auth", "could not match", "extra key/value separator",
	"end of string reached when looking for matching",
};

static char *hint_for(const struct config *cfg, const struct target *t, const char *msg)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (strstr(msg, reasons[i].needle) == NULL)
			continue;
		if (reasons[i].hint != NULL)
			return reasons[i].hint(cfg, t);
		if (strstr(msg, "role \"") != NULL)
			return hint_role(cfg, t);
		if (strstr(msg, "database \"") != NULL)
			return hint_database(cfg, t);
	}
	return hint_general(cfg, t);
}

static bool is_config_error(const struct config *cfg, const char *msg)
{
	if (is_conninfo(cfg->uri)) {
		char *err = NULL;
		PQconninfoOption *opts = PQconninfoParse(cfg->uri, &err);

		PQfreemem(err);
		if (opts == NULL)
			return true;
		PQconninfoFree(opts);
	}
	for (size_t i = 0; i < sizeof(config_errors) / sizeof(config_errors[0]); i++)
		if (strstr(msg, config_errors[i]) != NULL)
			return true;
	return false;
}

static const char *or(const char *v, const char *fallback)
{
	return v != NULL && *v != '\0' ? v : fallback;
}

char *db_conninfo_error(const struct config *cfg, const char *msg)
{
	char *origin = config_uri_origin(cfg), *s;

	s = xasprintf("the connection string from %s is not one libpq accepts: %s\nhint: correct it; the parameters "
		      "are those of libpq (a URI postgresql://ROLE@HOST:PORT/DATABASE?KEY=VALUE, or KEY=VALUE pairs)",
		      origin, msg);
	free(origin);
	return s;
}

int db_explain_failure(const struct config *cfg, PGconn *conn, char **why)
{
	char *msg = xstrdup(PQerrorMessage(conn)), *target, *hint;
	size_t len = strlen(msg);
	struct target t;

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	if (is_config_error(cfg, msg)) {
		*why = db_conninfo_error(cfg, msg);
		free(msg);
		return AERR_CONFIG;
	}
	t.host = or(PQhost(conn), "localhost");
	t.port = or(PQport(conn), "5432");
	t.user = or(PQuser(conn), "?");
	t.db = or(PQdb(conn), "?");
	target = db_redacted_target(cfg->uri);
	hint = hint_for(cfg, &t, msg);
	*why = xasprintf("cannot connect to %s: %s\nhint: %s", target, msg, hint);
	free(hint);
	free(target);
	free(msg);
	return AERR_UNREACHABLE;
}
