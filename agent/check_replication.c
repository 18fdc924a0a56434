/*
 * check_replication.c: the `replication` check, which knows the role of the
 * server it looks at: this node's own (database.node_uri) when that is set,
 * else the one database.uri reached.
 *
 *   leader   the synchronous standbys (fewer than checks.sync_standbys_min,
 *            or none while synchronous_standby_names makes commits wait for
 *            one, is CRITICAL) and each replica's state and lag, in bytes
 *            not yet replayed and in seconds (pg_stat_replication);
 *   replica  whether its WAL receiver streams from the leader, whether replay
 *            is paused, and the replay lag in bytes and seconds.
 *
 * A server with no standbys and no synchronous_standby_names is simply "not
 * replicated": OK. The lag columns need pg_read_all_stats (the role has it).
 */
#include "check_probe.h"
#include "db.h"
#include "leader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * pg_stat_replication without the view (a fresh backend expands and plans
 * it in about 5 ms more): the WAL senders joined to their sessions. The
 * functions hide a sender's state from a role without pg_read_all_stats, as
 * the view does.
 */
static const char leader_sql[] =
	"SELECT coalesce(nullif(s.application_name, ''), s.client_addr::text, 'local'), w.state, w.sync_state, "
	"pg_wal_lsn_diff(pg_current_wal_lsn(), w.replay_lsn), coalesce(extract(epoch FROM w.replay_lag), 0), "
	"current_setting('synchronous_standby_names') "
	"FROM pg_stat_get_wal_senders() AS w JOIN pg_stat_get_activity(NULL) AS s ON s.pid = w.pid ORDER BY 1";

static const char sync_names_sql[] = "SELECT current_setting('synchronous_standby_names')";

/* Runs SQL on CONN; on failure sets R UNKNOWN with the server's reason and returns NULL. */
static PGresult *repl_query(PGconn *conn, struct check_result *r, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		char *e = db_error_text(res, conn);

		result_set(r, CHECK_UNKNOWN, "cannot read the replication state: %s", e);
		free(e);
		PQclear(res);
		return NULL;
	}
	return res;
}

static enum check_status lag_level(const struct check_thresholds *t, double bytes, double seconds)
{
	return worse(level_high(bytes, (double)t->replication_lag_warn_bytes, (double)t->replication_lag_crit_bytes),
		     level_high(seconds, t->replication_lag_warn_s, t->replication_lag_crit_s));
}

/* The leader's view: its standbys from pg_stat_replication. */
static void check_leader(PGconn *conn, const struct config *cfg, struct check_result *r)
{
	const struct check_thresholds *t = &cfg->checks;
	enum check_status st = CHECK_OK;
	PGresult *res = repl_query(conn, r, leader_sql), *names;
	int n, nsync = 0;
	double worst_bytes = 0, worst_s = 0;
	char sync_names[256];

	if (res == NULL || (names = repl_query(conn, r, sync_names_sql)) == NULL) {
		PQclear(res);
		return;
	}
	snprintf(sync_names, sizeof(sync_names), "%s", get_str(names, 0, 0));
	PQclear(names);
	n = PQntuples(res);
	sample_add(r, "replication_standby", "1 when the server the replication check looked at is a standby.", 0);
	for (int i = 0; i < n; i++) {
		const char *name = get_str(res, i, 0), *state = get_str(res, i, 1), *sync = get_str(res, i, 2);
		double bytes = get_num(res, i, 3), secs = get_num(res, i, 4);

		if (PQgetisnull(res, i, 1)) {
			PQclear(res);
			result_set(r, CHECK_UNKNOWN, "pg_stat_replication hides the standbys' state from %s; grant it "
				   "pg_read_all_stats", PQuser(conn));
			return;
		}
		nsync += strcmp(sync, "sync") == 0 || strcmp(sync, "quorum") == 0;
		sample_add1(r, "replication_lag_bytes", "WAL the leader wrote that a standby has not replayed yet.",
			    "replica", name, bytes);
		sample_add1(r, "replication_lag_seconds", "How far a standby's replay trails the leader (replay_lag).",
			    "replica", name, secs);
		st = worse(st, lag_level(t, bytes, secs));
		if (strcmp(state, "streaming") != 0)
			st = worse(st, CHECK_WARNING);
		worst_bytes = bytes > worst_bytes ? bytes : worst_bytes;
		worst_s = secs > worst_s ? secs : worst_s;
	}
	sample_add(r, "replication_replicas", "Standbys connected to the leader.", n);
	sample_add(r, "replication_sync_standbys", "Synchronous standbys: an acknowledged commit is on them too.",
		   nsync);
	if (nsync < t->sync_standbys_min) {
		result_set(r, CHECK_CRITICAL, "leader with %d standby(s), %d synchronous, fewer than %d "
			   "(checks.sync_standbys_min): an acknowledged checkpoint may be on this server only",
			   n, nsync, t->sync_standbys_min);
	} else if (nsync == 0 && sync_names[0] != '\0') {
		result_set(r, CHECK_CRITICAL, "leader: synchronous_standby_names is '%s' but no synchronous standby "
			   "is connected: commits wait", sync_names);
	} else if (n == 0) {
		result_set(r, CHECK_OK, "not replicated: no standby is connected and none is required");
	} else {
		char lag[32];

		format_bytes(lag, sizeof(lag), worst_bytes);
		result_set(r, st, "leader with %d standby(s), %d synchronous; the worst lag %s, %.1f s "
			   "(warn %lld B/%d s, crit %lld B/%d s)%s", n, nsync, lag, worst_s,
			   t->replication_lag_warn_bytes, t->replication_lag_warn_s, t->replication_lag_crit_bytes,
			   t->replication_lag_crit_s, st != CHECK_OK ? "; see the per-replica figures" : "");
	}
	PQclear(res);
}

/* A replica's view: its WAL receiver and replay, from leader_node_state_sql's row. */
static void check_replica(const PGresult *res, const struct config *cfg, struct check_result *r)
{
	const struct check_thresholds *t = &cfg->checks;
	const char *status = get_str(res, 0, 1);
	double bytes = get_num(res, 0, 2), secs = get_num(res, 0, 3);
	bool paused = strcmp(get_str(res, 0, 4), "t") == 0, streaming = strcmp(status, "streaming") == 0;
	enum check_status st = lag_level(t, bytes, secs);
	char lag[32];

	sample_add(r, "replication_standby", "1 when the server the replication check looked at is a standby.", 1);
	sample_add(r, "replication_streaming", "1 when this standby's WAL receiver streams from the leader.",
		   streaming);
	sample_add(r, "replication_replay_paused", "1 when WAL replay is paused on this standby.", paused);
	sample_add(r, "replication_replay_lag_bytes", "WAL this standby has not replayed yet.", bytes);
	sample_add(r, "replication_replay_lag_seconds", "How far this standby's replay trails the leader.", secs);
	format_bytes(lag, sizeof(lag), bytes);
	if (paused)
		st = worse(st, CHECK_WARNING);
	if (strcmp(status, "hidden") == 0)
		result_set(r, CHECK_UNKNOWN, "pg_stat_wal_receiver hides this standby's WAL receiver from the agent's "
			   "role; grant it pg_read_all_stats");
	else if (!streaming)
		result_set(r, CHECK_CRITICAL, "standby not streaming from the leader (WAL receiver %s); replay lag "
			   "%s, %.1f s", status, lag, secs);
	else
		result_set(r, st, "standby streaming from %s; replay lag %s, %.1f s%s (warn %lld B/%d s, crit "
			   "%lld B/%d s)", get_str(res, 0, 5), lag, secs, paused ? ", replay PAUSED" : "",
			   t->replication_lag_warn_bytes, t->replication_lag_warn_s, t->replication_lag_crit_bytes,
			   t->replication_lag_crit_s);
}

void check_replication(struct probe *p, struct check_result *r)
{
	PGconn *conn = p->conn, *own = NULL;
	PGresult *res;
	char *why = NULL;
	int rc;

	if (node_uri_set(p->cfg)) {
		own = node_connect_quiet(p->cfg, &rc, &why);
		if (own == NULL) {
			result_set(r, CHECK_CRITICAL, "this node's server (database.node_uri) does not answer: %s", why);
			free(why);
			return;
		}
		conn = own;
	}
	if (conn == NULL || db_lost(conn)) {
		result_set(r, CHECK_UNKNOWN, "not run: no connection to the database");
	} else if ((res = repl_query(conn, r, leader_node_state_sql)) != NULL) {
		if (strcmp(get_str(res, 0, 0), "t") == 0)
			check_replica(res, p->cfg, r);
		else
			check_leader(conn, p->cfg, r);
		PQclear(res);
	}
	if (own != NULL)
		PQfinish(own);
}
