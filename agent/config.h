/*
 * config.h: the agent's settings, from a libconfig file and the environment.
 * Every setting has a default; agent.conf.example documents each one.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_DEFAULT_PATH "/etc/checkpoint-agent/agent.conf"
/* Where the database is when nothing says otherwise: see config_uri_from_environment. */
#define CONFIG_DEFAULT_URI "postgresql://ai_agent@localhost:5432/langgraph_checkpoints"
/* The state file's default; when it is not writable, check falls back to the user's own (state.c). */
#define CONFIG_DEFAULT_STATE_FILE "/var/lib/checkpoint-agent/state"

/* Where database.uri came from, for messages. */
enum uri_origin {
	URI_DEFAULT,		/* built in (with PGHOST, PGPORT, PGUSER, PGDATABASE when set) */
	URI_FILE,		/* database.uri in the config file */
	URI_ENV			/* CHECKPOINT_DB_URI */
};

/* Thresholds of the health checks: WARNING at *_warn, CRITICAL at *_crit. */
struct check_thresholds {
	int connect_warn_ms, connect_crit_ms;
	int query_warn_ms, query_crit_ms;
	int write_warn_ms, write_crit_ms;	/* probe INSERTs + heartbeat commit */
	int idle_in_xact_warn_s, idle_in_xact_crit_s;
	int xact_age_warn_s, xact_age_crit_s;
	int lock_waits_warn, lock_waits_crit;
	int disk_free_warn_pct, disk_free_crit_pct;
	int inodes_free_warn_pct, inodes_free_crit_pct;
	int pool_usage_warn_pct, pool_usage_crit_pct;
	long long wraparound_warn, wraparound_crit;
	long long growth_warn_mb, growth_crit_mb;	/* table growth, MiB per hour */
	/* replication (check_replication.c) */
	int sync_standbys_min;			/* fewer synchronous standbys: CRITICAL */
	long long replication_lag_warn_bytes, replication_lag_crit_bytes;
	int replication_lag_warn_s, replication_lag_crit_s;
	int backup_age_warn_pct, backup_age_crit_pct;	/* newest backup's age, % of backup.interval_hours */
	int archive_age_warn_s, archive_age_crit_s;	/* last archived segment, while one waits */
	int drill_age_warn_days;			/* the last restore drill */
	int dead_tuples_warn_pct, dead_tuples_crit_pct;	/* bloat: dead of all tuples */
	int wal_fill_warn_pct, wal_fill_crit_pct;	/* wal: a checkpoint cycle's WAL, % of max_wal_size */
	long long dead_tuples_min;			/* bloat: fewer dead tuples are not judged */
	long long vacuum_age_warn_s, vacuum_age_crit_s;	/* bloat: since the last (auto)vacuum */
};

struct config {
	char *path;			/* the file read, or NULL for built-in defaults */

	/* database */
	char *uri;
	enum uri_origin uri_from;
	char *password_file;
	int connect_timeout;		/* seconds */
	int statement_timeout;		/* milliseconds */
	char *application_name;
	char *owner_role;		/* SET ROLE to it for the schema's work; "" = the login role */
	char *node_uri;			/* this node's server, for the role-aware checks; "" = uri */

	/* migrations */
	char **sets;
	size_t nsets;
	char *schema;			/* of the langgraph sets */
	char *agentos_schema;
	char *agent_schema;		/* ledger, heartbeat */
	int lock_timeout;		/* seconds */

	/* the application's pools */
	int pool_size;
	int pool_instances;

	/* service */
	int interval;			/* seconds between check cycles */
	int startup_timeout;		/* seconds */
	char *state_file;
	char *metrics_file;
	char *data_directory;
	char *http_listen;		/* "address:port" of the HTTP listener; "" = off */

	/* backup (pgBackRest): what the backup check reads; empty info_file: not configured */
	char *backup_info_file;
	char *backup_drill_file;
	char *backup_repo_path;
	char *backup_stanza;
	int backup_interval_hours;

	struct check_thresholds checks;

	/* retention: TTL sweeps of `run` (none while ttl is 0) */
	char *retention_strategy;	/* "delete" or "keep_latest" */
	long long retention_ttl;	/* seconds; 0: no sweeps */
	long long retention_sweep_interval;	/* seconds */
	int retention_sweep_limit;	/* threads pruned per sweep at most */
	int retention_batch;		/* threads per transaction */
};

/*
 * Loads PATH into CFG. EXPLICIT says the user named the file: then a missing
 * file is an error; otherwise a missing default file means built-in
 * defaults. Returns 0, or AERR_CONFIG after logging "file:line: message".
 */
int config_load(const char *path, bool explicit, struct config *cfg);
void config_defaults(struct config *cfg);
/*
 * The connection string used when neither database.uri nor CHECKPOINT_DB_URI
 * is set: CONFIG_DEFAULT_URI, with its host, port, user and database taken
 * from PGHOST, PGPORT, PGUSER and PGDATABASE where those are set, as every
 * libpq tool honours them (caller frees).
 */
char *config_uri_from_environment(void);
/* "database.uri in FILE", "CHECKPOINT_DB_URI" or "the built-in default ...", for messages (caller frees). */
char *config_uri_origin(const struct config *cfg);
void config_free(struct config *cfg);
bool config_has_set(const struct config *cfg, const char *name);

/* The first threshold pair out of order ("warn_name > crit_name"), or NULL: each WARNING threshold
 * comes before its CRITICAL one (for free space: above it). */
const char *config_thresholds_unordered(const struct check_thresholds *t);
/*
 * Sets the threshold checks.NAME (e.g. "disk_free_warn_pct") in T to V, within
 * the range the config file allows. 0, or -1 with *WHY set (caller frees).
 */
int config_set_threshold(struct check_thresholds *t, const char *name, long long v, char **why);

#endif
