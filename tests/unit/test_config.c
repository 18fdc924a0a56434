/*
 * test_config.c: reading the config file.
 */
#include "agent.h"
#include "config.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes TEXT to a temporary file; returns its path (caller unlinks and frees). */
static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/cpa-unit-XXXXXX");
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	return path;
}

static int load_text(const char *text, struct config *c)
{
	char *path = write_temp(text);
	int rc = config_load(path, true, c);

	unlink(path);
	free(path);
	return rc;
}

static void defaults_without_file(void)
{
	struct config c;

	unsetenv("CHECKPOINT_DB_URI");
	CHECK(config_load("/nonexistent/agent.conf", false, &c) == 0);
	CHECK(c.nsets == 1);
	CHECK_STR(c.sets[0], "langgraph");
	CHECK_STR(c.schema, "public");
	CHECK(c.pool_size == 20 && c.pool_instances == 1);
	config_free(&c);
}

static void missing_explicit_file_is_an_error(void)
{
	struct config c;

	CHECK(config_load("/nonexistent/agent.conf", true, &c) == AERR_CONFIG);
	config_free(&c);
}

static void reads_settings(void)
{
	struct config c;

	CHECK(load_text("database: { uri = \"postgresql://x@h/db\"; connect_timeout = 9; };\n"
			"migrations: { sets = [\"langgraph\", \"agentos\"]; schema = \"lg\"; };\n"
			"pool: { size = 5; instances = 3; };\n", &c) == 0);
	CHECK_STR(c.uri, "postgresql://x@h/db");
	CHECK(c.connect_timeout == 9);
	CHECK(c.nsets == 2);
	CHECK_STR(c.schema, "lg");
	CHECK(c.pool_size * c.pool_instances == 15);
	config_free(&c);
}

static void refuses_bad_input(void)
{
	struct config c;

	CHECK(load_text("database: { uri = 5; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_text("database: { colour = \"red\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_text("migrations: { sets = [\"redis\"]; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_text("database: { connect_timeout = 0; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_text("database: { uri = \"x\" \n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_text("checks: { idle_in_transaction_warn = 500; idle_in_transaction_crit = 100; };\n", &c) ==
	      AERR_CONFIG);
	config_free(&c);
}

static void environment_overrides_uri(void)
{
	struct config c;

	setenv("CHECKPOINT_DB_URI", "postgresql://env@h/db", 1);
	CHECK(load_text("database: { uri = \"postgresql://file@h/db\"; };\n", &c) == 0);
	CHECK_STR(c.uri, "postgresql://env@h/db");
	unsetenv("CHECKPOINT_DB_URI");
	config_free(&c);
}

static void unset_pg_environment(void)
{
	unsetenv("CHECKPOINT_DB_URI");
	unsetenv("PGHOST");
	unsetenv("PGPORT");
	unsetenv("PGUSER");
	unsetenv("PGDATABASE");
}

/* Without database.uri and CHECKPOINT_DB_URI, PGHOST and friends replace parts of the default. */
static void pg_environment_without_uri(void)
{
	struct config c;

	unset_pg_environment();
	CHECK(config_load("/nonexistent/agent.conf", false, &c) == 0);
	CHECK_STR(c.uri, CONFIG_DEFAULT_URI);
	CHECK(c.uri_from == URI_DEFAULT);
	config_free(&c);

	setenv("PGHOST", "/run/post'gres", 1);
	setenv("PGUSER", "alice", 1);
	CHECK(config_load("/nonexistent/agent.conf", false, &c) == 0);
	CHECK_STR(c.uri, "host='/run/post\\'gres' port='5432' user='alice' dbname='langgraph_checkpoints'");
	config_free(&c);

	/* A configured uri wins over them, and CHECKPOINT_DB_URI over both. */
	CHECK(load_text("database: { uri = \"postgresql://file@h/db\"; };\n", &c) == 0);
	CHECK_STR(c.uri, "postgresql://file@h/db");
	CHECK(c.uri_from == URI_FILE);
	config_free(&c);
	setenv("CHECKPOINT_DB_URI", "postgresql://env@h/db", 1);
	CHECK(config_load("/nonexistent/agent.conf", false, &c) == 0);
	CHECK_STR(c.uri, "postgresql://env@h/db");
	CHECK(c.uri_from == URI_ENV);
	config_free(&c);
	unset_pg_environment();
}

/* The shipped example parses, and its values are the built-in defaults. */
static void example_is_valid_and_matches_defaults(void)
{
	struct config c, d;

	unset_pg_environment();
	CHECK(config_load("agent/agent.conf.example", true, &c) == 0);
	config_defaults(&d);
	CHECK_STR(c.uri, d.uri);
	CHECK(c.nsets == d.nsets && strcmp(c.sets[0], d.sets[0]) == 0);
	CHECK(c.lock_timeout == d.lock_timeout && c.interval == d.interval);
	CHECK(memcmp(&c.checks, &d.checks, sizeof(c.checks)) == 0);
	config_free(&c);
	config_free(&d);
}

/* The settings of a replicated cluster and the HTTP listener. */
static void cluster_and_http_settings(void)
{
	struct config c;

	unsetenv("CHECKPOINT_DB_URI");
	CHECK(load_text("database: { uri = \"postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write\"; "
			"node_uri = \"postgresql://u@h1:5432/db\"; };\n"
			"service: { http_listen = \"127.0.0.1:9188\"; };\n"
			"checks: { sync_standbys_min = 1; replication_lag_warn_bytes = 1000; "
			"replication_lag_crit_bytes = 2000; replication_lag_warn_s = 5; replication_lag_crit_s = 9; };\n", &c) == 0);
	CHECK_STR(c.node_uri, "postgresql://u@h1:5432/db");
	CHECK_STR(c.http_listen, "127.0.0.1:9188");
	CHECK(c.checks.sync_standbys_min == 1 && c.checks.replication_lag_crit_bytes == 2000);
	config_free(&c);
	CHECK(load_text("service: { http_listen = \"[::1]:9188\"; };\n", &c) == 0);
	config_free(&c);
	CHECK(load_text("service: { http_listen = \"localhost:9188\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_text("service: { http_listen = \"127.0.0.1\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_text("service: { http_listen = \"127.0.0.1:0\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_text("checks: { replication_lag_warn_s = 60; replication_lag_crit_s = 10; };\n", &c) == AERR_CONFIG);
	config_free(&c);
}

const struct unit_test config_tests[] = {
	{ "config: the example is valid and shows the defaults", example_is_valid_and_matches_defaults },
	{ "config: defaults without a file", defaults_without_file },
	{ "config: a missing -c file is an error", missing_explicit_file_is_an_error },
	{ "config: settings are read", reads_settings },
	{ "config: bad input is refused", refuses_bad_input },
	{ "config: CHECKPOINT_DB_URI overrides", environment_overrides_uri },
	{ "config: cluster, HTTP and replication settings", cluster_and_http_settings },
	{ "config: PGHOST, PGPORT, PGUSER, PGDATABASE without a uri", pg_environment_without_uri },
	{ NULL, NULL }
};
