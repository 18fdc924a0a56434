/*
 * main.c: runs every unit test table and prints the totals.
 */
#include "unit.h"

int unit_failures;

static void run_table(const struct unit_test *t, int *passed, int *failed)
{
	for (; t->name != NULL; t++) {
		int before = unit_failures;

		t->fn();
		if (unit_failures == before) {
			printf("ok     %s\n", t->name);
			(*passed)++;
		} else {
			printf("FAILED %s\n", t->name);
			(*failed)++;
		}
	}
}

int main(void)
{
	int passed = 0, failed = 0;

	run_table(sqlsplit_tests, &passed, &failed);
	run_table(sets_tests, &passed, &failed);
	run_table(config_tests, &passed, &failed);
	run_table(duration_tests, &passed, &failed);
	run_table(config_backup_tests, &passed, &failed);
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
