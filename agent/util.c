/*
 * util.c: allocation, strings and time. Running out of memory is the one
 * error handled by exiting (die_oom: the agent's one call to exit outside main,
 * agent.h): the agent cannot do anything useful without it.
 */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void (*oom_hook)(void);

void xalloc_on_failure(void (*fn)(void))
{
	oom_hook = fn;
}

static void die_oom(void)
{
	fputs("checkpoint-agent: out of memory\n", stderr);
	if (oom_hook != NULL)
		oom_hook();
	exit(70);
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		die_oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		die_oom();
	return p;
}

void *xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);

	if (q == NULL)
		die_oom();
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		die_oom();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die_oom();
	va_end(ap);
	return s;
}

void sb_init(struct strbuf *sb)
{
	sb->cap = 64;
	sb->len = 0;
	sb->buf = xmalloc(sb->cap);
	sb->buf[0] = '\0';
}

static void sb_grow(struct strbuf *sb, size_t extra)
{
	if (sb->len + extra + 1 <= sb->cap)
		return;
	while (sb->len + extra + 1 > sb->cap)
		sb->cap *= 2;
	sb->buf = xrealloc(sb->buf, sb->cap);
}

void sb_addn(struct strbuf *sb, const char *s, size_t n)
{
	sb_grow(sb, n);
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sb_add(struct strbuf *sb, const char *s)
{
	sb_addn(sb, s, strlen(s));
}

static void sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	char small[256];
	va_list again;
	int n;

	va_copy(again, ap);
	/* clang-analyzer 14 takes a va_list parameter for uninitialized. */
	n = vsnprintf(small, sizeof(small), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
	if (n >= 0 && (size_t)n < sizeof(small)) {
		sb_addn(sb, small, (size_t)n);
	} else if (n >= 0) {
		sb_grow(sb, (size_t)n);
		vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, again);
		sb->len += (size_t)n;
	}
	va_end(again);
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vprintf(sb, fmt, ap);
	va_end(ap);
}

void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->buf[0] = '\0';
}

char *sb_detach(struct strbuf *sb)
{
	char *s = sb->buf;

	sb->buf = NULL;
	sb->len = sb->cap = 0;
	return s;
}

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

void sl_init(struct strlist *sl)
{
	sl->items = NULL;
	sl->n = sl->cap = 0;
}

void sl_add(struct strlist *sl, const char *s)
{
	if (sl->n == sl->cap) {
		sl->cap = sl->cap ? sl->cap * 2 : 8;
		sl->items = xrealloc(sl->items, sl->cap * sizeof(*sl->items));
	}
	sl->items[sl->n++] = xstrdup(s);
}

void sl_addf(struct strlist *sl, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die_oom();
	va_end(ap);
	sl_add(sl, s);
	free(s);
}

bool sl_contains(const struct strlist *sl, const char *s)
{
	for (size_t i = 0; i < sl->n; i++)
		if (strcmp(sl->items[i], s) == 0)
			return true;
	return false;
}

void sl_free(struct strlist *sl)
{
	for (size_t i = 0; i < sl->n; i++)
		free(sl->items[i]);
	free(sl->items);
	sl_init(sl);
}

long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(long long ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void sb_add_json_string(struct strbuf *sb, const char *s)
{
	sb_add(sb, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': sb_add(sb, "\\\""); break;
		case '\\': sb_add(sb, "\\\\"); break;
		case '\n': sb_add(sb, "\\n"); break;
		case '\r': sb_add(sb, "\\r"); break;
		case '\t': sb_add(sb, "\\t"); break;
		default:
			if (*p < 0x20)
				sb_printf(sb, "\\u%04x", *p);
			else
				sb_addn(sb, (const char *)p, 1);
		}
	}
	sb_add(sb, "\"");
}

void backoff_init(struct backoff *b, long long min_ms, long long max_ms)
{
	b->min_ms = min_ms > 0 ? min_ms : 1;
	b->max_ms = max_ms > b->min_ms ? max_ms : b->min_ms;
	b->step_ms = b->min_ms;
}

void backoff_reset(struct backoff *b)
{
	b->step_ms = b->min_ms;
}

long long backoff_next(struct backoff *b)
{
	long long s = b->step_ms, d = s / 2 + random() % (s / 2 + 1);

	b->step_ms = s * 2 > b->max_ms ? b->max_ms : s * 2;
	return d;
}

/*
 * Array elements are double-quoted; inside, only " and \ are escaped with a
 * backslash (PostgreSQL's array input rules). Every other byte, newlines
 * included, stands for itself: JSON's \n would be read as "n".
 */
void sb_add_pg_array(struct strbuf *sb, const struct strlist *items)
{
	sb_add(sb, "{");
	for (size_t i = 0; i < items->n; i++) {
		sb_add(sb, i ? ",\"" : "\"");
		for (const char *c = items->items[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				sb_add(sb, "\\");
			sb_addn(sb, c, 1);
		}
		sb_add(sb, "\"");
	}
	sb_add(sb, "}");
}
