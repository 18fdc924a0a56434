/*
 * test_duration.c: durations as people write them, the two clocks of a
 * checkpoint (UUIDv6 id and ISO 8601 "ts"), and the retention settings.
 */
#include "agent.h"
#include "config.h"
#include "duration.h"
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void durations_parse(void)
{
	long long s = -1;

	CHECK(duration_parse("30d", &s) == 0 && s == 30LL * 86400);
	CHECK(duration_parse("12h", &s) == 0 && s == 12LL * 3600);
	CHECK(duration_parse("90m", &s) == 0 && s == 90LL * 60);
	CHECK(duration_parse("45s", &s) == 0 && s == 45);
	CHECK(duration_parse("2w", &s) == 0 && s == 14LL * 86400);
	CHECK(duration_parse("0s", &s) == 0 && s == 0);
}

static void durations_refused(void)
{
	const char *bad[] = { "", "30", "d", "-5d", "+5d", "1.5d", "5 d", "5dd", "5y", "30D", "99999999999999d",
			      "1e3d", " 5d" };
	long long s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (duration_parse(bad[i], &s) != -1) {
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
			unit_failures++;
		}
	}
}

static void durations_format(void)
{
	char b[32];

	duration_format(30LL * 86400, b, sizeof(b));
	CHECK_STR(b, "30d");
	duration_format(14LL * 86400, b, sizeof(b));
	CHECK_STR(b, "2w");
	duration_format(5400, b, sizeof(b));
	CHECK_STR(b, "90m");
	duration_format(61, b, sizeof(b));
	CHECK_STR(b, "61s");
}

static void uuid6_clock(void)
{
	double t = 0;

	/* 2024-07-31T20:14:19.804Z as a v6 UUID: 100 ns ticks since 1582-10-15, 0x1ef4f7978334dc0. */
	CHECK(uuid6_time("1ef4f797-8334-6dc0-8001-000000000001", &t));
	CHECK(fabs(t - 1722456859.804) < 1e-3);
	CHECK(!uuid6_time("1ef4f797-a2b5-4c40-8001-000000000001", &t));	/* v4 */
	CHECK(!uuid6_time("1ef4f797a2b56c408001000000000001", &t));
	CHECK(!uuid6_time("not-a-uuid", &t));
	CHECK(!uuid6_time("1ef4f797-a2b5-6c40-8001-00000000000g", &t));
}

static void iso8601_clock(void)
{
	double t = 0;

	CHECK(iso8601_time("2024-07-31T20:14:19.804Z", &t) && fabs(t - 1722456859.804) < 1e-3);
	CHECK(iso8601_time("2024-07-31T20:14:19.804150+00:00", &t) && fabs(t - 1722456859.80415) < 1e-3);
	CHECK(iso8601_time("2024-07-31T22:14:19+02:00", &t) && fabs(t - 1722456859.0) < 1e-3);
	CHECK(iso8601_time("2024-07-31T20:14:19", &t) && fabs(t - 1722456859.0) < 1e-3);
	CHECK(!iso8601_time("2024-02-30T00:00:00Z", &t));
	CHECK(!iso8601_time("2024-13-01T00:00:00Z", &t));
	CHECK(!iso8601_time("yesterday", &t));
	CHECK(!iso8601_time("2024-07-31T20:14:19Zjunk", &t));
	CHECK(!iso8601_time("", &t));
}

static int load(const char *text, struct config *c)
{
	char path[] = "/tmp/cpa-unit-XXXXXX";
	int fd = mkstemp(path), rc;
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	rc = config_load(path, true, c);
	unlink(path);
	return rc;
}

static void retention_settings(void)
{
	struct config c;

	CHECK(load("retention: { strategy = \"keep_latest\"; ttl = \"30d\"; sweep_interval = 15; sweep_limit = 10;"
		   " batch = 5; };\n", &c) == 0);
	CHECK_STR(c.retention_strategy, "keep_latest");
	CHECK(c.retention_ttl == 30LL * 86400);
	CHECK(c.retention_sweep_interval == 15LL * 60);	/* a number is minutes, as on the platform */
	CHECK(c.retention_sweep_limit == 10 && c.retention_batch == 5);
	config_free(&c);
	CHECK(load("retention: { strategy = \"keep-latest\"; ttl = \"\"; };\n", &c) == 0);
	CHECK_STR(c.retention_strategy, "keep_latest");
	CHECK(c.retention_ttl == 0);
	config_free(&c);
	CHECK(load("retention: { strategy = \"archive\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load("retention: { ttl = \"-30d\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load("retention: { sweep_interval = \"0s\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load("retention: { sweep_limit = 0; };\n", &c) == AERR_CONFIG);
	config_free(&c);
	CHECK(load("checks: { vacuum_age_warn = \"7d\"; vacuum_age_crit = \"1d\"; };\n", &c) == AERR_CONFIG);
	config_free(&c);
}

static void retention_off_by_default(void)
{
	struct config c;

	unsetenv("CHECKPOINT_DB_URI");
	CHECK(config_load("agent/agent.conf.example", true, &c) == 0);
	CHECK(c.retention_ttl == 0);
	CHECK_STR(c.retention_strategy, "delete");
	CHECK(c.retention_sweep_interval == 3600 && c.retention_sweep_limit == 1000 && c.retention_batch == 50);
	config_free(&c);
}

const struct unit_test duration_tests[] = {
	{ "duration: 30d, 12h, 90m, 45s, 2w", durations_parse },
	{ "duration: malformed and negative ones are refused", durations_refused },
	{ "duration: written back in the largest unit", durations_format },
	{ "clock: the time in a UUIDv6 checkpoint id", uuid6_clock },
	{ "clock: ISO 8601 ts of both savers", iso8601_clock },
	{ "config: the retention group", retention_settings },
	{ "config: retention is off in the example and by default", retention_off_by_default },
	{ NULL, NULL }
};
