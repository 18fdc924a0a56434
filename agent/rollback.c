/*
 * rollback.c: `rollback --to V`, the down files in reverse order, under the
 * migration lock. Tables that hold rows are quarantined, not dropped, unless
 * --purge is given; a down step that cannot be done safely refuses (the
 * down file checks, and the whole version's transaction rolls back).
 */
#include "agent.h"
#include "cli.h"
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
 * started; _2, _3 ... when a schema of that name exists already (a rollback
 * within the same second as another). All lower case, so that the name
 * works unquoted in SQL (the README's restore procedure types it as is).
 */
static int quarantine_name(PGconn *conn, char *buf, size_t len)
{
	time_t now = time(NULL);
	char base[48];
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(base, sizeof(base), "checkpoint_quarantine_%Y%m%d_%H%M%S", &tm);
	snprintf(buf, len, "%s", base);
	for (int n = 2; n < 1000; n++) {
		const char *params[1] = { buf };
		PGresult *res = db_query(conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, params);
		bool taken;

		if (res == NULL)
			return -1;
		taken = PQntuples(res) > 0;
		PQclear(res);
		if (!taken)
			return 0;
		snprintf(buf, len, "%s_%d", base, n);
	}
	log_error("cannot find a free quarantine schema name near %s", base);
	return -1;
}

static int roll_back_version(struct step_ctx *ctx, PGconn *conn, const struct set_def *set, int v,
			     const struct down_ctx *down)
{
	const struct sql_file *f = set_file(set, v, false);
	struct strlist stmts;
	unsigned flags = 0;
	int rc;

	if (f == NULL) {
		log_error("%s v%d has no down file in this build of the agent", set->name, v);
		return AERR_FAIL;
	}
	sl_init(&stmts);
	if ((rc = step_load_file(f, &stmts, &flags)) != 0) {
		sl_free(&stmts);
		return rc;
	}
	if (down->dry_run) {
		printf("-- %s v%d down (%s, %s) in schema %s\n", set->name, v, f->name,
		       flags & SQL_NO_TRANSACTION ? "outside a transaction" : "in one transaction",
		       set_schema_name(set, ctx->cfg));
		rc = step_run_in_transaction(ctx, conn, set, f, &stmts, down);
		printf("\n");
	} else {
		log_info("rolling back %s v%d (%s)", set->name, v, f->name);
		rc = flags & SQL_NO_TRANSACTION ? step_run_alone(ctx, conn, set, f, &stmts, down)
						: step_run_in_transaction(ctx, conn, set, f, &stmts, down);
	}
	sl_free(&stmts);
	return rc;
}

static int roll_back_set(struct step_ctx *ctx, PGconn *conn, const struct set_def *set,
			 const struct rollback_opts *o)
{
	char qname[64];
	struct down_ctx down;
	struct set_state st;
	int rc = 0;

	if (quarantine_name(conn, qname, sizeof(qname)) != 0)
		return step_fail_code(ctx, conn);
	down = (struct down_ctx){ qname, o->purge, o->dry_run, false };
	if (set_read_state(conn, ctx->cfg, set, &st) != 0) {
		set_state_free(&st);
		return step_fail_code(ctx, conn);
	}
	if (st.recorded > st.latest) {
		log_error("%s is at version %d, newer than this agent knows (%d); use the agent that applied it",
			  set->name, st.recorded, st.latest);
		set_state_free(&st);
		return AERR_FAIL;
	}
	if (st.recorded <= o->to) {
		log_info("%s is at version %d, not above %d: nothing to roll back", set->name, st.recorded, o->to);
		set_state_free(&st);
		return 0;
	}
	if (!o->dry_run)
		rc = step_rehearse_down(ctx, conn, set, &st, o->to, &down);
	for (int v = st.recorded; v > o->to && rc == 0; v--)
		if (st.applied[v])
			rc = roll_back_version(ctx, conn, set, v, &down);
	if (rc == 0 && !o->dry_run)
		log_info("%s is at version %d", set->name, o->to);
	set_state_free(&st);
	return rc;
}

static const char rollback_help[] =
	"usage: checkpoint-agent rollback --to V [--set S] [--dry-run] [--purge]\n"
	"\n"
	"Runs the down files of a set in reverse order, from its recorded version\n"
	"down to V + 1, under the migration lock, after rehearsing them all in a\n"
	"transaction that is rolled back. Tables that hold rows move into a schema\n"
	"checkpoint_quarantine_<UTC time> instead of being dropped.\n"
	"\n"
	"Options:\n"
	"  -t, --to=V       the version to end at; -1 removes the whole set (required)\n"
	"  -s, --set=S      the set (default: the first of migrations.sets)\n"
	"  -n, --dry-run    print the plan and the SQL; change nothing\n"
	"  -p, --purge      drop tables that hold rows instead of quarantining them\n"
	"  -c, --config=FILE, -v, --verbose, -h, --help   as for every command\n"
	"\n"
	"Exit: 0 done (or nothing to roll back), 64 usage, 69 unreachable, 70 a step\n"
	"failed or was refused (nothing of it committed), 75 lock timeout, 78 config,\n"
	"130/143 stopped by SIGINT/SIGTERM (the running step rolled back).\n";

static const struct option longopts[] = {
	{ "set", required_argument, NULL, 's' },
	{ "to", required_argument, NULL, 't' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "purge", no_argument, NULL, 'p' },
	{ NULL, 0, NULL, 0 }
};

const struct command_info rollback_info = { "s:t:np", longopts, rollback_help };

static int parse_rollback(const struct config *cfg, int argc, char **argv, struct rollback_opts *o)
{
	int c, rc;

	*o = (struct rollback_opts){ cfg->sets[0], 0, false, false, false };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+s:t:np", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((rc = cli_parse_set(cfg, optarg, &o->set)) != 0)
				return rc;
			break;
		case 't':
			if ((rc = cli_parse_version(optarg, -1, &o->to)) != 0)
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
			return cli_bad_option("rollback", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_bad_option("rollback", argv[optind]);
	if (!o->has_to) {
		log_error("rollback: --to V is required (the version to end at; -1 removes the whole set)");
		return AERR_USAGE;
	}
	return cli_check_target("rollback", o->set, o->to, -1);
}

int cmd_rollback(const struct config *cfg, int argc, char **argv)
{
	struct rollback_opts o;
	struct step_ctx ctx;
	PGconn *conn;
	int rc;

	if ((rc = parse_rollback(cfg, argc, argv, &o)) != 0)
		return rc;
	if ((conn = db_connect_owner(cfg, &rc)) == NULL)
		return rc;
	step_ctx_init(&ctx, cfg);
	cli_stop_on_signals(&ctx);
	if (o.dry_run) {
		printf("-- plan of checkpoint-agent rollback --set %s --to %d%s (dry run: nothing is changed)\n",
		       o.set, o.to, o.purge ? " --purge" : "");
		rc = roll_back_set(&ctx, conn, set_find(o.set), &o);
	} else if ((rc = lock_acquire(&ctx, conn)) == 0) {
		if (step_prepare_session(conn) != 0)
			rc = step_fail_code(&ctx, conn);
		if (rc == 0)
			rc = migrate_own_set(&ctx, conn);
		if (rc == 0)
			rc = roll_back_set(&ctx, conn, set_find(o.set), &o);
		lock_release(conn);
	}
	PQfinish(conn);
	return rc;
}
