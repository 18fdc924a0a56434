/*
 * leader.h: following the leader of a replicated cluster. With a multi-host
 * database.uri and target_session_attrs=read-write, libpq finds the leader
 * on every connect; this file adds what the agent needs around that: which
 * server a connection reached, whether it is a standby, waiting for a
 * writable leader, and this node's own server (database.node_uri).
 */
#ifndef LEADER_H
#define LEADER_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"

/* "host:port" of the server CONN reached (caller frees). */
char *leader_address(PGconn *conn);

/* The number of hosts in a connection string (1 for a single host). */
int leader_host_count(const char *conninfo);

/*
 * 1 when the server is a standby (in recovery), 0 when it is not, -1 when
 * the question failed (the error is logged).
 */
int leader_is_standby(PGconn *conn);

/*
 * Connects like db_connect, then waits while the server reached is a
 * standby: a migration must run on the leader. It reconnects every second
 * (a multi-host URI finds a new leader) for up to migrations.lock_timeout,
 * then gives up with AERR_LOCK and says what to do. NULL with *rc set on
 * failure.
 */
PGconn *leader_connect(const struct config *cfg, int *rc);

/*
 * One row about a server: in recovery (t/f), its WAL receiver's status
 * ("stopped" when there is none, "hidden" when the role lacks
 * pg_read_all_stats to see it), replay lag in bytes (WAL the leader has
 * reported that this server has not replayed) and in seconds, replay paused
 * (t/f), and the sender "host:port". On a leader: f, stopped, 0, 0, f, "".
 */
extern const char leader_node_state_sql[];

/* True when database.node_uri names a server of its own. */
bool node_uri_set(const struct config *cfg);

/* Opens a connection to this node's server (database.node_uri), quietly, like db_connect_quiet. */
PGconn *node_connect_quiet(const struct config *cfg, int *rc, char **why);

#endif
