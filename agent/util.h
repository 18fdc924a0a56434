/*
 * util.h: small helpers with no policy: allocation that dies cleanly on
 * exhaustion, a growable string, a list of strings, time.
 */
#ifndef UTIL_H
#define UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable, always NUL-terminated string. */
struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
};
void sb_init(struct strbuf *sb);
void sb_add(struct strbuf *sb, const char *s);
void sb_addn(struct strbuf *sb, const char *s, size_t n);
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_reset(struct strbuf *sb);
char *sb_detach(struct strbuf *sb);
void sb_free(struct strbuf *sb);

/* A list of owned strings. */
struct strlist {
	char **items;
	size_t n;
	size_t cap;
};
void sl_init(struct strlist *sl);
void sl_add(struct strlist *sl, const char *s);
void sl_addf(struct strlist *sl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool sl_contains(const struct strlist *sl, const char *s);
void sl_free(struct strlist *sl);

/* Monotonic milliseconds, and a sleep of that many. */
long long now_ms(void);
void sleep_ms(long long ms);

/* JSON string escaping into a strbuf (with the quotes). */
void sb_add_json_string(struct strbuf *sb, const char *s);

#endif
