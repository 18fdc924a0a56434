/*
 * http.h: the optional HTTP listener of `run` (service.http_listen), for load
 * balancers and Kubernetes, which speak HTTP rather than sd_notify. Off unless
 * the setting names an address.
 *
 *   GET /health      200 when this node's server answers
 *   GET /ready       200 when the database is writable and its schema is at the
 *                    target version with every index valid (the last cycle)
 *   GET /primary     200 when this node's server is the leader (also /leader,
 *                    /read-write); 503 otherwise
 *   GET /replica     200 when it is a standby streaming from the leader, and,
 *                    with ?lag=N (bytes, or kB/MB/GB/TB, or ms/s/min/h), no
 *                    further behind than N; 503 otherwise
 *   GET /metrics     the Prometheus text of the last check cycle
 *
 * HEAD and OPTIONS answer like GET without a body (HAProxy's httpchk uses
 * OPTIONS, as with Patroni). Other methods get 405, unknown paths 404, bad
 * or unknown query parameters and request bodies 400.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stdbool.h>

#include "check.h"
#include "config.h"

/* Checks a service.http_listen value; 0, or AERR_CONFIG after a "file:0:" message. */
int http_listen_check(const char *file, const char *listen);

/*
 * Starts the listener when cfg->http_listen is set; CFG must stay valid
 * until http_stop. Call with the signals blocked (its thread inherits the
 * mask). 0, or -1 after logging why.
 */
int http_start(const struct config *cfg);
/* Stops the listener (a reload starts it again); the last cycle's snapshot stays. */
void http_stop(void);
/* Stops it and forgets the snapshot: at exit. */
void http_shutdown(void);

/*
 * Hands the listener the result of a check cycle (the main thread, after
 * each cycle). FRESH_MS: how long it stays the current answer of /ready.
 */
void http_publish(const struct check_report *rep, long long fresh_ms);

#endif
