/*
 * human.c: numbers written for people (see human.h).
 */
#include "human.h"

#include <stdio.h>
#include <string.h>

void human_count(long long v, char *buf, size_t n)
{
	char raw[32];
	size_t len, k = 0;

	snprintf(raw, sizeof(raw), "%lld", v < 0 ? -v : v);
	len = strlen(raw);
	if (v < 0 && k + 1 < n)
		buf[k++] = '-';
	for (size_t i = 0; i < len && k + 2 < n; i++) {
		buf[k++] = raw[i];
		if ((len - i - 1) % 3 == 0 && i + 1 < len)
			buf[k++] = ',';
	}
	buf[k] = '\0';
}

void human_bytes(double b, char *buf, size_t n)
{
	const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (b >= 1024.0 && u < 4) {
		b /= 1024.0;
		u++;
	}
	snprintf(buf, n, "%.*f %s", u ? 1 : 0, b, units[u]);
}

void human_age(double seconds, char *buf, size_t n)
{
	long long s = seconds < 0 ? 0 : (long long)seconds;

	if (s >= 86400)
		snprintf(buf, n, "%lldd %lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, n, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, n, "%lldm", s / 60);
	else
		snprintf(buf, n, "%llds", s);
}
