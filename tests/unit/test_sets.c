/*
 * test_sets.c: the embedded migration sets are complete: every version from
 * 0 to the latest has an up and a down file, and the numbering is
 * LangGraph's.
 */
#include "sets.h"
#include "unit.h"

static void every_version_has_both_files(void)
{
	const char *names[] = { "agent", "langgraph", "langgraph-store", "agentos" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct set_def *s = set_find(names[i]);

		CHECK(s != NULL);
		if (s == NULL)
			continue;
		for (int v = 0; v <= set_latest(s); v++) {
			if (set_file(s, v, true) == NULL || set_file(s, v, false) == NULL) {
				fprintf(stderr, "  %s v%d lacks a file\n", names[i], v);
				unit_failures++;
			}
		}
	}
}

static void langgraph_numbering(void)
{
	CHECK(set_latest(set_find("langgraph")) == 9);
	CHECK(set_latest(set_find("langgraph-store")) == 3);
	CHECK_STR(set_find("langgraph")->version_table, "checkpoint_migrations");
	CHECK_STR(set_find("langgraph-store")->version_table, "store_migrations");
	CHECK(set_find("nonsense") == NULL);
}

static void checksums_look_like_sha256(void)
{
	for (size_t i = 0; i < sql_files_count; i++) {
		size_t n = strlen(sql_files[i].sha256);

		CHECK(n == 64);
		CHECK(strspn(sql_files[i].sha256, "0123456789abcdef") == 64);
	}
}

/* A file's earlier checksum from sql/superseded.sha256 is not drift; any other is. */
static void superseded_checksums_are_not_drift(void)
{
	const struct sql_file *f = set_file(set_find("langgraph"), 6, true);

	CHECK(f != NULL);
	if (f == NULL)
		return;
	CHECK(sql_file_checksum_matches(f, f->sha256));
	CHECK(sql_file_checksum_matches(f, "acadc97d2d3b881c4704c2ac1b2b9f426fea4536ecdb2342fceb483fb22709f3"));
	CHECK(!sql_file_checksum_matches(f, "9c0c17312f89346e15c2fa9ff10641713779f4f4c2ec9c07e9a905b9624e5317"));
	CHECK(!sql_file_checksum_matches(f, "0000000000000000000000000000000000000000000000000000000000000000"));
}

const struct unit_test sets_tests[] = {
	{ "sets: superseded checksums are not drift", superseded_checksums_are_not_drift },
	{ "sets: up and down file for every version", every_version_has_both_files },
	{ "sets: LangGraph numbering", langgraph_numbering },
	{ "sets: checksums", checksums_look_like_sha256 },
	{ NULL, NULL }
};
