/*
 * rollback.c: `rollback --to V`, the down files in reverse order, under the
 * migration lock. Tables that hold rows are quarantined, not dropped, unless
 * --purge is given; a down step that cannot be done safely refuses (the
 * down file checks, and the whole version's transaction rolls back).
 */
#include "agent.h"
#include "commands.h"
#include "db.h"
#include "db_role.h"
#include "lock.h"
#include "log.h"
#include "migrate.h"
#include "sqlsplit.h"
#include "step.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct rollback_opts {
	const char *set;
	int to;
	bool has_to;
	bool dry_run;
	bool purge;
};

/*
 * checkpoint_quarantine_YYYYMMDD_HHMMSS (UTC), from the time the rollback
 * started. All lower case, so that the name works unquoted in SQL (the
 * README's restore procedure types it as is).
 */
static void quarantine_name(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, len, "checkpoint_quarantine_%Y%m%d_%H%M%S", &tm);
}

static int roll_back_version(PGconn *conn, const struct config *cfg, const struct set_def *set, int v,
			     const struct down_ctx *down)
{
	const struct sql_file *f = set_file(set, v, false);
	struct strlist stmts;
	bool concurrent = false;
	int rc;

	if (f == NULL) {
		log_error("%s v%d has no down file in this build of the agent", set->name, v);
		return EXIT_STEP;
	}
	sl_init(&stmts);
	sql_split(f->sql, &stmts);
	for (size_t i = 0; i < stmts.n; i++)
		concurrent = concurrent || sql_is_concurrent(stmts.items[i]);
	if (down->dry_run) {
		printf("-- %s v%d down (%s, %s) in schema %s\n", set->name, v, f->name,
		       concurrent ? "outside a transaction" : "in one transaction", set_schema_name(set, cfg));
		rc = step_run_in_transaction(conn, cfg, set, f, &stmts, down);
		printf("\n");
	} else {
		log_info("rolling back %s v%d (%s)", set->name, v, f->name);
		rc = concurrent ? step_run_alone(conn, cfg, set, f, &stmts, down)
				: step_run_in_transaction(conn, cfg, set, f, &stmts, down);
	}
	sl_free(&stmts);
	return rc;
}

static int roll_back_set(PGconn *conn, const struct config *cfg, const struct set_def *set,
			 const struct rollback_opts *o)
{
	char qname[64];
	struct down_ctx down;
	struct set_state st;
	int rc = 0;

	quarantine_name(qname, sizeof(qname));
	down = (struct down_ctx){ qname, o->purge, o->dry_run, false };
	if (set_read_state(conn, cfg, set, &st) != 0) {
		set_state_free(&st);
		return db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
	}
	if (st.recorded > st.latest) {
		log_error("%s is at version %d, newer than this agent knows (%d); use the agent that applied it",
			  set->name, st.recorded, st.latest);
		set_state_free(&st);
		return EXIT_STEP;
	}
	if (!o->dry_run && st.recorded > o->to)
		rc = step_rehearse_down(conn, cfg, set, &st, o->to, &down);
	if (st.recorded <= o->to)
		log_info("%s is at version %d: nothing to roll back to %d", set->name, st.recorded, o->to);
	for (int v = st.recorded; v > o->to && rc == 0; v--)
		if (st.applied[v])
			rc = roll_back_version(conn, cfg, set, v, &down);
	if (rc == 0 && !o->dry_run && st.recorded > o->to)
		log_info("%s is at version %d", set->name, o->to);
	set_state_free(&st);
	return rc;
}

static int parse_rollback(const struct config *cfg, int argc, char **argv, struct rollback_opts *o)
{
	static const struct option longopts[] = {
		{ "set", required_argument, NULL, 's' },
		{ "to", required_argument, NULL, 't' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "purge", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	int c, rc;

	*o = (struct rollback_opts){ cfg->sets[0], 0, false, false, false };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((rc = parse_set_option(cfg, optarg, &o->set)) != 0)
				return rc;
			break;
		case 't':
			if ((rc = parse_version_option(optarg, -1, &o->to)) != 0)
				return rc;
			o->has_to = true;
			break;
		case 'n':
			o->dry_run = true;
			break;
		case 'p':
			o->purge = true;
			break;
		default:
			return usage_bad_option("rollback", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_bad_option("rollback", argv[optind]);
	if (!o->has_to) {
		log_error("rollback: --to V is required (the version to end at; -1 removes the whole set)");
		return EXIT_USAGE;
	}
	return 0;
}

int cmd_rollback(const struct config *cfg, int argc, char **argv)
{
	struct rollback_opts o;
	PGconn *conn;
	int rc;

	if ((rc = parse_rollback(cfg, argc, argv, &o)) != 0)
		return rc;
	if ((conn = db_connect_owner(cfg, &rc)) == NULL)
		return rc;
	if (o.dry_run) {
		printf("-- plan of checkpoint-agent rollback --set %s --to %d%s (dry run: nothing is changed)\n",
		       o.set, o.to, o.purge ? " --purge" : "");
		rc = roll_back_set(conn, cfg, set_find(o.set), &o);
	} else if ((rc = lock_acquire(conn, cfg->lock_timeout, migrate_progress())) == 0) {
		if (step_prepare_session(conn, cfg) != 0)
			rc = db_lost(conn) ? EXIT_UNREACHABLE : EXIT_STEP;
		if (rc == 0)
			rc = migrate_own_set(conn, cfg);
		if (rc == 0)
			rc = roll_back_set(conn, cfg, set_find(o.set), &o);
		lock_release(conn);
	}
	PQfinish(conn);
	return rc;
}
