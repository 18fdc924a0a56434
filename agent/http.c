/*
 * http.c: the HTTP listener of `run` (see http.h for the endpoints).
 *
 * libmicrohttpd runs it in one thread of its own, so requests are answered
 * one at a time and the node's connection below needs no lock. What the main
 * loop learns (the last check cycle) reaches it through a snapshot under a
 * mutex. The node's own state (/health, /primary, /replica) is asked from
 * its server on a connection of the listener's own, at most once a second:
 * a flood of requests costs the database one small query a second.
 *
 * Bounded: at most HTTP_MAX_CONNECTIONS clients at once, 16 KiB of memory
 * each (longer request lines and headers are refused by libmicrohttpd), a
 * client idle for HTTP_IDLE_TIMEOUT_S seconds is dropped.
 */
#include "http.h"
#include "agent.h"
#include "db.h"
#include "leader.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HTTP_MAX_CONNECTIONS 64
#define HTTP_IDLE_TIMEOUT_S 5
#define HTTP_MEMORY_LIMIT (16 * 1024)
#define NODE_CACHE_MS 1000

/* ---- the listen address ---- */

/* Parses "ADDRESS:PORT" ("[v6]:PORT" for IPv6; numeric only) into SS. 0, or -1 with *why. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, char **why)
{
	struct addrinfo hints, *ai = NULL;
	const char *colon = strrchr(s, ':');
	char *host;
	int rc;

	if (colon == NULL || colon == s || colon[1] == '\0') {
		*why = xasprintf("\"%s\" is not ADDRESS:PORT, e.g. \"127.0.0.1:9188\" or \"[::1]:9188\"", s);
		return -1;
	}
	if (s[0] == '[' && colon[-1] == ']')
		host = xasprintf("%.*s", (int)(colon - s - 2), s + 1);
	else
		host = xasprintf("%.*s", (int)(colon - s), s);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	rc = getaddrinfo(host, colon + 1, &hints, &ai);
	free(host);
	if (rc != 0 || ai == NULL || strtol(colon + 1, NULL, 10) <= 0) {
		*why = xasprintf("\"%s\": the address must be an IP address and the port a number from 1 to 65535 "
				 "(%s)", s, rc != 0 ? gai_strerror(rc) : "port 0");
		if (ai != NULL)
			freeaddrinfo(ai);
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int http_listen_check(const char *file, const char *listen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char *why = NULL;

	if (listen[0] == '\0' || parse_listen(listen, &ss, &len, &why) == 0)
		return 0;
	log_error("%s:0: service.http_listen: %s", file, why);
	free(why);
	return AERR_CONFIG;
}

/* ---- what the main loop publishes ---- */

static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	bool have;
	bool ready;
	char *reason;		/* why not ready, or what ready means */
	char *metrics;		/* Prometheus text */
	long long until;	/* monotonic ms: after this the snapshot is stale */
} snap;

static const struct check_result *find_result(const struct check_report *rep, const char *name)
{
	for (size_t i = 0; i < rep->n; i++)
		if (strcmp(rep->results[i].name, name) == 0)
			return &rep->results[i];
	return NULL;
}

/* Ready: connected, writable (OK or WARNING) and the schema check OK. */
static bool report_ready(const struct check_report *rep, char **reason)
{
	const struct check_result *c = find_result(rep, "connect"), *w = find_result(rep, "writable"),
				  *s = find_result(rep, "schema");

	if (c == NULL || c->status == CHECK_CRITICAL || c->status == CHECK_UNKNOWN) {
		*reason = xasprintf("the database cannot be reached: %s", c ? c->message : "no connect check");
	} else if (w == NULL || w->status == CHECK_CRITICAL || w->status == CHECK_UNKNOWN) {
		*reason = xasprintf("the database is not writable: %s", w ? w->message : "no writable check");
	} else if (s == NULL || s->status != CHECK_OK) {
		*reason = xasprintf("the schema is not ready: %s", s ? s->message : "no schema check");
	} else {
		*reason = xasprintf("writable, schema at its target version, every index valid: %s", w->message);
		return true;
	}
	return false;
}

void http_publish(const struct check_report *rep, long long fresh_ms)
{
	struct strbuf sb;
	char *reason = NULL;
	bool ready = report_ready(rep, &reason);

	sb_init(&sb);
	report_prometheus(rep, &sb);
	pthread_mutex_lock(&snap_lock);
	free(snap.reason);
	free(snap.metrics);
	snap.have = true;
	snap.ready = ready;
	snap.reason = reason;
	snap.metrics = sb_detach(&sb);
	snap.until = now_ms() + fresh_ms;
	pthread_mutex_unlock(&snap_lock);
}

static void snapshot_free(void)
{
	pthread_mutex_lock(&snap_lock);
	free(snap.reason);
	free(snap.metrics);
	memset(&snap, 0, sizeof(snap));
	pthread_mutex_unlock(&snap_lock);
}

/* ---- this node's state, asked at most once a second ---- */

static const struct config *http_cfg;
static struct MHD_Daemon *daemon_handle;
static PGconn *node_conn;

static struct node_state {
	long long at;		/* monotonic ms of the answer; 0: never asked */
	bool up, standby, streaming, paused;
	double lag_bytes, lag_s;
	char *error;		/* why the server did not answer */
} node;

static void node_down(char *why)
{
	free(node.error);
	node.error = why;
	node.up = false;
	if (node_conn != NULL)
		PQfinish(node_conn);
	node_conn = NULL;
}

static void node_probe(void)
{
	PGresult *res;
	char *why = NULL;
	int rc;

	if (node.at != 0 && now_ms() - node.at < NODE_CACHE_MS)
		return;
	node.at = now_ms();
	if (node_conn == NULL || db_lost(node_conn)) {
		if (node_conn != NULL)
			PQfinish(node_conn);
		node_conn = node_connect_quiet(http_cfg, &rc, &why);
		if (node_conn == NULL) {
			node_down(why);
			return;
		}
	}
	res = PQexec(node_conn, leader_node_state_sql);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		node_down(db_error_text(res, node_conn));
		PQclear(res);
		return;
	}
	free(node.error);
	node.error = NULL;
	node.up = true;
	node.standby = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	node.streaming = strcmp(PQgetvalue(res, 0, 1), "streaming") == 0;
	node.lag_bytes = strtod(PQgetvalue(res, 0, 2), NULL);
	node.lag_s = strtod(PQgetvalue(res, 0, 3), NULL);
	node.paused = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
	PQclear(res);
}

/* The node's state as JSON, in the manner of Patroni's answers. */
static char *node_json(void)
{
	struct strbuf sb;

	sb_init(&sb);
	if (!node.up) {
		sb_add(&sb, "{\"state\":\"down\",\"role\":\"unknown\",\"error\":");
		sb_add_json_string(&sb, node.error ? node.error : "");
		sb_add(&sb, "}\n");
		return sb_detach(&sb);
	}
	sb_printf(&sb, "{\"state\":\"running\",\"role\":\"%s\"", node.standby ? "replica" : "primary");
	if (node.standby)
		sb_printf(&sb, ",\"replication_state\":\"%s\",\"replay_paused\":%s,\"replay_lag_bytes\":%.0f,"
			  "\"replay_lag_seconds\":%.3f", node.streaming ? "streaming" : "not streaming",
			  node.paused ? "true" : "false", node.lag_bytes, node.lag_s);
	sb_add(&sb, "}\n");
	return sb_detach(&sb);
}

/* ---- requests ---- */

/* "lag": bytes (a number, or with B, kB, MB, GB, TB) or time (ms, s, min, h). 0, or -1 when malformed. */
static int parse_lag(const char *v, double *bytes, double *seconds)
{
	static const struct { const char *unit; double factor; bool time; } units[] = {
		{ "", 1, false }, { "B", 1, false }, { "kB", 1024.0, false }, { "MB", 1048576.0, false },
		{ "GB", 1073741824.0, false }, { "TB", 1099511627776.0, false },
		{ "ms", 0.001, true }, { "s", 1, true }, { "min", 60, true }, { "h", 3600, true },
	};
	char *end;
	double n;

	*bytes = *seconds = -1;
	if (v == NULL || *v == '\0' || *v == '-' || *v == '+' || *v == ' ')
		return -1;
	errno = 0;
	n = strtod(v, &end);
	if (errno != 0 || end == v || !isfinite(n) || n < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].unit) != 0)
			continue;
		if (units[i].time)
			*seconds = n * units[i].factor;
		else
			*bytes = n * units[i].factor;
		return 0;
	}
	return -1;
}

/* Counts the query parameters other than ALLOWED (NULL: none allowed). */
struct args_seen {
	const char *allowed;
	const char *unknown;
};

static enum MHD_Result see_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct args_seen *a = cls;

	(void)kind;
	(void)value;
	if (a->unknown == NULL && (a->allowed == NULL || strcmp(key, a->allowed) != 0))
		a->unknown = key;
	return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, const char *body,
			     bool no_body)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;

	resp = MHD_create_response_from_buffer(no_body ? 0 : strlen(body), (void *)(no_body ? "" : body),
					       MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
	    (code == MHD_HTTP_METHOD_NOT_ALLOWED &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, OPTIONS") != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	rc = MHD_queue_response(c, code, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned code, const char *what, bool no_body)
{
	struct strbuf sb;
	enum MHD_Result rc;

	sb_init(&sb);
	sb_add(&sb, "{\"error\":");
	sb_add_json_string(&sb, what);
	sb_add(&sb, "}\n");
	rc = reply(c, code, "application/json", sb.buf, no_body);
	sb_free(&sb);
	return rc;
}

static enum MHD_Result answer_ready(struct MHD_Connection *c, bool no_body)
{
	struct strbuf sb;
	enum MHD_Result rc;
	bool ready;

	sb_init(&sb);
	pthread_mutex_lock(&snap_lock);
	if (!snap.have) {
		ready = false;
		sb_add(&sb, "{\"ready\":false,\"reason\":\"no check cycle has finished yet\"}\n");
	} else {
		bool stale = now_ms() > snap.until;

		ready = snap.ready && !stale;
		sb_printf(&sb, "{\"ready\":%s,\"reason\":", ready ? "true" : "false");
		sb_add_json_string(&sb, stale ? "the last check cycle is too old: the agent's main loop is stuck" :
				   snap.reason);
		sb_add(&sb, "}\n");
	}
	pthread_mutex_unlock(&snap_lock);
	rc = reply(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", sb.buf, no_body);
	sb_free(&sb);
	return rc;
}

static enum MHD_Result answer_metrics(struct MHD_Connection *c, bool no_body)
{
	enum MHD_Result rc;
	char *text = NULL;

	pthread_mutex_lock(&snap_lock);
	if (snap.have)
		text = xstrdup(snap.metrics);
	pthread_mutex_unlock(&snap_lock);
	if (text == NULL)
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
			     "no check cycle has finished yet\n", no_body);
	rc = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, no_body);
	free(text);
	return rc;
}

/* /health, /primary, /replica: this node's own server. */
static enum MHD_Result answer_node(struct MHD_Connection *c, const char *path, bool no_body)
{
	const char *lag = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "lag");
	double max_bytes = -1, max_s = -1;
	bool ok;
	char *body;
	enum MHD_Result rc;

	if (lag != NULL && parse_lag(lag, &max_bytes, &max_s) != 0)
		return reply_error(c, MHD_HTTP_BAD_REQUEST, "lag must be a number of bytes (with B, kB, MB, GB or TB) "
				   "or a time (with ms, s, min or h), e.g. lag=16MB or lag=10s", no_body);
	node_probe();
	if (strcmp(path, "/health") == 0)
		ok = node.up;
	else if (strcmp(path, "/replica") == 0)
		ok = node.up && node.standby && node.streaming &&
		     (max_bytes < 0 || node.lag_bytes <= max_bytes) && (max_s < 0 || node.lag_s <= max_s);
	else
		ok = node.up && !node.standby;
	body = node_json();
	rc = reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", body, no_body);
	free(body);
	return rc;
}

static const char *const node_paths[] = { "/health", "/primary", "/leader", "/read-write", "/replica" };

static enum MHD_Result route(struct MHD_Connection *c, const char *url, bool no_body)
{
	struct args_seen args = { NULL, NULL };
	bool node_path = false;

	for (size_t i = 0; i < sizeof(node_paths) / sizeof(node_paths[0]); i++)
		node_path = node_path || strcmp(url, node_paths[i]) == 0;
	if (!node_path && strcmp(url, "/ready") != 0 && strcmp(url, "/metrics") != 0)
		return reply_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint; the endpoints are /health, /ready, "
				   "/primary, /replica and /metrics", no_body);
	args.allowed = strcmp(url, "/replica") == 0 ? "lag" : NULL;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, see_arg, &args);
	if (args.unknown != NULL)
		return reply_error(c, MHD_HTTP_BAD_REQUEST, "unknown query parameter (only /replica takes one: lag)",
				   no_body);
	if (node_path)
		return answer_node(c, url, no_body);
	return strcmp(url, "/ready") == 0 ? answer_ready(c, no_body) : answer_metrics(c, no_body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	static char first, with_body;	/* markers: the request began; it came with a body */
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0, options = strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0;

	(void)cls;
	(void)version;
	(void)upload_data;
	if (*con_cls == NULL) {		/* the headers: wait for a body, if any */
		*con_cls = &first;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {	/* a body: read and dropped */
		*upload_data_size = 0;
		*con_cls = &with_body;
		return MHD_YES;
	}
	if (!head && !options && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET, HEAD and OPTIONS are served", false);
	if (*con_cls == &with_body)
		return reply_error(c, MHD_HTTP_BAD_REQUEST, "a request body is not accepted", options);
	return route(c, url, options);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
	char *msg;

	(void)cls;
	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	log_debug("http: %s", msg);
	free(msg);
}

/* ---- start and stop ---- */

int http_start(const struct config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char *why = NULL;
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

	if (cfg->http_listen[0] == '\0')
		return 0;
	if (parse_listen(cfg->http_listen, &ss, &len, &why) != 0) {
		log_error("service.http_listen: %s", why);
		free(why);
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	http_cfg = cfg;
	errno = 0;
	daemon_handle = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
					 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
					 MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
					 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
					 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_LIMIT,
					 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, NULL,
					 MHD_OPTION_END);
	if (daemon_handle == NULL) {
		log_error("cannot listen on %s (service.http_listen): %s; choose a free address and port",
			  cfg->http_listen, errno ? strerror(errno) : "libmicrohttpd refused to start");
		http_cfg = NULL;
		return -1;
	}
	log_notice("HTTP listener on %s: /health /ready /primary /replica /metrics", cfg->http_listen);
	return 0;
}

void http_stop(void)
{
	if (daemon_handle != NULL)
		MHD_stop_daemon(daemon_handle);
	daemon_handle = NULL;
	if (node_conn != NULL)
		PQfinish(node_conn);
	node_conn = NULL;
	free(node.error);
	memset(&node, 0, sizeof(node));
	http_cfg = NULL;
}

void http_shutdown(void)
{
	http_stop();
	snapshot_free();
}
