/*
 * db_role.c: SET ROLE to the owner of the checkpoint schema, and back. One
 * place, so that every command that changes or reads the schema acts as
 * its owner the same way (db_role.h says why).
 */
#include "db_role.h"
#include "agent.h"
#include "db.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>

/* Runs SQL that returns no rows; -1 with *why set to the server's error. */
static int exec_role_statement(PGconn *conn, const char *sql, char **why)
{
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		*why = db_error_text(res, conn);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

int db_become_owner(PGconn *conn, const struct config *cfg, char **why)
{
	char *ident, *sql, *err = NULL;
	int rc;

	*why = NULL;
	if (cfg->owner_role[0] == '\0')
		return 0;
	if ((ident = db_ident(conn, cfg->owner_role)) == NULL) {
		*why = xasprintf("cannot quote the owner role's name \"%s\" (database.owner_role): %s; give a "
				 "name valid in the database's encoding", cfg->owner_role, PQerrorMessage(conn));
		return -1;
	}
	sql = xasprintf("SET ROLE %s", ident);
	rc = exec_role_statement(conn, sql, &err);
	if (rc != 0) {
		*why = xasprintf("as %s, cannot act as the owner role %s (database.owner_role): %s; the login "
				 "role must be a member of it (the provisioning grants it through %s_as_owner)",
				 PQuser(conn), cfg->owner_role, err, PQuser(conn));
		free(err);
	}
	free(sql);
	PQfreemem(ident);
	return rc;
}

int db_leave_owner(PGconn *conn, const struct config *cfg, char **why)
{
	*why = NULL;
	if (cfg->owner_role[0] == '\0')
		return 0;
	return exec_role_statement(conn, "RESET ROLE", why);
}

int db_owner_or_code(PGconn *conn, const struct config *cfg)
{
	char *why = NULL;
	int rc;

	if (db_become_owner(conn, cfg, &why) == 0)
		return 0;
	log_error("%s", why);
	free(why);
	rc = db_lost(conn) ? AERR_UNREACHABLE : AERR_CONFIG;
	return rc;
}

PGconn *db_connect_owner(const struct config *cfg, int *rc)
{
	PGconn *conn = db_connect(cfg, rc);

	if (conn == NULL)
		return NULL;
	if ((*rc = db_owner_or_code(conn, cfg)) != 0) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

const char *db_owner_name(PGconn *conn, const struct config *cfg)
{
	return cfg->owner_role[0] != '\0' ? cfg->owner_role : PQuser(conn);
}
