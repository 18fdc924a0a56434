/*
 * test_sqlsplit.c: the SQL lexer that splits migration files.
 */
#include "sqlsplit.h"
#include "unit.h"

#include <stdlib.h>

static void split_plain_statements(void)
{
	struct strlist l;

	sl_init(&l);
	sql_split("SELECT 1; SELECT 2;\n  SELECT 3  ", &l);
	CHECK(l.n == 3);
	if (l.n == 3) {
		CHECK_STR(l.items[0], "SELECT 1");
		CHECK_STR(l.items[2], "SELECT 3");
	}
	sl_free(&l);
}

static void split_keeps_quoted_semicolons(void)
{
	struct strlist l;

	sl_init(&l);
	sql_split("SELECT 'a;b', \"c;d\", E'x\\';y'; -- c;\nSELECT /* a; /* nested; */ b; */ 2;", &l);
	CHECK(l.n == 2);
	if (l.n == 2)
		CHECK_STR(l.items[0], "SELECT 'a;b', \"c;d\", E'x\\';y'");
	sl_free(&l);
}

static void split_keeps_dollar_bodies(void)
{
	struct strlist l;

	sl_init(&l);
	sql_split("DO $$ BEGIN PERFORM 1; END $$;\nDO $f$ BEGIN RAISE NOTICE '$$;'; END $f$;", &l);
	CHECK(l.n == 2);
	if (l.n == 2)
		CHECK_STR(l.items[0], "DO $$ BEGIN PERFORM 1; END $$");
	sl_free(&l);
}

static void split_drops_comment_only_pieces(void)
{
	struct strlist l;

	sl_init(&l);
	sql_split("-- only a comment\n/* and another */\n", &l);
	CHECK(l.n == 0);
	sql_split("-- header\nSELECT 1;\n-- trailer\n", &l);
	CHECK(l.n == 1);
	sl_free(&l);
}

static void detects_concurrently(void)
{
	CHECK(sql_is_concurrent("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t(a)"));
	CHECK(sql_is_concurrent("-- x\ndrop index concurrently if exists i"));
	CHECK(!sql_is_concurrent("CREATE INDEX i ON t(a)"));
	CHECK(!sql_is_concurrent("SELECT 'concurrently'"));
}

static void reads_dropped_tables(void)
{
	struct strlist l;

	sl_init(&l);
	CHECK(sql_dropped_tables("DROP TABLE IF EXISTS checkpoints", &l));
	CHECK(l.n == 1 && strcmp(l.items[0], "checkpoints") == 0);
	sl_free(&l);
	CHECK(sql_dropped_tables("drop table a, \"B\" cascade", &l));
	CHECK(l.n == 2 && strcmp(l.items[1], "B") == 0);
	sl_free(&l);
	CHECK(!sql_dropped_tables("DROP INDEX CONCURRENTLY IF EXISTS x", &l));
	CHECK(l.n == 0);
	sl_free(&l);
}

static void reads_concurrent_index_name(void)
{
	char *n = sql_concurrent_index_name("CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_thread_id_idx "
					    "ON checkpoints(thread_id)");

	CHECK_STR(n, "checkpoints_thread_id_idx");
	free(n);
	n = sql_concurrent_index_name("create unique index concurrently u1 on t (a)");
	CHECK_STR(n, "u1");
	free(n);
	CHECK(sql_concurrent_index_name("CREATE INDEX plain ON t(a)") == NULL);
}

const struct unit_test sqlsplit_tests[] = {
	{ "sqlsplit: plain statements", split_plain_statements },
	{ "sqlsplit: quoted semicolons", split_keeps_quoted_semicolons },
	{ "sqlsplit: dollar-quoted bodies", split_keeps_dollar_bodies },
	{ "sqlsplit: comment-only pieces", split_drops_comment_only_pieces },
	{ "sqlsplit: CONCURRENTLY", detects_concurrently },
	{ "sqlsplit: DROP TABLE names", reads_dropped_tables },
	{ "sqlsplit: concurrent index name", reads_concurrent_index_name },
	{ NULL, NULL }
};
