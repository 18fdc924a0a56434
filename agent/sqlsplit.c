/*
 * sqlsplit.c: a small SQL lexer. It knows PostgreSQL's quoting rules:
 * 'literals' with '' inside, E'literals' with backslash escapes, "identifiers",
 * $tag$ bodies $tag$, -- line comments and nested block comments. Which
 * statements run outside a transaction is not guessed from keywords: the file
 * says so with a directive (sql_directives).
 */
#include "sqlsplit.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

/* Length of a dollar-quote tag at P ("$$" or "$tag$"), or 0. */
static size_t dollar_tag_len(const char *p)
{
	size_t n = 1;

	if (p[0] != '$')
		return 0;
	if (isdigit((unsigned char)p[1]))
		return 0;
	while (p[n] && (isalnum((unsigned char)p[n]) || p[n] == '_'))
		n++;
	return p[n] == '$' ? n + 1 : 0;
}

/*
 * Skips a quoted or commented span starting at P; returns the first character
 * after it, or P itself when P starts none.
 */
static const char *skip_span(const char *p, const char *start)
{
	size_t tag;

	if (p[0] == '-' && p[1] == '-') {
		while (*p && *p != '\n')
			p++;
		return p;
	}
	if (p[0] == '/' && p[1] == '*') {
		int depth = 1;

		p += 2;
		while (*p && depth > 0) {
			if (p[0] == '/' && p[1] == '*')
				depth++, p += 2;
			else if (p[0] == '*' && p[1] == '/')
				depth--, p += 2;
			else
				p++;
		}
		return p;
	}
	if (p[0] == '\'') {
		bool backslash = p > start && (p[-1] == 'E' || p[-1] == 'e') &&
				 (p - 1 == start || !isalnum((unsigned char)p[-2]));

		p++;
		while (*p) {
			bool escaped = (backslash && p[0] == '\\' && p[1]) || (p[0] == '\'' && p[1] == '\'');

			if (escaped)
				p += 2;
			else if (p[0] == '\'')
				return p + 1;
			else
				p++;
		}
		return p;
	}
	if (p[0] == '"') {
		p++;
		while (*p) {
			if (p[0] == '"' && p[1] == '"')
				p += 2;
			else if (p[0] == '"')
				return p + 1;
			else
				p++;
		}
		return p;
	}
	if ((tag = dollar_tag_len(p)) > 0 && (p == start || !isalnum((unsigned char)p[-1]))) {
		const char *end = p + tag;

		while (*end && strncmp(end, p, tag) != 0)
			end++;
		return *end ? end + tag : end;
	}
	return p;
}

/* True when [p, end) holds something besides blanks and comments. */
static bool has_code(const char *p, const char *end)
{
	while (p < end) {
		const char *q = skip_span(p, p);

		if (q != p && (p[0] == '-' || p[0] == '/')) {
			p = q;
			continue;
		}
		if (!isspace((unsigned char)*p))
			return true;
		p++;
	}
	return false;
}

static void add_statement(struct strlist *out, const char *b, const char *e)
{
	while (b < e && isspace((unsigned char)*b))
		b++;
	while (e > b && isspace((unsigned char)e[-1]))
		e--;
	if (b < e && has_code(b, e)) {
		char *s = xmalloc((size_t)(e - b) + 1);

		memcpy(s, b, (size_t)(e - b));
		s[e - b] = '\0';
		sl_add(out, s);
		free(s);
	}
}

void sql_split(const char *sql, struct strlist *out)
{
	const char *p = sql, *begin = sql;

	while (*p) {
		const char *q = skip_span(p, sql);

		if (q != p) {
			p = q;
			continue;
		}
		if (*p == ';') {
			add_statement(out, begin, p);
			begin = p + 1;
		}
		p++;
	}
	add_statement(out, begin, p);
}

/* ---- directives ---- */

#define DIRECTIVE_PREFIX "checkpoint-agent:"

/* The directive of the line comment at P ("--" ...), in [*word, *word + *len); false when it is none. */
static bool directive_at(const char *p, const char **word, size_t *len)
{
	const char *e;

	p += 2;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, DIRECTIVE_PREFIX, strlen(DIRECTIVE_PREFIX)) != 0)
		return false;
	p += strlen(DIRECTIVE_PREFIX);
	while (*p == ' ' || *p == '\t')
		p++;
	for (e = p; *e && *e != '\n' && *e != '\r'; e++)
		;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*word = p;
	*len = (size_t)(e - p);
	return true;
}

static int directive_apply(const char *word, size_t len, unsigned *flags, char **why)
{
	if (len == strlen("no-transaction") && strncmp(word, "no-transaction", len) == 0) {
		*flags |= SQL_NO_TRANSACTION;
		return 0;
	}
	*why = xasprintf("unknown directive \"%.*s\" (the directive is no-transaction)", (int)(len > 60 ? 60 : len),
			 word);
	return -1;
}

int sql_directives(const char *sql, unsigned *flags, char **why)
{
	const char *p = sql;
	bool header = true;

	*flags = 0;
	*why = NULL;
	while (*p) {
		const char *q = skip_span(p, sql), *word;
		size_t len;

		if (p[0] == '-' && p[1] == '-' && directive_at(p, &word, &len)) {
			if (!header) {
				*why = xstrdup("a \"-- " DIRECTIVE_PREFIX "\" directive after the first statement; "
					       "directives go at the top of the file");
				return -1;
			}
			if (directive_apply(word, len, flags, why) != 0)
				return -1;
		} else if (q == p && !isspace((unsigned char)*p)) {
			header = false;
		}
		p = q != p ? q : p + 1;
	}
	return 0;
}

/* ---- tokens ---- */

static void add_token(struct sql_tokens *t, enum sql_token_kind kind, size_t offset, size_t len, char *text)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->items = xrealloc(t->items, t->cap * sizeof(*t->items));
	}
	t->items[t->n++] = (struct sql_token){ kind, offset, len, text };
}

static bool word_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* A quoted identifier at P (its closing quote at END - 1), without the quotes, "" as ". */
static char *unquote_ident(const char *p, const char *end)
{
	struct strbuf sb;

	sb_init(&sb);
	for (const char *c = p + 1; c < end - 1; c++) {
		sb_addn(&sb, c, 1);
		if (c[0] == '"' && c[1] == '"')
			c++;
	}
	return sb_detach(&sb);
}

/* Reads one word at P; returns the first character after it. */
static const char *read_word(const char *stmt, const char *p, struct sql_tokens *out)
{
	const char *b = p;
	char *w;

	while (*p && word_char((unsigned char)*p))
		p++;
	/* E'..', B'..', X'..', N'..': the letter is the literal's prefix. */
	if (*p == '\'' && p - b == 1 && strchr("eEbBxXnN", *b) != NULL)
		return skip_span(p, stmt);
	w = xmalloc((size_t)(p - b) + 1);
	for (size_t i = 0; i < (size_t)(p - b); i++)
		w[i] = (char)tolower((unsigned char)b[i]);
	w[p - b] = '\0';
	add_token(out, SQL_WORD, (size_t)(b - stmt), (size_t)(p - b), w);
	return p;
}

void sql_tokenize(const char *stmt, struct sql_tokens *out, size_t max)
{
	const char *p = stmt;

	while (*p && out->n < max) {
		const char *q = skip_span(p, stmt);

		if (*p == '"') {
			add_token(out, SQL_IDENT, (size_t)(p - stmt), (size_t)(q - p), unquote_ident(p, q));
			p = q;
		} else if (q != p) {
			p = q;		/* a comment, literal or dollar-quoted body */
		} else if (isalpha((unsigned char)*p) || *p == '_' || (unsigned char)*p >= 0x80) {
			p = read_word(stmt, p, out);
		} else if (isdigit((unsigned char)*p) || *p == '$') {
			p++;		/* a number or a parameter ($1) */
			while (*p && (isalnum((unsigned char)*p) || *p == '.' || *p == '_'))
				p++;
		} else if (strchr("(),.;", *p) != NULL) {
			char w[2] = { *p, '\0' };

			add_token(out, SQL_PUNCT, (size_t)(p - stmt), 1, xstrdup(w));
			p++;
		} else {
			p++;
		}
	}
}

void sql_tokens_free(struct sql_tokens *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->items[i].text);
	free(t->items);
	t->items = NULL;
	t->n = t->cap = 0;
}

static bool is_word(const struct sql_tokens *t, size_t i, const char *w)
{
	return i < t->n && t->items[i].kind == SQL_WORD && strcmp(t->items[i].text, w) == 0;
}

static bool is_punct(const struct sql_tokens *t, size_t i, char c)
{
	return i < t->n && t->items[i].kind == SQL_PUNCT && t->items[i].text[0] == c;
}

static bool is_name(const struct sql_tokens *t, size_t i)
{
	return i < t->n && t->items[i].kind != SQL_PUNCT;
}

/* The index of the CONCURRENTLY keyword among the first tokens of STMT's statement, or -1. */
static long concurrently_at(const struct sql_tokens *t)
{
	/* CREATE [UNIQUE] INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, REINDEX [(...)] x CONCURRENTLY, ... */
	for (size_t i = 0; i < t->n && i < 12; i++)
		if (is_word(t, i, "concurrently"))
			return (long)i;
	return -1;
}

bool sql_is_concurrent(const char *stmt)
{
	struct sql_tokens t = { NULL, 0, 0 };
	bool found;

	sql_tokenize(stmt, &t, 16);
	found = concurrently_at(&t) >= 0;
	sql_tokens_free(&t);
	return found;
}

/* One "[schema.]name" at *I; false when the tokens there are not one. */
static bool read_qualified(const struct sql_tokens *t, size_t *i, struct strlist *schemas, struct strlist *tables)
{
	const char *schema = "", *name;

	if (!is_name(t, *i))
		return false;
	name = t->items[(*i)++].text;
	while (is_punct(t, *i, '.')) {		/* db.schema.table: the last two parts */
		if (!is_name(t, *i + 1))
			return false;
		schema = name;
		name = t->items[*i + 1].text;
		*i += 2;
	}
	sl_add(schemas, schema);
	sl_add(tables, name);
	return true;
}

bool sql_dropped_tables(const char *stmt, struct strlist *schemas, struct strlist *tables)
{
	struct sql_tokens t = { NULL, 0, 0 };
	size_t i = 2;
	bool ok = true;

	sql_tokenize(stmt, &t, 4096);
	if (!is_word(&t, 0, "drop") || !is_word(&t, 1, "table")) {
		sql_tokens_free(&t);
		return false;
	}
	if (is_word(&t, 2, "if") && is_word(&t, 3, "exists"))
		i = 4;
	for (;;) {
		ok = read_qualified(&t, &i, schemas, tables);
		if (!ok || !is_punct(&t, i, ','))
			break;
		i++;
	}
	if (ok && i < t.n && !is_word(&t, i, "cascade") && !is_word(&t, i, "restrict"))
		ok = false;
	if (!ok || tables->n == 0) {
		/* A DROP TABLE whose names cannot be read: the caller must refuse it, never skip it. */
		sl_free(schemas);
		sl_free(tables);
		sl_add(schemas, "");
		sl_add(tables, "");
	}
	sql_tokens_free(&t);
	return true;
}

char *sql_concurrent_index_name(const char *stmt)
{
	struct sql_tokens t = { NULL, 0, 0 };
	char *name = NULL;

	sql_tokenize(stmt, &t, 16);
	if (is_word(&t, 0, "create")) {
		size_t i = 1;

		if (is_word(&t, i, "unique"))
			i++;
		if (is_word(&t, i, "index") && is_word(&t, i + 1, "concurrently")) {
			i += 2;
			if (is_word(&t, i, "if") && is_word(&t, i + 1, "not") && is_word(&t, i + 2, "exists"))
				i += 3;
			if (is_name(&t, i) && !is_word(&t, i, "on"))
				name = xstrdup(t.items[i].text);
		}
	}
	sql_tokens_free(&t);
	return name;
}

char *sql_without_concurrently(const char *stmt)
{
	struct sql_tokens t = { NULL, 0, 0 };
	struct strbuf sb;
	long at;

	sql_tokenize(stmt, &t, 16);
	at = concurrently_at(&t);
	sb_init(&sb);
	if (at < 0 || t.items == NULL) {
		sb_add(&sb, stmt);
	} else {
		const struct sql_token *k = &t.items[at];

		sb_addn(&sb, stmt, k->offset);
		sb_add(&sb, stmt + k->offset + k->len);
	}
	sql_tokens_free(&t);
	return sb_detach(&sb);
}
