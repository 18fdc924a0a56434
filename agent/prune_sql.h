/*
 * prune_sql.h: the statements of `prune`, one per batch and set. Each batch
 * statement re-checks, in its own snapshot, that no thread of the batch
 * received a checkpoint newer than the one the decision saw, and deletes
 * (or, for a dry run, counts) in one statement. It returns one row per
 * thread of the batch, in the order given: thread_id, status ("pruned",
 * "newer" or "delta"), then rows and bytes per table (the same on every
 * row):
 *
 *   langgraph  $1 thread ids, $2 their newest checkpoint_id (text[])
 *              -> checkpoints, checkpoint_blobs, checkpoint_writes
 *   agentos    $1 thread ids, $2 their greatest id
 *              -> checkpoints
 *
 * Bytes are the stored size of the rows' values (pg_column_size: as stored,
 * compressed, TOAST included), without tuple headers or index entries.
 */
#ifndef PRUNE_SQL_H
#define PRUNE_SQL_H

#include <stdbool.h>

/*
 * The stored size of a row of each table, for the aliases c (checkpoints),
 * b (checkpoint_blobs), w (checkpoint_writes), c (agentos checkpoints).
 */
#define CP_BYTES "pg_column_size(c.checkpoint) + pg_column_size(c.metadata) + octet_length(c.thread_id)" \
	" + octet_length(c.checkpoint_ns) + octet_length(c.checkpoint_id)" \
	" + coalesce(octet_length(c.parent_checkpoint_id), 0) + coalesce(octet_length(c.type), 0)"
#define BL_BYTES "coalesce(pg_column_size(b.blob), 0) + octet_length(b.thread_id) + octet_length(b.checkpoint_ns)" \
	" + octet_length(b.channel) + octet_length(b.version) + octet_length(b.type)"
#define WR_BYTES "pg_column_size(w.blob) + octet_length(w.thread_id) + octet_length(w.checkpoint_ns)" \
	" + octet_length(w.checkpoint_id) + octet_length(w.task_id) + octet_length(w.channel)" \
	" + coalesce(octet_length(w.type), 0) + 4"
#define AG_BYTES "pg_column_size(c.messages_blob) + pg_column_size(c.state_blob) + pg_column_size(c.tools_blob)" \
	" + pg_column_size(c.tags) + octet_length(c.summary) + octet_length(c.thread_id)" \
	" + octet_length(c.checkpoint_id) + coalesce(octet_length(c.parent_id), 0) + octet_length(c.next_node) + 20"

enum prune_strategy { PRUNE_DELETE, PRUNE_KEEP_LATEST };

/* SCHEMA is quoted already. The caller frees each result. */
char *prune_sql_langgraph_batch(const char *schema, enum prune_strategy strategy, bool dry_run);
char *prune_sql_agentos_batch(const char *schema, enum prune_strategy strategy, bool dry_run);

/*
 * After a batch, in its transaction: the threads of $1 (with $2 the newest
 * checkpoint the decision saw) that hold a row they should not: a
 * checkpoint, write or blob written since (a concurrent writer won).
 */
char *prune_sql_langgraph_arrivals(const char *schema, enum prune_strategy strategy);
char *prune_sql_agentos_arrivals(const char *schema, enum prune_strategy strategy);

/* Expired store rows: $1 rows at most; returns rows, bytes. Dry run: all of them. */
char *prune_sql_store_batch(const char *schema, bool dry_run);

#endif
