/*
 * duration.c: durations and the two clocks of a checkpoint. Nothing here
 * trusts its input: a value that does not parse is refused, never guessed.
 */
#include "duration.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DURATION_MAX_S (100LL * 366 * 86400)	/* a century is plenty */

static long long unit_seconds(char u)
{
	switch (u) {
	case 's': return 1;
	case 'm': return 60;
	case 'h': return 3600;
	case 'd': return 86400;
	case 'w': return 7LL * 86400;
	default: return 0;
	}
}

int duration_parse(const char *s, long long *seconds)
{
	long long n = 0, unit;
	size_t i = 0;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1;
	for (; isdigit((unsigned char)s[i]); i++) {
		n = n * 10 + (s[i] - '0');
		if (n > DURATION_MAX_S)
			return -1;
	}
	unit = unit_seconds(s[i]);
	if (unit == 0 || s[i + 1] != '\0' || n > DURATION_MAX_S / unit)
		return -1;
	*seconds = n * unit;
	return 0;
}

void duration_format(long long seconds, char *buf, size_t n)
{
	static const char units[] = "wdhm";

	for (const char *u = units; *u; u++) {
		long long us = unit_seconds(*u);

		if (seconds > 0 && seconds % us == 0) {
			snprintf(buf, n, "%lld%c", seconds / us, *u);
			return;
		}
	}
	snprintf(buf, n, "%llds", seconds);
}

/* N hex digits of S at I; -1 on a non-hex character. */
static long long hex_field(const char *s, size_t i, size_t n)
{
	long long v = 0;

	for (size_t k = i; k < i + n; k++) {
		int c = tolower((unsigned char)s[k]);

		if (isdigit(c))
			v = v * 16 + (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (c - 'a' + 10);
		else
			return -1;
	}
	return v;
}

/* 100 ns ticks from the Gregorian epoch (1582-10-15) to the Unix epoch. */
#define GREGORIAN_TO_UNIX_TICKS 122192928000000000LL

bool uuid6_time(const char *s, double *unix_seconds)
{
	long long high, mid, low;

	/* xxxxxxxx-xxxx-6xxx-yxxx-xxxxxxxxxxxx */
	if (s == NULL || strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' ||
	    s[14] != '6')
		return false;
	high = hex_field(s, 0, 8);
	mid = hex_field(s, 9, 4);
	low = hex_field(s, 15, 3);
	if (high < 0 || mid < 0 || low < 0 || hex_field(s, 19, 4) < 0 || hex_field(s, 24, 12) < 0)
		return false;
	*unix_seconds = (double)(((high << 28) | (mid << 12) | low) - GREGORIAN_TO_UNIX_TICKS) / 1e7;
	return true;
}

/* Reads exactly N digits at *P into *V. */
static bool digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return false;
		*v = *v * 10 + (**p - '0');
	}
	return true;
}

static bool expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* "Z", "+HH:MM", "+HHMM", "-HH" or nothing; the offset east of UTC in seconds. */
static bool zone_offset(const char *p, long *offset)
{
	int sign, h = 0, m = 0;

	*offset = 0;
	if (*p == '\0' || (p[0] == 'Z' && p[1] == '\0'))
		return true;
	if (*p != '+' && *p != '-')
		return false;
	sign = *p++ == '-' ? -1 : 1;
	if (!digits(&p, 2, &h))
		return false;
	if (*p == ':')
		p++;
	if (*p != '\0' && !digits(&p, 2, &m))
		return false;
	if (*p != '\0' || h > 23 || m > 59)
		return false;
	*offset = sign * (h * 3600L + m * 60L);
	return true;
}

bool iso8601_time(const char *s, double *unix_seconds)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *p = s;
	struct tm tm;
	double frac = 0.0, scale = 0.1;
	int y, mo, d, h, mi, se;
	long offset;
	time_t t;

	if (s == NULL || !digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
	    !digits(&p, 2, &d) || (*p != 'T' && *p != ' '))
		return false;
	p++;
	if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi) || !expect(&p, ':') || !digits(&p, 2, &se))
		return false;
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, scale /= 10.0)
			frac += (*p - '0') * scale;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60 || !zone_offset(p, &offset))
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*unix_seconds = (double)(t - offset) + frac;
	return true;
}
