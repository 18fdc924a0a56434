/*
 * duration.h: durations as people write them ("30d", "12h", "90m"), for
 * prune's --older-than and the retention settings; and the two clocks a
 * checkpoint's age is read from (its UUIDv6 id and its ISO 8601 "ts").
 */
#ifndef DURATION_H
#define DURATION_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Parses one whole number and one unit: s, m, h, d or w ("90m", "30d").
 * Returns 0 and the seconds, or -1 for anything else (a sign, a fraction,
 * no unit, a number too large).
 */
int duration_parse(const char *s, long long *seconds);

/* SECONDS written back in the largest unit that divides it: "30d", "90m", "45s". */
void duration_format(long long seconds, char *buf, size_t n);

/*
 * The time in a version 6 UUID (RFC 9562), as Unix seconds. LangGraph's
 * savers make every checkpoint_id one. False when S is not a v6 UUID.
 */
bool uuid6_time(const char *s, double *unix_seconds);

/*
 * An ISO 8601 date and time, "2026-03-01T12:00:00.123456+00:00" or
 * "...Z", as Unix seconds (no zone: UTC). False when S is not one.
 */
bool iso8601_time(const char *s, double *unix_seconds);

#endif
