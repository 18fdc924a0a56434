/*
 * walk.h: every thread of a checkpoint table, in thread_id order, a chunk
 * at a time, each with the time of its newest checkpoint. No full scan: a
 * loose index scan over the primary key visits each thread (and each of its
 * namespaces) with a few index probes, so walking 10,000 threads costs the
 * same whether they hold 10,000 checkpoints or 10 million. `prune` and
 * `usage` use it.
 */
#ifndef WALK_H
#define WALK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

enum walk_table {
	WALK_LANGGRAPH,		/* checkpoints (thread_id, checkpoint_ns, checkpoint_id) */
	WALK_AGENTOS		/* the agentos set's checkpoints (thread_id, created_at, id) */
};

struct walk_thread {
	char *thread_id;
	/*
	 * The newest checkpoint, the token a batch re-checks: LangGraph's
	 * greatest checkpoint_id over all namespaces (bytewise), agentos' greatest
	 * id. A later checkpoint always compares greater.
	 */
	char *newest;
	double newest_time;	/* Unix seconds; < 0 when no clock could be read */
	bool has_older;		/* some namespace holds more than one checkpoint (with need_older) */
	int namespaces;
};

struct walk {
	PGconn *conn;
	enum walk_table table;
	char *rel;		/* "schema"."checkpoints", quoted */
	int chunk;		/* rows a query reads */
	char *after_thread;	/* resume after this thread (NULL: from the start) */
	char *cursor_thread;	/* the last (thread, namespace) read */
	char *cursor_ns;
	bool done;
	struct walk_thread pending;	/* its namespaces may go on in the next chunk */
	bool have_pending;
	long long queries;
	char *error;		/* why the last query failed */
	bool need_older;	/* fill has_older (one more probe per namespace) */
};

/* AFTER: start after this thread_id (a sweep resuming), or NULL. */
/* 0, or -1 after logging when the schema's name cannot be quoted. */
int walk_init(struct walk *w, PGconn *conn, enum walk_table table, const char *schema, const char *after);
void walk_free(struct walk *w);

/*
 * Appends the next complete threads to *OUT (*N of them, *CAP allocated).
 * Returns 0; at the end w->done is set (and *N may be 0). Returns -1 when a
 * query fails, with the server's reason in w->error (not logged: a walk
 * cancelled by a stop is no error).
 */
int walk_next(struct walk *w, struct walk_thread **out, size_t *n, size_t *cap);

void walk_thread_clear(struct walk_thread *t);
void walk_threads_free(struct walk_thread *v, size_t n);

/*
 * The newest checkpoint of each thread in IDS (the --thread list), in the
 * same form; a thread without checkpoints has newest NULL. Returns 0 or -1.
 */
int walk_lookup(PGconn *conn, enum walk_table table, const char *schema, const char *const *ids, size_t nids,
		struct walk_thread **out, size_t *n);

/* A text[] literal of STRS (a NULL element is SQL NULL) for a query parameter (caller frees). */
char *pg_text_array(const char *const *strs, size_t n);

#endif
