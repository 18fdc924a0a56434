/*
 * fuzz_sqlsplit.c: libFuzzer harness for the SQL lexer (sqlsplit.c): the
 * splitter, the directives and the token readers, on any bytes. Besides
 * the sanitizers' checks it asserts what callers rely on: every statement
 * is a piece of the input, removing CONCURRENTLY never lengthens one, and a
 * DROP TABLE always yields at least one (possibly refused) name.
 */
#include "sqlsplit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_statement(const char *stmt)
{
	struct strlist schemas, tables;
	char *idx, *plain;

	sl_init(&schemas);
	sl_init(&tables);
	if (sql_dropped_tables(stmt, &schemas, &tables) && (tables.n == 0 || schemas.n != tables.n))
		abort();
	sl_free(&schemas);
	sl_free(&tables);
	idx = sql_concurrent_index_name(stmt);
	if (idx != NULL && !sql_is_concurrent(stmt))
		abort();
	free(idx);
	plain = sql_without_concurrently(stmt);
	if (strlen(plain) > strlen(stmt))
		abort();
	free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sql = malloc(size + 1), *why = NULL;
	struct strlist stmts;
	unsigned flags;

	if (sql == NULL)
		return 0;
	memcpy(sql, data, size);
	sql[size] = '\0';
	if (sql_directives(sql, &flags, &why) != 0 && why == NULL)
		abort();
	free(why);
	sl_init(&stmts);
	sql_split(sql, &stmts);
	for (size_t i = 0; i < stmts.n; i++) {
		if (stmts.items[i][0] == '\0' || strstr(sql, stmts.items[i]) == NULL)
			abort();
		check_statement(stmts.items[i]);
	}
	sl_free(&stmts);
	free(sql);
	return 0;
}
