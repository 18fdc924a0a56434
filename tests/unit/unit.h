/*
 * unit.h: the agent's C unit tests. Each test is a function; CHECK records a
 * failure with its line and goes on. run-unit prints one line per test and,
 * last, "unit: N passed, N failed", which tests/run.sh adds to the totals.
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

extern int unit_failures;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                                \
			unit_failures++;                                         \
		}                                                                \
	} while (0)

#define CHECK_STR(got, want)                                                     \
	do {                                                                     \
		const char *g_ = (got), *w_ = (want);                           \
		if (g_ == NULL || strcmp(g_, w_) != 0) {                         \
			fprintf(stderr, "  %s:%d: got \"%s\", want \"%s\"\n",     \
				__FILE__, __LINE__, g_ ? g_ : "(null)", w_);     \
			unit_failures++;                                         \
		}                                                                \
	} while (0)

struct unit_test {
	const char *name;
	void (*fn)(void);
};

/* Each test file exports its table. */
extern const struct unit_test sqlsplit_tests[];
extern const struct unit_test sets_tests[];
extern const struct unit_test config_backup_tests[];
extern const struct unit_test config_tests[];
extern const struct unit_test duration_tests[];

#endif
