/*
 * check_args.c: the options of `check` that choose checks and thresholds,
 * in the manner of check_postgres and the Nagios plugins:
 *
 *   --only LIST     run only these checks (comma-separated names; repeatable)
 *   --skip LIST     run every check but these
 *   -w N, -c N      the WARNING and CRITICAL threshold of the one check that
 *                   --only names, overriding the config for this run
 *
 * Each check with thresholds names its pair of settings below; a new check
 * with thresholds adds its line to that table.
 */
#include "check_args.h"
#include "config.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The settings -w and -c stand for, per check, and the unit they are in. */
static const struct {
	const char *check;
	const char *warn, *crit;	/* names in the checks group of the config */
	const char *unit;
} threshold_pairs[] = {
	{ "connect", "connect_warn_ms", "connect_crit_ms", "milliseconds" },
	{ "query", "query_warn_ms", "query_crit_ms", "milliseconds" },
	{ "writable", "write_warn_ms", "write_crit_ms", "milliseconds" },
	{ "pool_headroom", "pool_usage_warn_pct", "pool_usage_crit_pct", "percent of the usable slots" },
	{ "idle_in_transaction", "idle_in_transaction_warn", "idle_in_transaction_crit", "seconds" },
	{ "long_transactions", "transaction_age_warn", "transaction_age_crit", "seconds" },
	{ "lock_waits", "lock_waits_warn", "lock_waits_crit", "waiting sessions" },
	{ "disk", "disk_free_warn_pct", "disk_free_crit_pct", "percent free space (lower is worse)" },
	{ "size", "growth_warn_mb", "growth_crit_mb", "MiB of growth per hour" },
	{ "bloat", "dead_tuples_warn_pct", "dead_tuples_crit_pct", "percent of a table's tuples that are dead" },
	{ "wal", "wal_fill_warn_pct", "wal_fill_crit_pct", "percent of max_wal_size that a checkpoint cycle's WAL fills" },
	{ "wraparound", "wraparound_warn", "wraparound_crit", "transactions of age(datfrozenxid)" },
	{ "backup", "backup_age_warn_pct", "backup_age_crit_pct", "percent of backup.interval_hours (the newest backup's age)" },
};

void check_args_init(struct check_args *a)
{
	memset(a, 0, sizeof(*a));
}

static void list_checks(struct strbuf *sb)
{
	for (size_t i = 0; i < check_count(); i++)
		sb_printf(sb, "%s%s", i ? ", " : "", check_name(i));
}

int check_args_select(struct check_args *a, const char *list, bool only)
{
	char *copy = xstrdup(list), *save = NULL, *name;
	int rc = 0;

	if (only && !a->only_given) {
		/* The first --only starts from none; later ones add. */
		for (size_t i = 0; i < CHECK_MAX; i++)
			a->skip[i] = true;
		a->only_given = true;
	}
	for (name = strtok_r(copy, ",", &save); name != NULL && rc == 0; name = strtok_r(NULL, ",", &save)) {
		int i = check_index(name);

		if (i < 0) {
			struct strbuf sb;

			sb_init(&sb);
			list_checks(&sb);
			log_error("check: --%s: no check is named '%s'; the checks are %s", only ? "only" : "skip", name,
				  sb.buf);
			sb_free(&sb);
			rc = AERR_USAGE;
		} else {
			a->skip[i] = !only;
		}
	}
	free(copy);
	return rc;
}

/* After `check`, -c is the CRITICAL threshold: said whenever a -c may have been meant as the config file. */
#define CONFIG_HINT "; after `check`, -c is the CRITICAL threshold: give the config file as --config=FILE, " \
	"or as -c FILE before the command"

/* A whole number, or -1 with a message. */
static int parse_level(const char *opt, const char *s, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0') {
		log_error("check: %s needs a whole number, not '%s'%s", opt, s, strcmp(opt, "-c") == 0 ? CONFIG_HINT : "");
		return -1;
	}
	return 0;
}

int check_args_thresholds(const struct check_args *a, struct check_thresholds *t)
{
	const char *name = NULL;
	long long w, c;
	char *why = NULL;
	size_t k, selected = 0;

	if (a->warn == NULL && a->crit == NULL)
		return 0;
	for (size_t i = 0; i < check_count(); i++) {
		if (!a->skip[i]) {
			selected++;
			name = check_name(i);
		}
	}
	if (!a->only_given || selected != 1) {
		log_error("check: -w and -c set the thresholds of one check: name it with --only (e.g. --only disk -w 20 "
			  "-c 10)%s", a->warn == NULL ? CONFIG_HINT : "");
		return AERR_USAGE;
	}
	for (k = 0; k < sizeof(threshold_pairs) / sizeof(threshold_pairs[0]); k++)
		if (strcmp(threshold_pairs[k].check, name) == 0)
			break;
	if (k == sizeof(threshold_pairs) / sizeof(threshold_pairs[0])) {
		log_error("check: %s has no thresholds to set with -w or -c", name);
		return AERR_USAGE;
	}
	if ((a->warn != NULL && (parse_level("-w", a->warn, &w) != 0 ||
				 config_set_threshold(t, threshold_pairs[k].warn, w, &why) != 0)) ||
	    (a->crit != NULL && why == NULL && (parse_level("-c", a->crit, &c) != 0 ||
						config_set_threshold(t, threshold_pairs[k].crit, c, &why) != 0))) {
		if (why != NULL)
			log_error("check: %s (-w and -c of %s are %s)", why, name, threshold_pairs[k].unit);
		free(why);
		return AERR_USAGE;
	}
	if (config_thresholds_unordered(t) != NULL) {
		log_error("check: the warning threshold of %s is beyond its critical one (%s: %s)", name,
			  threshold_pairs[k].unit, strstr(threshold_pairs[k].unit, "lower") ?
			  "-w must be above -c" : "-w must not be above -c");
		return AERR_USAGE;
	}
	return 0;
}
