/*
 * prune_sql.c: the text of prune's statements (see prune_sql.h).
 *
 * keep-latest keeps, per thread and namespace, the newest checkpoint (newest
 * as the savers' getTuple orders: checkpoint_id DESC), its pending writes,
 * every blob its channel_versions name, and, for a checkpoint of format
 * v < 4, the __pregel_tasks writes of its parent (the savers rebuild its
 * pending sends from them). A thread is left whole ("delta") when a kept
 * checkpoint names a channel version whose value is not stored with it,
 * which is what LangGraph's DeltaChannel does (the value is replayed from
 * the thread's older writes). The three forms it has had in the Python
 * library (langchain-ai/langgraph, libs/checkpoint and checkpoint-postgres):
 *   - a checkpoint_blobs row of type 'delta' (its first form, PR 7586);
 *   - a 'msgpack' blob holding only the msgpack extension type 8, the
 *     delta sentinel (PR 7634);
 *   - today (PR 7676): nothing at all, no blob and no inline value, for a
 *     version that a step produced by writing to the channel. A channel
 *     version with no value and no write behind it is an emptied channel
 *     (EphemeralValue and the like), which is safe.
 * A _DeltaSnapshot (msgpack extension type 7, with an inline `true` marker)
 * holds the whole value: a checkpoint with one is safe to keep alone.
 */
#include "prune_sql.h"
#include "util.h"

#include <stdlib.h>

/*
 * NAME AS (DELETE FROM REL ALIAS USING FROM WHERE COND RETURNING BYTES AS b),
 * or for a dry run NAME AS (SELECT BYTES AS b FROM REL ALIAS, FROM WHERE COND).
 */
static void add_target(struct strbuf *sb, bool dry_run, const char *name, const char *schema, const char *table,
		       const char *alias, const char *from, const char *cond, const char *bytes)
{
	if (dry_run)
		sb_printf(sb, ", %s AS (SELECT %s AS b FROM %s.%s %s, %s WHERE %s)", name, bytes, schema, table, alias,
			  from, cond);
	else
		sb_printf(sb, ", %s AS (DELETE FROM %s.%s %s USING %s WHERE %s RETURNING %s AS b)", name, schema, table,
			  alias, from, cond, bytes);
}

static void add_totals(struct strbuf *sb, const char *const *names, int n)
{
	sb_add(sb, ", tot AS (SELECT ");
	for (int i = 0; i < n; i++)
		sb_printf(sb, "%s(SELECT count(*) FROM %s) AS %s_rows, (SELECT coalesce(sum(b), 0) FROM %s) AS %s_bytes",
			  i ? ", " : "", names[i], names[i], names[i], names[i]);
	sb_add(sb, ")");
}

/* The input and the re-check: a thread whose newest checkpoint is still the one decided on. */
static void add_candidates_langgraph(struct strbuf *sb, const char *schema)
{
	sb_printf(sb,
		"WITH input AS (SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(thread_id, newest, ord)),"
		" cand AS (SELECT i.thread_id FROM input i WHERE NOT EXISTS (SELECT 1 FROM %s.checkpoints c"
		"  WHERE c.thread_id = i.thread_id"
		"  AND (i.newest IS NULL OR c.checkpoint_id COLLATE \"C\" > i.newest COLLATE \"C\")))", schema);
}

/*
 * The kept checkpoints, and the threads a kept checkpoint makes unsafe to
 * trim (see the top). The blob lookup is a LATERAL with LIMIT so that it
 * stays one primary-key probe per channel (a plain join lets the planner
 * hash the whole blobs table).
 */
static void add_keep_langgraph(struct strbuf *sb, const char *schema)
{
	sb_printf(sb,
		", keep AS (SELECT DISTINCT ON (c.thread_id, c.checkpoint_ns) c.thread_id, c.checkpoint_ns,"
		"  c.checkpoint_id, c.parent_checkpoint_id,"
		"  CASE WHEN jsonb_typeof(c.checkpoint->'channel_versions') = 'object'"
		"   THEN c.checkpoint->'channel_versions' ELSE '{}' END AS versions,"
		"  CASE WHEN jsonb_typeof(c.checkpoint->'channel_values') = 'object'"
		"   THEN c.checkpoint->'channel_values' ELSE '{}' END AS inline_values,"
		"  coalesce(jsonb_typeof(c.checkpoint->'v') = 'number' AND (c.checkpoint->>'v')::numeric < 4, false)"
		"   AS old_format"
		"  FROM %s.checkpoints c JOIN cand USING (thread_id)"
		"  ORDER BY c.thread_id, c.checkpoint_ns, c.checkpoint_id DESC)"
		", delta AS (SELECT DISTINCT k.thread_id FROM keep k"
		"  CROSS JOIN LATERAL jsonb_each_text(k.versions) AS v(channel, version)"
		"  LEFT JOIN LATERAL (SELECT b.thread_id, b.type, b.blob FROM %s.checkpoint_blobs b"
		"   WHERE b.thread_id = k.thread_id AND b.checkpoint_ns = k.checkpoint_ns"
		"   AND b.channel = v.channel AND b.version = v.version LIMIT 1) b ON true"
		"  WHERE b.type = 'delta'"
		"  OR CASE WHEN b.type = 'msgpack' AND octet_length(b.blob) <= 16 THEN"
		"   (substring(b.blob FROM 1 FOR 1) IN ('\\xd4'::bytea, '\\xd5', '\\xd6', '\\xd7', '\\xd8')"
		"    AND substring(b.blob FROM 2 FOR 1) = '\\x08'::bytea)"
		"   OR (substring(b.blob FROM 1 FOR 1) = '\\xc7'::bytea AND substring(b.blob FROM 3 FOR 1) = '\\x08'::bytea)"
		"   ELSE false END"
		"  OR (NOT k.inline_values ? v.channel AND (b.thread_id IS NULL OR b.type = 'empty')"
		"   AND EXISTS (SELECT 1 FROM %s.checkpoints ch JOIN %s.checkpoint_writes w"
		"    ON w.thread_id = ch.thread_id AND w.checkpoint_ns = ch.checkpoint_ns"
		"    AND w.checkpoint_id = ch.parent_checkpoint_id AND w.channel = v.channel"
		"    WHERE ch.thread_id = k.thread_id AND ch.checkpoint_ns = k.checkpoint_ns"
		"    AND ch.checkpoint->'channel_versions'->>v.channel = v.version)))"
		", ok AS (SELECT thread_id FROM cand EXCEPT SELECT thread_id FROM delta)",
		schema, schema, schema, schema);
}

char *prune_sql_langgraph_batch(const char *schema, enum prune_strategy strategy, bool dry_run)
{
	static const char *const names[] = { "dc", "db", "dw" };
	struct strbuf sb;

	sb_init(&sb);
	add_candidates_langgraph(&sb, schema);
	if (strategy == PRUNE_DELETE) {
		add_target(&sb, dry_run, "dc", schema, "checkpoints", "c", "cand", "c.thread_id = cand.thread_id",
			   CP_BYTES);
		add_target(&sb, dry_run, "db", schema, "checkpoint_blobs", "b", "cand", "b.thread_id = cand.thread_id",
			   BL_BYTES);
		add_target(&sb, dry_run, "dw", schema, "checkpoint_writes", "w", "cand", "w.thread_id = cand.thread_id",
			   WR_BYTES);
		add_totals(&sb, names, 3);
		sb_add(&sb, " SELECT i.thread_id, CASE WHEN c.thread_id IS NULL THEN 'newer' ELSE 'pruned' END, tot.*"
			    " FROM input i LEFT JOIN cand c USING (thread_id) CROSS JOIN tot ORDER BY i.ord");
		return sb_detach(&sb);
	}
	add_keep_langgraph(&sb, schema);
	add_target(&sb, dry_run, "dc", schema, "checkpoints", "c", "ok",
		   "c.thread_id = ok.thread_id AND NOT EXISTS (SELECT 1 FROM keep k WHERE k.thread_id = c.thread_id"
		   " AND k.checkpoint_ns = c.checkpoint_ns AND k.checkpoint_id = c.checkpoint_id)", CP_BYTES);
	add_target(&sb, dry_run, "db", schema, "checkpoint_blobs", "b", "ok",
		   "b.thread_id = ok.thread_id AND NOT EXISTS (SELECT 1 FROM keep k WHERE k.thread_id = b.thread_id"
		   " AND k.checkpoint_ns = b.checkpoint_ns AND k.versions->>b.channel = b.version)", BL_BYTES);
	add_target(&sb, dry_run, "dw", schema, "checkpoint_writes", "w", "ok",
		   "w.thread_id = ok.thread_id AND NOT EXISTS (SELECT 1 FROM keep k WHERE k.thread_id = w.thread_id"
		   " AND ((k.checkpoint_ns = w.checkpoint_ns AND k.checkpoint_id = w.checkpoint_id)"
		   " OR (k.old_format AND w.channel = '__pregel_tasks' AND w.checkpoint_id = k.parent_checkpoint_id)))",
		   WR_BYTES);
	add_totals(&sb, names, 3);
	sb_add(&sb, " SELECT i.thread_id, CASE WHEN c.thread_id IS NULL THEN 'newer'"
		    " WHEN d.thread_id IS NOT NULL THEN 'delta' ELSE 'pruned' END, tot.*"
		    " FROM input i LEFT JOIN cand c USING (thread_id) LEFT JOIN delta d USING (thread_id) CROSS JOIN tot"
		    " ORDER BY i.ord");
	return sb_detach(&sb);
}

char *prune_sql_langgraph_arrivals(const char *schema, enum prune_strategy strategy)
{
	if (strategy == PRUNE_DELETE)
		return xasprintf("SELECT t.id FROM unnest($1::text[], $2::text[]) AS t(id, newest)"
				 " WHERE EXISTS (SELECT 1 FROM %s.checkpoints c WHERE c.thread_id = t.id)"
				 " OR EXISTS (SELECT 1 FROM %s.checkpoint_writes w WHERE w.thread_id = t.id)"
				 " OR EXISTS (SELECT 1 FROM %s.checkpoint_blobs b WHERE b.thread_id = t.id)",
				 schema, schema, schema);
	return xasprintf("SELECT t.id FROM unnest($1::text[], $2::text[]) AS t(id, newest)"
			 " WHERE EXISTS (SELECT 1 FROM %s.checkpoints c WHERE c.thread_id = t.id"
			 "  AND c.checkpoint_id COLLATE \"C\" > t.newest COLLATE \"C\")"
			 " OR EXISTS (SELECT 1 FROM %s.checkpoints c WHERE c.thread_id = t.id"
			 "  GROUP BY c.checkpoint_ns HAVING count(*) > 1)", schema, schema);
}

char *prune_sql_agentos_batch(const char *schema, enum prune_strategy strategy, bool dry_run)
{
	static const char *const names[] = { "da" };
	struct strbuf sb;

	sb_init(&sb);
	sb_printf(&sb,
		"WITH input AS (SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(thread_id, newest, ord)),"
		" cand AS (SELECT i.thread_id FROM input i WHERE NOT EXISTS (SELECT 1 FROM %s.checkpoints c"
		"  WHERE c.thread_id = i.thread_id AND (i.newest IS NULL OR c.id > i.newest::bigint)))", schema);
	if (strategy == PRUNE_DELETE) {
		add_target(&sb, dry_run, "da", schema, "checkpoints", "c", "cand", "c.thread_id = cand.thread_id",
			   AG_BYTES);
	} else {
		sb_printf(&sb, ", keep AS (SELECT DISTINCT ON (c.thread_id) c.id FROM %s.checkpoints c JOIN cand"
			       " USING (thread_id) ORDER BY c.thread_id, c.created_at DESC, c.id DESC)", schema);
		add_target(&sb, dry_run, "da", schema, "checkpoints", "c", "cand",
			   "c.thread_id = cand.thread_id AND c.id NOT IN (SELECT id FROM keep)", AG_BYTES);
	}
	add_totals(&sb, names, 1);
	sb_add(&sb, " SELECT i.thread_id, CASE WHEN c.thread_id IS NULL THEN 'newer' ELSE 'pruned' END, tot.*"
		    " FROM input i LEFT JOIN cand c USING (thread_id) CROSS JOIN tot ORDER BY i.ord");
	return sb_detach(&sb);
}

char *prune_sql_agentos_arrivals(const char *schema, enum prune_strategy strategy)
{
	if (strategy == PRUNE_DELETE)
		return xasprintf("SELECT t.id FROM unnest($1::text[], $2::text[]) AS t(id, newest)"
				 " WHERE EXISTS (SELECT 1 FROM %s.checkpoints c WHERE c.thread_id = t.id)", schema);
	return xasprintf("SELECT t.id FROM unnest($1::text[], $2::text[]) AS t(id, newest)"
			 " WHERE (SELECT count(*) > 1 OR max(c.id) > t.newest::bigint FROM %s.checkpoints c"
			 "  WHERE c.thread_id = t.id)", schema);
}

char *prune_sql_store_batch(const char *schema, bool dry_run)
{
#define ST_BYTES "pg_column_size(s.value) + octet_length(s.prefix) + octet_length(s.key) + 36"
	if (dry_run)
		return xasprintf("SELECT count(*), coalesce(sum(" ST_BYTES "), 0) FROM %s.store s"
				 " WHERE s.expires_at < now()", schema);
	return xasprintf("WITH d AS (DELETE FROM %s.store s USING (SELECT prefix, key FROM %s.store"
			 "  WHERE expires_at < now() ORDER BY expires_at LIMIT $1) x"
			 " WHERE s.prefix = x.prefix AND s.key = x.key AND s.expires_at < now()"
			 " RETURNING " ST_BYTES " AS b)"
			 " SELECT count(*), coalesce(sum(b), 0) FROM d", schema, schema);
#undef ST_BYTES
}
