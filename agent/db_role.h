/*
 * db_role.h: acting as the owner of the checkpoint schema.
 *
 * With database.owner_role set, the agent logs in as a role of its own (the
 * provisioning makes it a member of pg_monitor) that does not inherit the
 * owner's rights: it becomes the owner with SET ROLE only where the owner's
 * rights are needed, and goes back with RESET ROLE. Without it, the login
 * role is the owner and nothing changes.
 */
#ifndef DB_ROLE_H
#define DB_ROLE_H

#include <libpq-fe.h>

#include "config.h"

/*
 * SET ROLE database.owner_role (nothing when it is empty). Returns 0, or -1
 * with *why set (caller frees): the login role is not a member of it, or it
 * does not exist.
 */
int db_become_owner(PGconn *conn, const struct config *cfg, char **why);

/* RESET ROLE after db_become_owner (nothing when owner_role is empty). 0 or -1 with *why. */
int db_leave_owner(PGconn *conn, const struct config *cfg, char **why);

/*
 * db_become_owner on CONN, logging why it failed: 0, or AERR_UNREACHABLE
 * when the connection was lost, AERR_CONFIG when the login role cannot
 * become the owner. The caller keeps CONN either way.
 */
int db_owner_or_code(PGconn *conn, const struct config *cfg);

/*
 * db_connect, then db_become_owner: the connection of the commands that
 * change or read the checkpoint schema (migrate, rollback, status, verify,
 * prune, usage; the TTL sweeps call db_become_owner themselves). NULL on failure, with the reason logged and *rc set:
 * AERR_UNREACHABLE or AERR_CONFIG as for db_connect, AERR_CONFIG also when the
 * login role cannot become the owner.
 */
PGconn *db_connect_owner(const struct config *cfg, int *rc);

/* The role the schema's statements run as: owner_role when set, else the login role. */
const char *db_owner_name(PGconn *conn, const struct config *cfg);

#endif
