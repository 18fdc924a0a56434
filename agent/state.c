/*
 * state.c: the state file, which keeps the previous size of every checkpoint
 * table so that the growth survives a restart, and atomic file writes.
 *
 * The file is text, one sample per line: BYTES <tab> UNIX-TIME <tab> KEY.
 * Lines that do not parse are skipped (and logged), so a damaged file costs
 * one growth figure, never the check.
 */
#include "check.h"
#include "config.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void state_free(struct size_state *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->items[i].key);
	free(st->items);
	st->items = NULL;
	st->n = st->cap = 0;
}

const struct size_sample *state_find(const struct size_state *st, const char *key)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->items[i].key, key) == 0)
			return &st->items[i];
	return NULL;
}

void state_put(struct size_state *st, const char *key, long long bytes, long long at)
{
	struct size_sample *s = (struct size_sample *)state_find(st, key);

	if (s != NULL && s->bytes == bytes && s->at == at)
		return;
	st->dirty = true;
	if (s == NULL) {
		if (st->n == st->cap) {
			st->cap = st->cap ? st->cap * 2 : 8;
			st->items = xrealloc(st->items, st->cap * sizeof(*st->items));
		}
		s = &st->items[st->n++];
		s->key = xstrdup(key);
	}
	s->bytes = bytes;
	s->at = at;
}

/* Makes DIR and its missing parents with MODE (like mkdir -p). 0, or -1 with errno set. */
static int make_dirs(const char *dir, mode_t mode)
{
	char *path = xstrdup(dir);
	int rc = 0;

	for (char *p = path + 1; rc == 0; p++) {
		bool end = *p == '\0';

		if (*p != '/' && !end)
			continue;
		*p = '\0';
		if (mkdir(path, mode) == -1 && errno != EEXIST)
			rc = -1;
		if (end)
			break;
		*p = '/';
	}
	free(path);
	return rc;
}

/* Can this user keep FILE: its folder made if missing, writable, and FILE readable if it exists? */
static bool state_place_usable(const char *file, mode_t mode, char **why)
{
	const char *slash = strrchr(file, '/');
	char *dir = slash == NULL ? xstrdup(".") : slash == file ? xstrdup("/") :
		    xasprintf("%.*s", (int)(slash - file), file);
	bool ok = true;

	if (access(dir, F_OK) == -1 && make_dirs(dir, mode) == -1) {
		*why = xasprintf("cannot create the folder %s: %s", dir, strerror(errno));
		ok = false;
	} else if (access(dir, W_OK | X_OK) == -1) {
		*why = xasprintf("this user may not write to %s: %s", dir, strerror(errno));
		ok = false;
	} else if (access(file, F_OK) == 0 && access(file, R_OK | W_OK) == -1) {
		*why = xasprintf("this user may not read and write %s: %s", file, strerror(errno));
		ok = false;
	}
	free(dir);
	return ok;
}

/* $XDG_STATE_HOME/checkpoint-agent/state, or ~/.local/state/...; NULL without a home. */
static char *user_state_file(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (xdg != NULL && xdg[0] == '/')
		return xasprintf("%s/checkpoint-agent/state", xdg);
	if (home == NULL || *home == '\0') {
		struct passwd *pw = getpwuid(getuid());

		home = pw ? pw->pw_dir : NULL;
	}
	return home != NULL && *home != '\0' ? xasprintf("%s/.local/state/checkpoint-agent/state", home) : NULL;
}

char *state_path_resolve(const char *configured, char **note, char **why)
{
	char *first = NULL, *second = NULL, *fallback;

	*note = NULL;
	*why = NULL;
	if (state_place_usable(configured, 0750, &first))
		return xstrdup(configured);
	if (strcmp(configured, CONFIG_DEFAULT_STATE_FILE) != 0) {
		*why = xasprintf("service.state_file %s cannot be kept: %s; fix the folder's owner or mode, or "
				 "the setting", configured, first);
		free(first);
		return NULL;
	}
	fallback = user_state_file();
	if (fallback != NULL && state_place_usable(fallback, 0700, &second)) {
		*note = xasprintf("state kept in %s, since %s", fallback, first);
		free(first);
		return fallback;
	}
	*why = xasprintf("no state file: %s, and %s", first,
			 second ? second : "this user has no home folder for ~/.local/state");
	free(first);
	free(second);
	free(fallback);
	return NULL;
}

/* "BYTES\tTIME\tKEY" into ST; false when the line is not one. */
static bool parse_line(char *line, struct size_state *st)
{
	char *end, *key;
	long long bytes, at;

	errno = 0;
	bytes = strtoll(line, &end, 10);
	if (errno != 0 || end == line || *end != '\t' || bytes < 0)
		return false;
	line = end + 1;
	at = strtoll(line, &end, 10);
	if (errno != 0 || end == line || *end != '\t')
		return false;
	key = end + 1;
	key[strcspn(key, "\r\n")] = '\0';
	if (*key == '\0')
		return false;
	state_put(st, key, bytes, at);
	return true;
}

int state_read(const char *path, struct size_state *st, char **why)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;

	*why = NULL;
	f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		*why = xasprintf("cannot read the state file %s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) != -1) {
		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (!parse_line(line, st))
			log_warning("%s:%u: not a size sample; line skipped", path, lineno);
	}
	if (ferror(f))
		*why = xasprintf("cannot read the state file %s: %s", path, strerror(errno));
	st->dirty = false;
	free(line);
	fclose(f);
	return *why ? -1 : 0;
}

/* Keys come from schema and table names; a newline or tab in one would break the format. */
static void add_key(struct strbuf *sb, const char *key)
{
	for (const char *p = key; *p; p++)
		sb_addn(sb, (*p == '\n' || *p == '\t' || *p == '\r') ? "?" : p, 1);
}

int state_write(const char *path, const struct size_state *st, char **why)
{
	struct strbuf sb;
	int rc;

	sb_init(&sb);
	sb_add(&sb, "# checkpoint-agent state: bytes, unix time, table; rewritten by every check\n");
	for (size_t i = 0; i < st->n; i++) {
		sb_printf(&sb, "%lld\t%lld\t", st->items[i].bytes, st->items[i].at);
		add_key(&sb, st->items[i].key);
		sb_add(&sb, "\n");
	}
	rc = write_file_atomic(path, sb.buf, sb.len, 0644, why);
	sb_free(&sb);
	return rc;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync of the folder holding PATH, so that the rename itself survives a crash. */
static int sync_folder(const char *path, char **why)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL ? xstrdup(".") : slash == path ? xstrdup("/") :
		    xasprintf("%.*s", (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd == -1 || fsync(fd) == -1) {
		*why = xasprintf("cannot sync the folder %s after replacing %s: %s", dir, path, strerror(errno));
		rc = -1;
	}
	if (fd != -1)
		close(fd);
	free(dir);
	return rc;
}

int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode, char **why)
{
	const char *slash = strrchr(path, '/');
	char *tmp;
	int fd, saved;

	*why = NULL;
	/* A dot name: node_exporter's textfile collector reads only *.prom, so it never sees the temporary file. */
	if (slash == NULL)
		tmp = xasprintf(".%s.XXXXXX", path);
	else
		tmp = xasprintf("%.*s/.%s.XXXXXX", (int)(slash - path), path, slash + 1);
	fd = mkstemp(tmp);
	if (fd == -1) {
		*why = xasprintf("cannot create a temporary file next to %s: %s; check that the folder "
				 "exists and that this user may write to it", path, strerror(errno));
		free(tmp);
		return -1;
	}
	if (write_all(fd, data, len) == -1 || fchmod(fd, mode) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		unlink(tmp);
		*why = xasprintf("cannot write %s: %s", tmp, strerror(saved));
		free(tmp);
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		saved = errno;
		unlink(tmp);
		*why = xasprintf("cannot replace %s: %s", path, strerror(saved));
		free(tmp);
		return -1;
	}
	free(tmp);
	return sync_folder(path, why);
}
