/*
 * config.c: reads the libconfig file. Unknown settings are refused, so a typo
 * is never silently ignored; wrong types and values name the file and line.
 */
#include "config.h"
#include "agent.h"
#include "http.h"
#include "duration.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <libconfig.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->uri = xstrdup(CONFIG_DEFAULT_URI);
	c->uri_from = URI_DEFAULT;
	c->password_file = xstrdup("");
	c->connect_timeout = 5;
	c->statement_timeout = 5000;
	c->application_name = xstrdup("checkpoint-agent");
	c->owner_role = xstrdup("");
	c->node_uri = xstrdup("");
	c->sets = xcalloc(1, sizeof(char *));
	c->sets[0] = xstrdup("langgraph");
	c->nsets = 1;
	c->schema = xstrdup("public");
	c->agentos_schema = xstrdup("agentos");
	c->agent_schema = xstrdup("checkpoint_agent");
	c->lock_timeout = 60;
	c->pool_size = 20;
	c->pool_instances = 1;
	c->interval = 30;
	c->startup_timeout = 300;
	c->state_file = xstrdup(CONFIG_DEFAULT_STATE_FILE);
	c->metrics_file = xstrdup("");
	c->data_directory = xstrdup("");
	c->http_listen = xstrdup("");
	c->backup_info_file = xstrdup("");
	c->backup_drill_file = xstrdup("");
	c->backup_repo_path = xstrdup("");
	c->backup_stanza = xstrdup("");
	c->backup_interval_hours = 24;

	c->checks = (struct check_thresholds){
		.connect_warn_ms = 1000, .connect_crit_ms = 4000,
		.query_warn_ms = 200, .query_crit_ms = 1000,
		.write_warn_ms = 500, .write_crit_ms = 2000,
		.idle_in_xact_warn_s = 60, .idle_in_xact_crit_s = 300,
		.xact_age_warn_s = 300, .xact_age_crit_s = 1800,
		.lock_waits_warn = 1, .lock_waits_crit = 5,
		.disk_free_warn_pct = 20, .disk_free_crit_pct = 10,
		.inodes_free_warn_pct = 20, .inodes_free_crit_pct = 10,
		.pool_usage_warn_pct = 80, .pool_usage_crit_pct = 95,
		.wraparound_warn = 500000000LL, .wraparound_crit = 1000000000LL,
		.growth_warn_mb = 1024, .growth_crit_mb = 10240,
		.sync_standbys_min = 0,
		.replication_lag_warn_bytes = 16LL << 20, .replication_lag_crit_bytes = 256LL << 20,
		.replication_lag_warn_s = 10, .replication_lag_crit_s = 60,
		.dead_tuples_warn_pct = 30, .dead_tuples_crit_pct = 60, .dead_tuples_min = 10000,
		.wal_fill_warn_pct = 80, .wal_fill_crit_pct = 200,
		.vacuum_age_warn_s = 86400, .vacuum_age_crit_s = 7LL * 86400,
		.backup_age_warn_pct = 150, .backup_age_crit_pct = 300,
		.archive_age_warn_s = 900, .archive_age_crit_s = 3600,
		.drill_age_warn_days = 45,
	};
	c->retention_strategy = xstrdup("delete");
	c->retention_ttl = 0;
	c->retention_sweep_interval = 3600;
	c->retention_sweep_limit = 1000;
	c->retention_batch = 50;
}

void config_free(struct config *c)
{
	free(c->path);
	free(c->uri);
	free(c->password_file);
	free(c->application_name);
	free(c->owner_role);
	for (size_t i = 0; i < c->nsets; i++)
		free(c->sets[i]);
	free(c->sets);
	free(c->schema);
	free(c->agentos_schema);
	free(c->agent_schema);
	free(c->state_file);
	free(c->metrics_file);
	free(c->data_directory);
	free(c->node_uri);
	free(c->http_listen);
	free(c->retention_strategy);
	free(c->backup_info_file);
	free(c->backup_drill_file);
	free(c->backup_repo_path);
	free(c->backup_stanza);
	memset(c, 0, sizeof(*c));
}

bool config_has_set(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nsets; i++)
		if (strcmp(c->sets[i], name) == 0)
			return true;
	return false;
}

/* A setting's description, and where its value goes. */
/* K_DURATION: "30d" and the like, or a whole number of minutes (the hosted platform's unit); in seconds. */
enum kind { K_STRING, K_INT, K_INT64, K_SETS, K_DURATION };

struct option {
	const char *group;
	const char *name;
	enum kind kind;
	size_t offset;
	long long min, max;
};

#define OFF(field) offsetof(struct config, field)
#define CHK(field) (offsetof(struct config, checks) + offsetof(struct check_thresholds, field))

static const struct option options[] = {
	{ "database", "uri", K_STRING, OFF(uri), 0, 0 },
	{ "database", "password_file", K_STRING, OFF(password_file), 0, 0 },
	{ "database", "connect_timeout", K_INT, OFF(connect_timeout), 1, 3600 },
	{ "database", "statement_timeout", K_INT, OFF(statement_timeout), 10, 3600000 },
	{ "database", "application_name", K_STRING, OFF(application_name), 0, 0 },
	{ "database", "owner_role", K_STRING, OFF(owner_role), 0, 0 },
	{ "database", "node_uri", K_STRING, OFF(node_uri), 0, 0 },
	{ "migrations", "sets", K_SETS, OFF(sets), 0, 0 },
	{ "migrations", "schema", K_STRING, OFF(schema), 0, 0 },
	{ "migrations", "agentos_schema", K_STRING, OFF(agentos_schema), 0, 0 },
	{ "migrations", "agent_schema", K_STRING, OFF(agent_schema), 0, 0 },
	{ "migrations", "lock_timeout", K_INT, OFF(lock_timeout), 0, 86400 },
	{ "pool", "size", K_INT, OFF(pool_size), 1, 100000 },
	{ "pool", "instances", K_INT, OFF(pool_instances), 1, 100000 },
	{ "service", "interval", K_INT, OFF(interval), 1, 86400 },
	{ "service", "startup_timeout", K_INT, OFF(startup_timeout), 1, 86400 },
	{ "service", "state_file", K_STRING, OFF(state_file), 0, 0 },
	{ "service", "metrics_file", K_STRING, OFF(metrics_file), 0, 0 },
	{ "service", "data_directory", K_STRING, OFF(data_directory), 0, 0 },
	{ "service", "http_listen", K_STRING, OFF(http_listen), 0, 0 },
	{ "backup", "info_file", K_STRING, OFF(backup_info_file), 0, 0 },
	{ "backup", "drill_file", K_STRING, OFF(backup_drill_file), 0, 0 },
	{ "backup", "repo_path", K_STRING, OFF(backup_repo_path), 0, 0 },
	{ "backup", "stanza", K_STRING, OFF(backup_stanza), 0, 0 },
	{ "backup", "interval_hours", K_INT, OFF(backup_interval_hours), 1, 8760 },
	{ "checks", "connect_warn_ms", K_INT, CHK(connect_warn_ms), 1, 3600000 },
	{ "checks", "connect_crit_ms", K_INT, CHK(connect_crit_ms), 1, 3600000 },
	{ "checks", "query_warn_ms", K_INT, CHK(query_warn_ms), 1, 3600000 },
	{ "checks", "query_crit_ms", K_INT, CHK(query_crit_ms), 1, 3600000 },
	{ "checks", "write_warn_ms", K_INT, CHK(write_warn_ms), 1, 3600000 },
	{ "checks", "write_crit_ms", K_INT, CHK(write_crit_ms), 1, 3600000 },
	{ "checks", "idle_in_transaction_warn", K_INT, CHK(idle_in_xact_warn_s), 1, 864000 },
	{ "checks", "idle_in_transaction_crit", K_INT, CHK(idle_in_xact_crit_s), 1, 864000 },
	{ "checks", "transaction_age_warn", K_INT, CHK(xact_age_warn_s), 1, 864000 },
	{ "checks", "transaction_age_crit", K_INT, CHK(xact_age_crit_s), 1, 864000 },
	{ "checks", "lock_waits_warn", K_INT, CHK(lock_waits_warn), 1, 100000 },
	{ "checks", "lock_waits_crit", K_INT, CHK(lock_waits_crit), 1, 100000 },
	{ "checks", "disk_free_warn_pct", K_INT, CHK(disk_free_warn_pct), 0, 100 },
	{ "checks", "disk_free_crit_pct", K_INT, CHK(disk_free_crit_pct), 0, 100 },
	{ "checks", "inodes_free_warn_pct", K_INT, CHK(inodes_free_warn_pct), 0, 100 },
	{ "checks", "inodes_free_crit_pct", K_INT, CHK(inodes_free_crit_pct), 0, 100 },
	{ "checks", "pool_usage_warn_pct", K_INT, CHK(pool_usage_warn_pct), 1, 1000 },
	{ "checks", "pool_usage_crit_pct", K_INT, CHK(pool_usage_crit_pct), 1, 1000 },
	{ "checks", "wraparound_warn", K_INT64, CHK(wraparound_warn), 1, 2147483647LL },
	{ "checks", "wraparound_crit", K_INT64, CHK(wraparound_crit), 1, 2147483647LL },
	{ "checks", "growth_warn_mb", K_INT64, CHK(growth_warn_mb), 1, 1LL << 40 },
	{ "checks", "growth_crit_mb", K_INT64, CHK(growth_crit_mb), 1, 1LL << 40 },
	{ "checks", "sync_standbys_min", K_INT, CHK(sync_standbys_min), 0, 100 },
	{ "checks", "replication_lag_warn_bytes", K_INT64, CHK(replication_lag_warn_bytes), 0, 1LL << 50 },
	{ "checks", "replication_lag_crit_bytes", K_INT64, CHK(replication_lag_crit_bytes), 0, 1LL << 50 },
	{ "checks", "replication_lag_warn_s", K_INT, CHK(replication_lag_warn_s), 0, 864000 },
	{ "checks", "replication_lag_crit_s", K_INT, CHK(replication_lag_crit_s), 0, 864000 },
	{ "checks", "dead_tuples_warn_pct", K_INT, CHK(dead_tuples_warn_pct), 0, 100 },
	{ "checks", "dead_tuples_crit_pct", K_INT, CHK(dead_tuples_crit_pct), 0, 100 },
	{ "checks", "dead_tuples_min", K_INT64, CHK(dead_tuples_min), 0, 1LL << 40 },
	{ "checks", "wal_fill_warn_pct", K_INT, CHK(wal_fill_warn_pct), 1, 100000 },
	{ "checks", "wal_fill_crit_pct", K_INT, CHK(wal_fill_crit_pct), 1, 100000 },
	{ "checks", "vacuum_age_warn", K_DURATION, CHK(vacuum_age_warn_s), 1, 3650LL * 86400 },
	{ "checks", "vacuum_age_crit", K_DURATION, CHK(vacuum_age_crit_s), 1, 3650LL * 86400 },
	{ "retention", "strategy", K_STRING, OFF(retention_strategy), 0, 0 },
	{ "retention", "ttl", K_DURATION, OFF(retention_ttl), 0, 100LL * 365 * 86400 },
	{ "retention", "sweep_interval", K_DURATION, OFF(retention_sweep_interval), 1, 7LL * 86400 },
	{ "retention", "sweep_limit", K_INT, OFF(retention_sweep_limit), 1, 10000000 },
	{ "retention", "batch", K_INT, OFF(retention_batch), 1, 10000 },
	{ "checks", "backup_age_warn_pct", K_INT, CHK(backup_age_warn_pct), 1, 100000 },
	{ "checks", "backup_age_crit_pct", K_INT, CHK(backup_age_crit_pct), 1, 100000 },
	{ "checks", "archive_age_warn", K_INT, CHK(archive_age_warn_s), 1, 8640000 },
	{ "checks", "archive_age_crit", K_INT, CHK(archive_age_crit_s), 1, 8640000 },
	{ "checks", "drill_age_warn_days", K_INT, CHK(drill_age_warn_days), 1, 3650 },
};

static const char *const known_sets[] = { "langgraph", "langgraph-store", "agentos" };

static int config_fail(const char *file, const config_setting_t *s, const char *fmt, const char *what)
{
	log_error("%s:%d: %s: %s", file, s ? config_setting_source_line(s) : 0, what, fmt);
	return AERR_CONFIG;
}

static int read_sets(const char *file, const config_setting_t *s, struct config *c)
{
	int n = config_setting_length(s);

	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
		return config_fail(file, s, "must be a list of set names, e.g. [ \"langgraph\" ]", "sets");
	if (n == 0)
		return config_fail(file, s, "names no set; name at least one", "sets");
	for (size_t i = 0; i < c->nsets; i++)
		free(c->sets[i]);
	free(c->sets);
	c->sets = xcalloc((size_t)n, sizeof(char *));
	c->nsets = 0;
	for (int i = 0; i < n; i++) {
		const char *name = config_setting_get_string_elem(s, i);
		bool known = false;

		if (name == NULL)
			return config_fail(file, s, "every element must be a string", "sets");
		for (size_t k = 0; k < sizeof(known_sets) / sizeof(known_sets[0]); k++)
			known = known || strcmp(name, known_sets[k]) == 0;
		if (!known) {
			log_error("%s:%d: sets: unknown set \"%s\"; the sets are langgraph, langgraph-store and agentos",
				  file, config_setting_source_line(s), name);
			return AERR_CONFIG;
		}
		c->sets[c->nsets++] = xstrdup(name);
	}
	return 0;
}

/* A duration: "30d", "12h", "90m" (s, m, h, d, w), or a whole number of minutes; stored in seconds. */
static int read_duration(const char *file, const config_setting_t *s, const struct option *o, struct config *c)
{
	long long v;

	if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64) {
		v = config_setting_get_int64(s);
		v = v >= 0 && v <= o->max / 60 ? v * 60 : -1;
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *str = config_setting_get_string(s);

		if (str[0] == '\0' || strcmp(str, "0") == 0)
			v = 0;
		else if (duration_parse(str, &v) != 0)
			v = -1;
	} else {
		v = -1;
	}
	if (v < 0 || (v != 0 && v < o->min) || v > o->max || (v == 0 && o->min > 0)) {
		char lo[32], hi[32], *msg;

		duration_format(o->min, lo, sizeof(lo));
		duration_format(o->max, hi, sizeof(hi));
		msg = xasprintf("must be a duration such as \"30d\", \"12h\" or \"90m\" (s, m, h, d or w), or "
				"minutes as a whole number, from %s to %s%s", o->min ? lo : "0", hi,
				o->min ? "" : " (0 or \"\": off)");
		config_fail(file, s, msg, o->name);
		free(msg);
		return AERR_CONFIG;
	}
	*(long long *)((char *)c + o->offset) = v;
	return 0;
}

static int read_option(const char *file, const config_setting_t *s, const struct option *o, struct config *c)
{
	char *base = (char *)c;

	switch (o->kind) {
	case K_STRING: {
		const char *v = config_setting_get_string(s);
		char **dst = (char **)(base + o->offset);

		if (v == NULL)
			return config_fail(file, s, "must be a string in double quotes", o->name);
		free(*dst);
		*dst = xstrdup(v);
		return 0;
	}
	case K_INT:
	case K_INT64: {
		long long v;

		if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
			return config_fail(file, s, "must be a whole number", o->name);
		v = config_setting_get_int64(s);
		if (v < o->min || v > o->max) {
			char *msg = xasprintf("must be between %lld and %lld", o->min, o->max);
			config_fail(file, s, msg, o->name);
			free(msg);
			return AERR_CONFIG;
		}
		if (o->kind == K_INT)
			*(int *)(base + o->offset) = (int)v;
		else
			*(long long *)(base + o->offset) = v;
		return 0;
	}
	case K_SETS:
		return read_sets(file, s, c);
	case K_DURATION:
		return read_duration(file, s, o, c);
	}
	return AERR_CONFIG;
}

static const struct option *find_option(const char *group, const char *name)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (strcmp(options[i].group, group) == 0 && strcmp(options[i].name, name) == 0)
			return &options[i];
	return NULL;
}

static bool known_group(const char *name)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (strcmp(options[i].group, name) == 0)
			return true;
	return false;
}

/* Every setting in the file must be one we know. */
static int read_groups(const char *file, const config_setting_t *root, struct config *c)
{
	int ngroups = config_setting_length(root);

	for (int g = 0; g < ngroups; g++) {
		const config_setting_t *grp = config_setting_get_elem(root, (unsigned)g);
		const char *gname = config_setting_name(grp);

		if (gname == NULL || !known_group(gname) || !config_setting_is_group(grp)) {
			log_error("%s:%d: unknown setting \"%s\"; the groups are database, migrations, pool, service, backup, checks and retention",
				  file, config_setting_source_line(grp), gname ? gname : "?");
			return AERR_CONFIG;
		}
		for (int i = 0; i < config_setting_length(grp); i++) {
			const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
			const struct option *o = find_option(gname, config_setting_name(s));
			int rc;

			if (o == NULL) {
				log_error("%s:%d: unknown setting \"%s.%s\"; see agent.conf.example for the settings",
					  file, config_setting_source_line(s), gname, config_setting_name(s));
				return AERR_CONFIG;
			}
			if ((rc = read_option(file, s, o, c)) != 0)
				return rc;
		}
	}
	return 0;
}

const char *config_thresholds_unordered(const struct check_thresholds *t)
{
	const struct {
		bool unordered;
		const char *pair;
	} pairs[] = {
		{ t->connect_warn_ms > t->connect_crit_ms, "connect_warn_ms > connect_crit_ms" },
		{ t->query_warn_ms > t->query_crit_ms, "query_warn_ms > query_crit_ms" },
		{ t->write_warn_ms > t->write_crit_ms, "write_warn_ms > write_crit_ms" },
		{ t->idle_in_xact_warn_s > t->idle_in_xact_crit_s,
		  "idle_in_transaction_warn > idle_in_transaction_crit" },
		{ t->xact_age_warn_s > t->xact_age_crit_s, "transaction_age_warn > transaction_age_crit" },
		{ t->lock_waits_warn > t->lock_waits_crit, "lock_waits_warn > lock_waits_crit" },
		{ t->disk_free_warn_pct < t->disk_free_crit_pct, "disk_free_warn_pct < disk_free_crit_pct" },
		{ t->inodes_free_warn_pct < t->inodes_free_crit_pct, "inodes_free_warn_pct < inodes_free_crit_pct" },
		{ t->pool_usage_warn_pct > t->pool_usage_crit_pct, "pool_usage_warn_pct > pool_usage_crit_pct" },
		{ t->wraparound_warn > t->wraparound_crit, "wraparound_warn > wraparound_crit" },
		{ t->growth_warn_mb > t->growth_crit_mb, "growth_warn_mb > growth_crit_mb" },
		{ t->dead_tuples_warn_pct > t->dead_tuples_crit_pct, "dead_tuples_warn_pct > dead_tuples_crit_pct" },
		{ t->wal_fill_warn_pct > t->wal_fill_crit_pct, "wal_fill_warn_pct > wal_fill_crit_pct" },
		{ t->vacuum_age_warn_s > t->vacuum_age_crit_s, "vacuum_age_warn > vacuum_age_crit" },
		{ t->backup_age_warn_pct > t->backup_age_crit_pct, "backup_age_warn_pct > backup_age_crit_pct" },
		{ t->archive_age_warn_s > t->archive_age_crit_s, "archive_age_warn > archive_age_crit" },
		{ t->replication_lag_warn_bytes > t->replication_lag_crit_bytes,
		  "replication_lag_warn_bytes > replication_lag_crit_bytes" },
		{ t->replication_lag_warn_s > t->replication_lag_crit_s, "replication_lag_warn_s > replication_lag_crit_s" },
	};

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (pairs[i].unordered)
			return pairs[i].pair;
	return NULL;
}

int config_set_threshold(struct check_thresholds *t, const char *name, long long v, char **why)
{
	const struct option *o = find_option("checks", name);
	char *field;

	*why = NULL;
	if (o == NULL) {
		*why = xasprintf("checks.%s is not a setting", name);
		return -1;
	}
	if (v < o->min || v > o->max) {
		*why = xasprintf("%lld is out of range for checks.%s: from %lld to %lld", v, name, o->min, o->max);
		return -1;
	}
	field = (char *)t + (o->offset - offsetof(struct config, checks));
	if (o->kind == K_INT)
		*(int *)(void *)field = (int)v;
	else
		*(long long *)(void *)field = v;
	return 0;
}

/* Threshold pairs must be ordered: WARNING comes before CRITICAL. */
static int check_consistency(const char *file, struct config *c)
{
	const char *pair = config_thresholds_unordered(&c->checks);

	if (pair != NULL) {
		log_error("%s:0: checks: a warning threshold is beyond its critical one (%s); "
			  "warnings must come first (for free space: warn above crit)", file, pair);
		return AERR_CONFIG;
	}
	return 0;
}

/* VALUE as a quoted conninfo value: backslash and single quote escaped. */
static void add_conninfo(struct strbuf *sb, const char *key, const char *value)
{
	sb_printf(sb, "%s%s='", sb->len ? " " : "", key);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '\'')
			sb_add(sb, "\\");
		sb_addn(sb, p, 1);
	}
	sb_add(sb, "'");
}

char *config_uri_from_environment(void)
{
	static const struct {
		const char *key, *env, *fallback;
	} params[] = {
		{ "host", "PGHOST", "localhost" },
		{ "port", "PGPORT", "5432" },
		{ "user", "PGUSER", "ai_agent" },
		{ "dbname", "PGDATABASE", "langgraph_checkpoints" },
	};
	struct strbuf sb;
	bool any = false;

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const char *v = getenv(params[i].env);

		any = any || (v != NULL && *v != '\0');
	}
	if (!any)
		return xstrdup(CONFIG_DEFAULT_URI);
	sb_init(&sb);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const char *v = getenv(params[i].env);

		add_conninfo(&sb, params[i].key, v != NULL && *v != '\0' ? v : params[i].fallback);
	}
	return sb_detach(&sb);
}

char *config_uri_origin(const struct config *c)
{
	switch (c->uri_from) {
	case URI_FILE:
		return xasprintf("database.uri in %s", c->path ? c->path : "the config file");
	case URI_ENV:
		return xstrdup("CHECKPOINT_DB_URI");
	case URI_DEFAULT:
		break;
	}
	return xstrdup("the built-in default (no database.uri, no CHECKPOINT_DB_URI; PGHOST, PGPORT, PGUSER "
		       "and PGDATABASE count where set)");
}

/* The retention group's strategy: the hosted platform's "keep_latest", or prune's "keep-latest". */
static int check_retention(const char *file, struct config *c)
{
	if (strcmp(c->retention_strategy, "keep-latest") == 0) {
		free(c->retention_strategy);
		c->retention_strategy = xstrdup("keep_latest");
	}
	if (strcmp(c->retention_strategy, "delete") != 0 && strcmp(c->retention_strategy, "keep_latest") != 0) {
		log_error("%s:0: retention.strategy: unknown strategy \"%s\"; the strategies are \"delete\" and "
			  "\"keep_latest\"", file, c->retention_strategy);
		return AERR_CONFIG;
	}
	return 0;
}

int config_load(const char *path, bool explicit, struct config *c)
{
	config_t lc;
	const char *env;
	bool uri_in_file = false;
	int rc;

	config_defaults(c);
	env = getenv("CHECKPOINT_DB_URI");

	if (!explicit && access(path, F_OK) == -1 && errno == ENOENT) {
		log_debug("%s does not exist: using built-in defaults", path);
		rc = 0;
	} else {
		config_init(&lc);
		if (config_read_file(&lc, path) != CONFIG_TRUE) {
			if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
				log_error("%s:0: cannot read the config file: %s; check the path given with -c",
					  path, strerror(errno));
			else
				log_error("%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
					  config_error_line(&lc), config_error_text(&lc));
			config_destroy(&lc);
			return AERR_CONFIG;
		}
		rc = read_groups(path, config_root_setting(&lc), c);
		uri_in_file = config_lookup(&lc, "database.uri") != NULL;
		config_destroy(&lc);
		if (rc == 0)
			rc = check_consistency(path, c);
		if (rc == 0)
			rc = http_listen_check(path, c->http_listen);
		if (rc == 0)
			rc = check_retention(path, c);
		if (rc != 0)
			return rc;
		c->path = xstrdup(path);
	}
	if (env != NULL && *env != '\0') {
		free(c->uri);
		c->uri = xstrdup(env);
		c->uri_from = URI_ENV;
	} else if (uri_in_file) {
		c->uri_from = URI_FILE;
	} else {
		free(c->uri);
		c->uri = config_uri_from_environment();
		c->uri_from = URI_DEFAULT;
	}
	return rc;
}
