/*
 * leader.c: which server a connection reached, standby or leader, and the
 * wait for a writable leader before a migration. Patroni decides who leads;
 * the agent only finds and follows it.
 */
#include "leader.h"
#include "agent.h"
#include "db.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* pg_stat_wal_receiver is this function's row where pid is set; the view costs a fresh backend more. */
const char leader_node_state_sql[] =
	"SELECT pg_is_in_recovery(), coalesce(w.status, CASE WHEN w.pid IS NULL THEN 'stopped' ELSE 'hidden' END), "
	"CASE WHEN pg_is_in_recovery() THEN coalesce(pg_wal_lsn_diff(GREATEST(pg_last_wal_receive_lsn(), "
	"w.latest_end_lsn), pg_last_wal_replay_lsn()), 0) ELSE 0 END, "
	"CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM "
	"pg_last_wal_replay_lsn() THEN 0 ELSE coalesce(extract(epoch FROM now() - "
	"pg_last_xact_replay_timestamp()), 0) END, "
	"CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, "
	"coalesce(w.sender_host || ':' || w.sender_port, '') "
	"FROM (SELECT 1) AS one LEFT JOIN "
	"(SELECT * FROM pg_stat_get_wal_receiver() WHERE pid IS NOT NULL) AS w ON true";

char *leader_address(PGconn *conn)
{
	const char *host = PQhost(conn);

	return xasprintf("%s:%s", host && *host ? host : "localhost", PQport(conn));
}

int leader_host_count(const char *conninfo)
{
	PQconninfoOption *opts, *o;
	char *err = NULL;
	int n = 1;

	opts = PQconninfoParse(conninfo, &err);
	if (opts == NULL) {
		PQfreemem(err);
		return 1;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if ((strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0) && o->val != NULL) {
			int hosts = 1;

			for (const char *c = o->val; *c; c++)
				hosts += *c == ',';
			n = hosts > n ? hosts : n;
		}
	}
	PQconninfoFree(opts);
	return n;
}

int leader_is_standby(PGconn *conn)
{
	PGresult *res = db_query(conn, "SELECT pg_is_in_recovery()", 0, NULL);
	int standby;

	if (res == NULL)
		return -1;
	standby = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return standby;
}

PGconn *leader_connect(const struct config *cfg, int *rc)
{
	long long deadline = now_ms() + 1000LL * cfg->lock_timeout;
	bool waiting = false;

	for (;;) {
		char *why = NULL, *where;
		PGconn *conn;
		int standby;

		if (!waiting) {
			if ((conn = db_connect(cfg, rc)) == NULL)
				return NULL;
		} else if ((conn = db_connect_quiet(cfg, rc, &why)) == NULL) {
			/* Once waiting, a failed connect (no leader yet, mid-failover) is part of the wait. */
			if (*rc != AERR_UNREACHABLE || now_ms() >= deadline) {
				log_error("%s", why);
				free(why);
				return NULL;
			}
			free(why);
			sleep_ms(1000);
			continue;
		}
		standby = leader_is_standby(conn);
		where = leader_address(conn);
		if (standby == 0) {
			if (waiting)
				log_notice("%s is writable now: migrating there", where);
			free(where);
			return conn;
		}
		*rc = standby < 0 ? (db_lost(conn) ? AERR_UNREACHABLE : AERR_FAIL) : AERR_LOCK;
		PQfinish(conn);
		if (standby < 0 || now_ms() >= deadline) {
			if (standby > 0)
				log_error("%s is a standby (read-only), and no writable leader was found within %d s "
					  "(migrations.lock_timeout): migrations run only on the leader. Point database.uri "
					  "at the cluster (every node, with target_session_attrs=read-write), or run migrate "
					  "on the leader (`patronictl list` names it)", where, cfg->lock_timeout);
			free(where);
			return NULL;
		}
		if (!waiting)
			log_warning("%s is a standby (read-only); migrations run only on the leader: waiting up to "
				    "%d s (migrations.lock_timeout) for a writable one", where, cfg->lock_timeout);
		waiting = true;
		free(where);
		sleep_ms(1000);
	}
}

bool node_uri_set(const struct config *cfg)
{
	return cfg->node_uri != NULL && cfg->node_uri[0] != '\0';
}

PGconn *node_connect_quiet(const struct config *cfg, int *rc, char **why)
{
	struct config node = *cfg;	/* the same settings, another server; nothing here is freed */

	if (node_uri_set(cfg))
		node.uri = cfg->node_uri;
	return db_connect_quiet(&node, rc, why);
}
