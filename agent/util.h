/*
 * util.h: small helpers with no policy: allocation that dies cleanly on
 * exhaustion, a growable string, a list of strings, time.
 */
#ifndef UTIL_H
#define UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * FN runs before the process exits on exhausted memory, the one error
 * handled by exiting (the service tells systemd: STATUS= and ERRNO=).
 */
void xalloc_on_failure(void (*fn)(void));

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

/*
 * Retry with backoff and jitter: each delay is between half and all of the
 * current step, which doubles from MIN_MS up to MAX_MS. Agents started
 * together so never retry in step.
 */
struct backoff {
	long long min_ms, max_ms, step_ms;
};
void backoff_init(struct backoff *b, long long min_ms, long long max_ms);
long long backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);

/* JSON string escaping into a strbuf (with the quotes). */
void sb_add_json_string(struct strbuf *sb, const char *s);

/* A PostgreSQL array literal of text ("{"a","b\"c"}"), for a text[] parameter, into a strbuf. */
void sb_add_pg_array(struct strbuf *sb, const struct strlist *items);

#endif
