/*
 * sqlsplit.h: just enough SQL lexing to run a migration file statement by
 * statement: splitting at semicolons outside quotes, comments and
 * dollar-quoted bodies, and reading a statement's leading words.
 */
#ifndef SQLSPLIT_H
#define SQLSPLIT_H

#include <stdbool.h>

#include "util.h"

/* Appends each statement of SQL (trimmed, without its ';') to OUT. Comment-only pieces are skipped. */
void sql_split(const char *sql, struct strlist *out);

/*
 * Appends up to MAX words of STMT to OUT: unquoted words folded to lower
 * case, quoted identifiers without their quotes, and the punctuation
 * characters ( ) , as words of their own. Literals and comments are skipped.
 */
void sql_words(const char *stmt, struct strlist *out, size_t max);

/* The statement uses CONCURRENTLY, so it must run outside a transaction. */
bool sql_is_concurrent(const char *stmt);

/* "DROP TABLE [IF EXISTS] a[, b...]": appends the table names to OUT and returns true. */
bool sql_dropped_tables(const char *stmt, struct strlist *out);

/* "CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ...": returns the index name (caller frees), else NULL. */
char *sql_concurrent_index_name(const char *stmt);

/* STMT without its CONCURRENTLY, for a run inside a transaction (caller frees). */
char *sql_without_concurrently(const char *stmt);

#endif
