/*
 * sqlsplit.h: just enough SQL lexing to run a migration file statement by
 * statement: splitting at semicolons outside quotes, comments and
 * dollar-quoted bodies; the file's directives; and reading a statement's
 * tokens (never its comments or literals).
 */
#ifndef SQLSPLIT_H
#define SQLSPLIT_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Appends each statement of SQL (trimmed, without its ';') to OUT. Comment-only pieces are skipped. */
void sql_split(const char *sql, struct strlist *out);

/*
 * A file's directives: comment lines "-- checkpoint-agent: WORD" before its
 * first statement, as goose's "-- +goose NO TRANSACTION" or dbmate's
 * "transaction:false". psql reads them as comments, so the file applied by
 * hand does the same.
 *
 *   no-transaction   the file's statements run one by one, outside a
 *                    transaction (CREATE/DROP INDEX CONCURRENTLY needs it);
 *                    the bookkeeping follows in a transaction of its own.
 */
#define SQL_NO_TRANSACTION 0x1u

/* Reads SQL's directives into *FLAGS. Returns 0, or -1 with *WHY set (caller frees). */
int sql_directives(const char *sql, unsigned *flags, char **why);

/* A token of a statement: an unquoted word (folded to lower case), a quoted identifier, or one character. */
enum sql_token_kind { SQL_WORD, SQL_IDENT, SQL_PUNCT };

struct sql_token {
	enum sql_token_kind kind;
	size_t offset, len;	/* where it is in the statement */
	char *text;		/* folded word, identifier without quotes, or the character */
};

struct sql_tokens {
	struct sql_token *items;
	size_t n, cap;
};

/* Up to MAX tokens of STMT; literals, numbers, parameters and comments are skipped. */
void sql_tokenize(const char *stmt, struct sql_tokens *out, size_t max);
void sql_tokens_free(struct sql_tokens *t);

/* The statement uses CONCURRENTLY (the keyword, not a word in a comment or literal). */
bool sql_is_concurrent(const char *stmt);

/*
 * "DROP TABLE [IF EXISTS] [schema.]a[, ...]": appends each table's schema
 * ("" when the name is not qualified) to SCHEMAS and its name to TABLES, and
 * returns true. When the names cannot be read, it appends one table named ""
 * (and still returns true): the caller must refuse the statement, never run
 * or skip it.
 */
bool sql_dropped_tables(const char *stmt, struct strlist *schemas, struct strlist *tables);

/* "CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ...": returns the index name (caller frees), else NULL. */
char *sql_concurrent_index_name(const char *stmt);

/* STMT without its CONCURRENTLY keyword, for a run inside a transaction (caller frees). */
char *sql_without_concurrently(const char *stmt);

#endif
