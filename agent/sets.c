/*
 * sets.c: the catalogue of migration sets. Versions are contiguous from 0 to
 * the highest file present; the build refuses gaps (see set_latest's check
 * in the unit tests).
 */
#include "sets.h"

#include <stdio.h>
#include <string.h>

static const char *const langgraph_tables[] = {
	"checkpoints", "checkpoint_blobs", "checkpoint_writes", NULL
};
static const char *const store_tables[] = { "store", NULL };
static const char *const agentos_tables[] = { "checkpoints", NULL };
static const char *const agent_tables[] = { "ledger", "heartbeat", NULL };

static const struct set_def sets[] = {
	{ "langgraph", "checkpoint_migrations", SCHEMA_LANGGRAPH, langgraph_tables, true },
	{ "langgraph-store", "store_migrations", SCHEMA_LANGGRAPH, store_tables, true },
	{ "agentos", "agentos_migrations", SCHEMA_AGENTOS, agentos_tables, false },
};

const struct set_def agent_set = { "agent", "agent_migrations", SCHEMA_AGENT, agent_tables, false };

const struct set_def *set_find(const char *name)
{
	if (strcmp(name, agent_set.name) == 0)
		return &agent_set;
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
		if (strcmp(sets[i].name, name) == 0)
			return &sets[i];
	return NULL;
}

const char *set_schema_name(const struct set_def *set, const struct config *cfg)
{
	switch (set->schema) {
	case SCHEMA_LANGGRAPH: return cfg->schema;
	case SCHEMA_AGENTOS: return cfg->agentos_schema;
	case SCHEMA_AGENT: return cfg->agent_schema;
	}
	return cfg->schema;
}

int set_latest(const struct set_def *set)
{
	int latest = -1;

	for (size_t i = 0; i < sql_files_count; i++)
		if (strcmp(sql_files[i].set, set->name) == 0 && sql_files[i].version > latest)
			latest = sql_files[i].version;
	return latest;
}

const struct sql_file *set_file(const struct set_def *set, int version, bool up)
{
	const char *dir = up ? "up" : "down";

	for (size_t i = 0; i < sql_files_count; i++)
		if (strcmp(sql_files[i].set, set->name) == 0 && sql_files[i].version == version &&
		    strcmp(sql_files[i].direction, dir) == 0)
			return &sql_files[i];
	return NULL;
}

bool sql_file_checksum_matches(const struct sql_file *f, const char *sum)
{
	char path[256];

	if (strcmp(f->sha256, sum) == 0)
		return true;
	snprintf(path, sizeof(path), "%s/%04d_%s.%s.sql", f->set, f->version, f->name, f->direction);
	for (const struct sql_superseded *s = sql_superseded; s->path != NULL; s++)
		if (strcmp(s->path, path) == 0 && strcmp(s->sha256, sum) == 0)
			return true;
	return false;
}
