/*
 * human.h: numbers written for people in messages and reports.
 */
#ifndef HUMAN_H
#define HUMAN_H

#include <stddef.h>

/* "1,234,567" */
void human_count(long long v, char *buf, size_t n);
/* "12.3 MiB", "512 B" */
void human_bytes(double bytes, char *buf, size_t n);
/* A coarse age: "3d 4h", "2h 5m", "12m", "45s". */
void human_age(double seconds, char *buf, size_t n);

#endif
