/*
 * sqlsplit.c: a small SQL lexer. It knows PostgreSQL's quoting rules:
 * 'literals' with '' inside, E'literals' with backslash escapes, "identifiers",
 * $tag$ bodies $tag$, -- line comments and nested block comments.
 */
#include "sqlsplit.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

void sql_words(const char *stmt, struct strlist *out, size_t max)
{
	const char *p = stmt;

	while (*p && out->n < max) {
		if (*p == '"') {
			const char *q = skip_span(p, stmt);
			struct strbuf sb;

			sb_init(&sb);
			for (const char *c = p + 1; c < q - 1; c++) {
				sb_addn(&sb, c, 1);
				if (c[0] == '"' && c[1] == '"')
					c++;
			}
			sl_add(out, sb.buf);
			sb_free(&sb);
			p = q;
		} else if (skip_span(p, stmt) != p) {
			p = skip_span(p, stmt);
		} else if (isalpha((unsigned char)*p) || *p == '_') {
			struct strbuf sb;

			sb_init(&sb);
			while (isalnum((unsigned char)*p) || *p == '_' || *p == '$' || *p == '.') {
				char c = (char)tolower((unsigned char)*p++);

				sb_addn(&sb, &c, 1);
			}
			sl_add(out, sb.buf);
			sb_free(&sb);
		} else if (*p == '(' || *p == ')' || *p == ',') {
			char w[2] = { *p++, '\0' };

			sl_add(out, w);
		} else {
			p++;
		}
	}
}

bool sql_is_concurrent(const char *stmt)
{
	struct strlist w;
	bool found = false;

	sl_init(&w);
	sql_words(stmt, &w, 8);
	for (size_t i = 0; i < w.n && !found; i++)
		found = strcmp(w.items[i], "concurrently") == 0;
	sl_free(&w);
	return found;
}

bool sql_dropped_tables(const char *stmt, struct strlist *out)
{
	struct strlist w;
	bool is_drop;

	sl_init(&w);
	sql_words(stmt, &w, 64);
	is_drop = w.n >= 3 && strcmp(w.items[0], "drop") == 0 && strcmp(w.items[1], "table") == 0;
	if (is_drop) {
		size_t i = 2;

		if (w.n >= 5 && strcmp(w.items[2], "if") == 0 && strcmp(w.items[3], "exists") == 0)
			i = 4;
		for (; i < w.n; i++) {
			if (strcmp(w.items[i], ",") == 0)
				continue;
			if (strcmp(w.items[i], "cascade") == 0 || strcmp(w.items[i], "restrict") == 0)
				break;
			sl_add(out, w.items[i]);
		}
	}
	sl_free(&w);
	return is_drop;
}

char *sql_concurrent_index_name(const char *stmt)
{
	struct strlist w;
	char *name = NULL;

	sl_init(&w);
	sql_words(stmt, &w, 12);
	if (w.n > 3 && strcmp(w.items[0], "create") == 0) {
		size_t i = 1;

		if (strcmp(w.items[i], "unique") == 0)
			i++;
		if (i + 2 < w.n && strcmp(w.items[i], "index") == 0 && strcmp(w.items[i + 1], "concurrently") == 0) {
			i += 2;
			if (i + 3 < w.n && strcmp(w.items[i], "if") == 0 && strcmp(w.items[i + 1], "not") == 0 &&
			    strcmp(w.items[i + 2], "exists") == 0)
				i += 3;
			if (i < w.n && strcmp(w.items[i], "on") != 0)
				name = xstrdup(w.items[i]);
		}
	}
	sl_free(&w);
	return name;
}

char *sql_without_concurrently(const char *stmt)
{
	struct strbuf sb;
	const char *hit;

	sb_init(&sb);
	if (sql_is_concurrent(stmt) && (hit = strcasestr(stmt, " concurrently")) != NULL) {
		sb_addn(&sb, stmt, (size_t)(hit - stmt));
		sb_add(&sb, hit + strlen(" concurrently"));
	} else {
		sb_add(&sb, stmt);
	}
	return sb_detach(&sb);
}
