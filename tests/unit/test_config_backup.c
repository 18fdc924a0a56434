/*
 * test_config_backup.c: the backup group of the config file and the backup
 * check's thresholds.
 */
#include "agent.h"
#include "config.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int load_backup_text(const char *text, struct config *c)
{
	char path[] = "/tmp/cpa-unit-backup-XXXXXX";
	int fd = mkstemp(path), rc;
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	rc = config_load(path, true, c);
	unlink(path);
	return rc;
}

/* Without a backup group, backups are not configured. */
static void backup_defaults(void)
{
	struct config c;

	unsetenv("CHECKPOINT_DB_URI");
	CHECK(config_load("/nonexistent/agent.conf", false, &c) == 0);
	CHECK_STR(c.backup_info_file, "");
	CHECK_STR(c.backup_drill_file, "");
	CHECK_STR(c.backup_repo_path, "");
	CHECK_STR(c.backup_stanza, "");
	CHECK(c.backup_interval_hours == 24);
	CHECK(c.checks.backup_age_warn_pct == 150 && c.checks.backup_age_crit_pct == 300);
	CHECK(c.checks.archive_age_warn_s == 900 && c.checks.archive_age_crit_s == 3600);
	CHECK(c.checks.drill_age_warn_days == 45);
	config_free(&c);
}

/* The example's backup group shows the defaults. */
static void backup_example_matches_defaults(void)
{
	struct config c, d;

	unsetenv("CHECKPOINT_DB_URI");
	CHECK(config_load("agent/agent.conf.example", true, &c) == 0);
	config_defaults(&d);
	CHECK_STR(c.backup_info_file, d.backup_info_file);
	CHECK_STR(c.backup_drill_file, d.backup_drill_file);
	CHECK_STR(c.backup_repo_path, d.backup_repo_path);
	CHECK_STR(c.backup_stanza, d.backup_stanza);
	CHECK(c.backup_interval_hours == d.backup_interval_hours);
	config_free(&c);
	config_free(&d);
}

static void backup_settings_are_read(void)
{
	struct config c;

	CHECK(load_backup_text("backup: { info_file = \"/var/lib/checkpoint-backup/info.json\";\n"
			       "  drill_file = \"/d.json\"; repo_path = \"/mnt/backup\"; stanza = \"main\";\n"
			       "  interval_hours = 168; };\n"
			       "checks: { backup_age_warn_pct = 120; backup_age_crit_pct = 200;\n"
			       "  archive_age_warn = 60; archive_age_crit = 120; drill_age_warn_days = 10; };\n",
			       &c) == 0);
	CHECK_STR(c.backup_info_file, "/var/lib/checkpoint-backup/info.json");
	CHECK_STR(c.backup_drill_file, "/d.json");
	CHECK_STR(c.backup_repo_path, "/mnt/backup");
	CHECK_STR(c.backup_stanza, "main");
	CHECK(c.backup_interval_hours == 168);
	CHECK(c.checks.backup_age_warn_pct == 120 && c.checks.backup_age_crit_pct == 200);
	CHECK(c.checks.archive_age_warn_s == 60 && c.checks.archive_age_crit_s == 120);
	CHECK(c.checks.drill_age_warn_days == 10);
	config_free(&c);
}

static void backup_bad_input_is_refused(void)
{
	struct config c;

	CHECK(load_backup_text("backup: { interval_hours = 0; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_backup_text("backup: { interval_hours = \"daily\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_backup_text("backup: { info = \"/x\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load_backup_text("checks: { backup_age_warn_pct = 400; backup_age_crit_pct = 300; };\n", &c) ==
	      AERR_CONFIG);
	config_free(&c);
	CHECK(load_backup_text("checks: { archive_age_warn = 7200; };\n", &c) == AERR_CONFIG);
	config_free(&c);
}

const struct unit_test config_backup_tests[] = {
	{ "config: backups are not configured by default", backup_defaults },
	{ "config: the example's backup group shows the defaults", backup_example_matches_defaults },
	{ "config: backup settings are read", backup_settings_are_read },
	{ "config: bad backup settings are refused", backup_bad_input_is_refused },
	{ NULL, NULL }
};
