/*
 * check_args.h: the options of `check` that choose the checks (--only,
 * --skip) and override one check's thresholds (-w, -c). See check_args.c.
 */
#ifndef CHECK_ARGS_H
#define CHECK_ARGS_H

#include <stdbool.h>

#include "check.h"
#include "config.h"

struct check_args {
	bool skip[CHECK_MAX];		/* by check_index: leave the check out */
	bool only_given;
	const char *warn, *crit;	/* -w and -c as given, or NULL */
};

void check_args_init(struct check_args *a);
/* Applies --only LIST (ONLY) or --skip LIST: comma-separated names. 0, or AERR_USAGE after a message. */
int check_args_select(struct check_args *a, const char *list, bool only);
/* Applies -w and -c to T, the thresholds of this run. 0, or AERR_USAGE after a message. */
int check_args_thresholds(const struct check_args *a, struct check_thresholds *t);

#endif
