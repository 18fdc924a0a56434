/*
 * test_sqlsplit.c: the SQL lexer that splits migration files.
 */
#include "sets.h"
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
	struct strlist sch, l;

	sl_init(&sch);
	sl_init(&l);
	CHECK(sql_dropped_tables("DROP TABLE IF EXISTS checkpoints", &sch, &l));
	CHECK(l.n == 1 && strcmp(l.items[0], "checkpoints") == 0 && strcmp(sch.items[0], "") == 0);
	sl_free(&l);
	sl_free(&sch);
	CHECK(sql_dropped_tables("drop table a, \"B\" cascade", &sch, &l));
	CHECK(l.n == 2 && strcmp(l.items[1], "B") == 0);
	sl_free(&l);
	sl_free(&sch);
	CHECK(!sql_dropped_tables("DROP INDEX CONCURRENTLY IF EXISTS x", &sch, &l));
	CHECK(l.n == 0);
	sl_free(&l);
	sl_free(&sch);
}

/* Defect: "public.checkpoints" was read as one name, quoted as "public"."public.checkpoints": a no-op. */
static void reads_schema_qualified_dropped_tables(void)
{
	struct strlist sch, l;

	sl_init(&sch);
	sl_init(&l);
	CHECK(sql_dropped_tables("DROP TABLE public.checkpoints", &sch, &l));
	CHECK(l.n == 1);
	if (l.n == 1) {
		CHECK_STR(sch.items[0], "public");
		CHECK_STR(l.items[0], "checkpoints");
	}
	sl_free(&l);
	sl_free(&sch);
	CHECK(sql_dropped_tables("DROP TABLE IF EXISTS \"My Schema\" . \"T.1\", s2.t2 RESTRICT", &sch, &l));
	CHECK(l.n == 2);
	if (l.n == 2) {
		CHECK_STR(sch.items[0], "My Schema");
		CHECK_STR(l.items[0], "T.1");
		CHECK_STR(sch.items[1], "s2");
		CHECK_STR(l.items[1], "t2");
	}
	sl_free(&l);
	sl_free(&sch);
	/* Names it cannot read: one table named "", which the caller refuses. */
	CHECK(sql_dropped_tables("DROP TABLE (SELECT 1)", &sch, &l));
	CHECK(l.n == 1 && l.items[0][0] == '\0');
	sl_free(&l);
	sl_free(&sch);
}

/* Defect: CONCURRENTLY after a newline was not removed, so the rehearsal ran it in a transaction. */
static void removes_concurrently_after_a_newline(void)
{
	char *s = sql_without_concurrently("CREATE INDEX\nCONCURRENTLY IF NOT EXISTS i ON t(a)");

	CHECK_STR(s, "CREATE INDEX\n IF NOT EXISTS i ON t(a)");
	free(s);
	s = sql_without_concurrently("DROP INDEX\tconcurrently i");
	CHECK_STR(s, "DROP INDEX\t i");
	free(s);
}

/* Defect: a comment holding the word was edited instead of the keyword. */
static void removes_the_keyword_not_a_comment(void)
{
	char *s = sql_without_concurrently("CREATE INDEX /* not concurrently here */ CONCURRENTLY i ON t(a)");

	CHECK_STR(s, "CREATE INDEX /* not concurrently here */  i ON t(a)");
	free(s);
	s = sql_without_concurrently("-- built concurrently\nCREATE INDEX i ON t(a)");
	CHECK_STR(s, "-- built concurrently\nCREATE INDEX i ON t(a)");
	free(s);
	CHECK(!sql_is_concurrent("-- built concurrently\nCREATE INDEX i ON t(a)"));
	CHECK(!sql_is_concurrent("CREATE INDEX \"concurrently\" ON t(a)"));
}

static void reads_directives(void)
{
	unsigned flags = 99;
	char *why = NULL;

	CHECK(sql_directives("-- v6\n-- checkpoint-agent: no-transaction\nCREATE INDEX CONCURRENTLY i ON t(a);\n",
			     &flags, &why) == 0);
	CHECK(flags == SQL_NO_TRANSACTION);
	CHECK(sql_directives("--checkpoint-agent:   no-transaction  \r\nSELECT 1;", &flags, &why) == 0);
	CHECK(flags == SQL_NO_TRANSACTION);
	CHECK(sql_directives("-- plain\nSELECT '-- checkpoint-agent: no-transaction';", &flags, &why) == 0);
	CHECK(flags == 0);
	CHECK(sql_directives("-- checkpoint-agent: no-transactoin\nSELECT 1;", &flags, &why) == -1);
	CHECK(why != NULL && strstr(why, "no-transactoin") != NULL);
	free(why);
	why = NULL;
	CHECK(sql_directives("SELECT 1;\n-- checkpoint-agent: no-transaction\n", &flags, &why) == -1);
	CHECK(why != NULL && strstr(why, "top of the file") != NULL);
	free(why);
}

/* Every shipped file: its directives read, and no-transaction exactly where a statement needs it. */
static void shipped_files_mark_what_runs_alone(void)
{
	for (size_t i = 0; i < sql_files_count; i++) {
		const struct sql_file *f = &sql_files[i];
		struct strlist l;
		unsigned flags = 0;
		bool concurrent = false;
		char *why = NULL;

		sl_init(&l);
		if (sql_directives(f->sql, &flags, &why) != 0) {
			fprintf(stderr, "  %s v%d %s: %s\n", f->set, f->version, f->direction, why);
			unit_failures++;
		}
		free(why);
		sql_split(f->sql, &l);
		for (size_t k = 0; k < l.n; k++)
			concurrent = concurrent || sql_is_concurrent(l.items[k]);
		if (concurrent != ((flags & SQL_NO_TRANSACTION) != 0)) {
			fprintf(stderr, "  %s v%d %s: CONCURRENTLY %s, no-transaction %s\n", f->set, f->version,
				f->direction, concurrent ? "yes" : "no", flags ? "yes" : "no");
			unit_failures++;
		}
		sl_free(&l);
	}
}

static void pg_array_literal(void)
{
	struct strlist l;
	struct strbuf sb;

	sl_init(&l);
	sb_init(&sb);
	sl_add(&l, "plain");
	sl_add(&l, "a\"b\\c");
	sl_add(&l, "new\nline");
	sb_add_pg_array(&sb, &l);
	CHECK_STR(sb.buf, "{\"plain\",\"a\\\"b\\\\c\",\"new\nline\"}");
	sb_free(&sb);
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
	{ "sqlsplit: schema-qualified DROP TABLE names", reads_schema_qualified_dropped_tables },
	{ "sqlsplit: CONCURRENTLY after a newline is removed", removes_concurrently_after_a_newline },
	{ "sqlsplit: the keyword is removed, not a comment's word", removes_the_keyword_not_a_comment },
	{ "sqlsplit: directives", reads_directives },
	{ "sqlsplit: shipped files say no-transaction exactly where needed", shipped_files_mark_what_runs_alone },
	{ "util: PostgreSQL array literal", pg_array_literal },
	{ "sqlsplit: concurrent index name", reads_concurrent_index_name },
	{ NULL, NULL }
};
