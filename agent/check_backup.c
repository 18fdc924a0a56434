/*
 * check_backup.c: the `backup` check. Four findings, the worst one wins:
 *   - the newest good pgBackRest backup's age against the schedule
 *     (backup.interval_hours; WARNING past backup_age_warn_pct of it,
 *     CRITICAL past backup_age_crit_pct), read from pgBackRest's own
 *     `info --output=json`, which the backup units write to backup.info_file
 *     after every run (the agent needs no access to the repository nor its
 *     passphrase);
 *   - WAL archiving, from pg_stat_archiver: archive_mode off, or failures since
 *     the last success, are CRITICAL; finished segments waiting for the archive
 *     are WARNING/CRITICAL by the age of the last archived one;
 *   - the repository on the data directory's file system: WARNING;
 *   - the last restore drill (backup.drill_file, written by restore.sh
 *     --drill): failed is CRITICAL, older than drill_age_warn_days WARNING.
 * With backup.info_file empty, backups are not configured: the check says
 * so, and is OK.
 */
#include "check_probe.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct backup_run {
	enum check_status status;
	struct strbuf msg;
	long long now;
};

static void note(struct backup_run *br, enum check_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Adds one finding to the message, and its level to the check's. */
static void note(struct backup_run *br, enum check_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	finding_vadd(&br->status, &br->msg, st, fmt, ap);
	va_end(ap);
}

/* "3h 20m", "2d 4h", "45 s": an age for a person. */
static void format_age(char *buf, size_t n, long long s)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, n, "%lld s", s);
	else if (s < 7200)
		snprintf(buf, n, "%lld min", s / 60);
	else if (s < 172800)
		snprintf(buf, n, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, n, "%lldd %lldh", s / 86400, s % 86400 / 3600);
}

/* A member of OBJ by a path of keys ("a", "b" for obj.a.b), or NULL. */
static json_object *jget(json_object *obj, const char *k1, const char *k2)
{
	json_object *v = NULL, *w = NULL;

	if (obj == NULL || !json_object_object_get_ex(obj, k1, &v))
		return NULL;
	if (k2 == NULL)
		return v;
	return json_object_object_get_ex(v, k2, &w) ? w : NULL;
}

/*
 * Reads and parses a JSON file. Returns NULL with *WHY set (caller frees) when
 * it is unreadable or not JSON; *MISSING says it does not exist. *MTIME is
 * its modification time.
 */
static json_object *read_json(const char *path, bool *missing, long long *mtime, char **why)
{
	struct stat st;
	json_object *obj;

	*missing = false;
	if (stat(path, &st) == -1) {
		*missing = errno == ENOENT;
		*why = xasprintf("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	*mtime = (long long)st.st_mtime;
	obj = json_object_from_file(path);
	if (obj == NULL)
		*why = xasprintf("cannot read %s: %s", path, json_util_get_last_err() ? json_util_get_last_err() :
				 "not JSON");
	return obj;
}

/* The stanza's object in pgBackRest's info array: the configured name, else the only one. */
static json_object *find_stanza(json_object *info, const char *name)
{
	size_t n;

	if (!json_object_is_type(info, json_type_array))
		return NULL;
	n = json_object_array_length(info);
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(info, i);
		const char *sn = json_object_get_string(jget(s, "name", NULL));

		if ((name[0] == '\0' && n == 1) || (sn != NULL && strcmp(sn, name) == 0))
			return s;
	}
	return NULL;
}

/* The newest backup without errors in the stanza's list (oldest first), or NULL. */
static json_object *newest_good_backup(json_object *stanza, int *count)
{
	json_object *list = jget(stanza, "backup", NULL), *best = NULL;
	size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;

	*count = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *b = json_object_array_get_idx(list, i);

		if (json_object_get_boolean(jget(b, "error", NULL)))
			continue;
		(*count)++;
		best = b;
	}
	return best;
}

/* The newest backup's age against the schedule. */
static void backup_age(struct probe *p, struct check_result *r, struct backup_run *br)
{
	const struct config *cfg = p->cfg;
	const struct check_thresholds *t = &cfg->checks;
	json_object *info, *stanza, *newest;
	char *why = NULL, age_s[32], size_s[32], file_age_s[32];
	bool missing;
	long long mtime = 0, stop, age, interval = (long long)cfg->backup_interval_hours * 3600;
	long long code, size;
	int count;

	info = read_json(cfg->backup_info_file, &missing, &mtime, &why);
	if (info == NULL) {
		note(br, CHECK_CRITICAL, "%s%s", why, missing ? " (the backup units write it after every backup: "
		     "has none run? systemctl list-timers 'checkpoint-backup-*')" : "");
		free(why);
		return;
	}
	stanza = find_stanza(info, cfg->backup_stanza);
	if (stanza == NULL) {
		note(br, CHECK_CRITICAL, "%s has no stanza \"%s\"", cfg->backup_info_file, cfg->backup_stanza);
		json_object_put(info);
		return;
	}
	code = json_object_get_int64(jget(stanza, "status", "code"));
	newest = newest_good_backup(stanza, &count);
	format_age(file_age_s, sizeof(file_age_s), br->now - mtime);
	sample_add(r, "backup_count", "Backups without errors in the pgBackRest repository.", count);
	if (newest == NULL || (code != 0 && code != 2)) {
		note(br, CHECK_CRITICAL, "pgBackRest stanza %s: %s (status %lld, as of %s ago)%s",
		     json_object_get_string(jget(stanza, "name", NULL)),
		     json_object_get_string(jget(jget(stanza, "status", NULL), "message", NULL)), code, file_age_s,
		     newest == NULL ? ": there is no usable backup" : "");
		json_object_put(info);
		return;
	}
	stop = json_object_get_int64(jget(newest, "timestamp", "stop"));
	size = json_object_get_int64(jget(jget(jget(newest, "info", NULL), "repository", NULL), "size", NULL));
	age = br->now - stop;
	format_age(age_s, sizeof(age_s), age);
	format_bytes(size_s, sizeof(size_s), (double)size);
	sample_add(r, "backup_last_age_seconds", "Age of the newest good backup (since it ended).", (double)age);
	sample_add(r, "backup_last_repo_size_bytes", "Size in the repository of the newest backup.", (double)size);
	note(br, level_high((double)age, (double)interval * t->backup_age_warn_pct / 100.0,
			    (double)interval * t->backup_age_crit_pct / 100.0),
	     "newest backup %s (%s, %s) ended %s ago (schedule every %dh: warn past %lldh, crit past %lldh)",
	     json_object_get_string(jget(newest, "label", NULL)), json_object_get_string(jget(newest, "type", NULL)),
	     size_s, age_s, cfg->backup_interval_hours, interval * t->backup_age_warn_pct / 100 / 3600,
	     interval * t->backup_age_crit_pct / 100 / 3600);
	json_object_put(info);
}

/* A WAL file name's segment number, or -1 when NAME is not one (a .history file, a .partial). */
static long long wal_segno(const char *name, long long seg_size)
{
	char log[9], seg[9];

	if (name == NULL || strlen(name) != 24 || strspn(name, "0123456789ABCDEF") != 24 || seg_size <= 0)
		return -1;
	memcpy(log, name + 8, 8);
	memcpy(seg, name + 16, 8);
	log[8] = seg[8] = '\0';
	return strtoll(log, NULL, 16) * (0x100000000LL / seg_size) + strtoll(seg, NULL, 16);
}

/* WAL archiving, from pg_stat_archiver. */
static void archiving(struct probe *p, struct check_result *r, struct backup_run *br)
{
	const struct check_thresholds *t = &p->cfg->checks;
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read pg_stat_archiver",
				  "SELECT current_setting('archive_mode'), a.failed_count, "
				  "extract(epoch FROM now() - a.last_archived_time)::bigint, a.last_failed_wal, "
				  "a.last_failed_time IS NOT NULL AND (a.last_archived_time IS NULL "
				  "  OR a.last_failed_time > a.last_archived_time), "
				  "a.last_archived_wal, CASE WHEN pg_is_in_recovery() THEN NULL "
				  "  ELSE pg_walfile_name(pg_current_wal_lsn()) END, "
				  "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), "
				  "extract(epoch FROM now() - a.last_failed_time)::bigint "
				  "FROM pg_stat_archiver a", 0, NULL);
	long long last, cur, waiting = 0, age;
	char age_s[32];

	if (res == NULL)
		return;
	sample_add(r, "wal_archive_failed_total", "WAL segments the archiver failed to archive, since the "
		   "statistics were reset.", get_num(res, 0, 1));
	sample_add(r, "wal_archive_failing", "1 when the last archiving attempt failed.",
		   strcmp(get_str(res, 0, 4), "t") == 0 ? 1 : 0);
	if (strcmp(get_str(res, 0, 0), "off") == 0) {
		note(br, CHECK_CRITICAL, "archive_mode is off: no WAL archive, so no point-in-time recovery");
		PQclear(res);
		return;
	}
	if (strcmp(get_str(res, 0, 4), "t") == 0) {
		format_age(age_s, sizeof(age_s), (long long)get_num(res, 0, 8));
		note(br, CHECK_CRITICAL, "WAL archiving FAILS: %s failed %s ago with no success since (%.0f failures "
		     "in all); see the PostgreSQL log and /var/log/pgbackrest", get_str(res, 0, 3), age_s,
		     get_num(res, 0, 1));
		PQclear(res);
		return;
	}
	last = wal_segno(get_str(res, 0, 5), (long long)get_num(res, 0, 7));
	cur = wal_segno(get_str(res, 0, 6), (long long)get_num(res, 0, 7));
	if (last >= 0 && cur > last + 1)
		waiting = cur - last - 1;
	sample_add(r, "wal_archive_waiting_segments", "Finished WAL segments newer than the last archived one.",
		   (double)waiting);
	if (PQgetisnull(res, 0, 2)) {
		note(br, CHECK_OK, "WAL archive: nothing archived yet");
		PQclear(res);
		return;
	}
	age = (long long)get_num(res, 0, 2);
	sample_add(r, "wal_archive_last_age_seconds", "Seconds since the last WAL segment was archived.", (double)age);
	format_age(age_s, sizeof(age_s), age);
	if (waiting > 0)
		note(br, level_high((double)age, t->archive_age_warn_s, t->archive_age_crit_s),
		     "WAL archive: %lld finished segment(s) wait, the last was archived %s ago", waiting, age_s);
	else
		note(br, CHECK_OK, "WAL archive: last segment %s ago, none waiting", age_s);
	PQclear(res);
}

/* The data directory: the configured one, else the server's (visible to privileged roles only). */
static char *data_directory(struct probe *p, struct check_result *r)
{
	PGresult *res;
	char *dir = NULL;

	if (p->cfg->data_directory[0] != '\0')
		return xstrdup(p->cfg->data_directory);
	res = run_query(p, r, CHECK_UNKNOWN, "cannot read the data directory",
			"SELECT setting FROM pg_settings WHERE name = 'data_directory'", 0, NULL);
	if (res != NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		dir = xstrdup(get_str(res, 0, 0));
	PQclear(res);
	return dir;
}

/* The repository on the data's file system. */
static void repository_place(struct probe *p, struct check_result *r, struct backup_run *br)
{
	const char *repo = p->cfg->backup_repo_path;
	struct stat rs, ds;
	char *dir;

	if (repo[0] == '\0')
		return;
	if (stat(repo, &rs) == -1) {
		note(br, CHECK_WARNING, "cannot see the repository %s: %s", repo, strerror(errno));
		return;
	}
	dir = data_directory(p, r);
	if (dir == NULL || r->status != CHECK_OK) {
		free(dir);
		return;
	}
	if (stat(dir, &ds) == -1) {
		note(br, CHECK_OK, "cannot compare the repository's file system with the data's: %s: %s", dir,
		     strerror(errno));
	} else {
		sample_add(r, "backup_repo_on_data_filesystem", "1 when the backup repository is on the data "
			   "directory's file system.", rs.st_dev == ds.st_dev ? 1 : 0);
		if (rs.st_dev == ds.st_dev)
			note(br, CHECK_WARNING, "the repository %s is on the data directory's file system: it survives "
			     "a DROP TABLE, not a dead disk; move it to another disk", repo);
	}
	free(dir);
}

/* The last restore drill. */
static void drill(struct probe *p, struct check_result *r, struct backup_run *br)
{
	const char *path = p->cfg->backup_drill_file;
	json_object *d;
	bool missing;
	long long mtime = 0, at, age;
	char *why = NULL, age_s[32];
	const char *result, *message;

	if (path[0] == '\0')
		return;
	d = read_json(path, &missing, &mtime, &why);
	if (d == NULL) {
		note(br, missing ? CHECK_OK : CHECK_WARNING, "%s", missing ? "no restore drill has run yet" : why);
		free(why);
		return;
	}
	result = json_object_get_string(jget(d, "result", NULL));
	message = json_object_get_string(jget(d, "message", NULL));
	at = json_object_get_int64(jget(d, "finished_at", NULL));
	age = br->now - at;
	format_age(age_s, sizeof(age_s), age);
	sample_add(r, "restore_drill_ok", "1 when the last restore drill succeeded.",
		   result && strcmp(result, "ok") == 0 ? 1 : 0);
	sample_add(r, "restore_drill_age_seconds", "Seconds since the last restore drill ended.", (double)age);
	sample_add(r, "restore_drill_restore_seconds", "How long the last drill's restore and recovery took.",
		   json_object_get_double(jget(d, "restore_seconds", NULL)));
	if (result == NULL || strcmp(result, "ok") != 0)
		note(br, CHECK_CRITICAL, "the last restore drill FAILED %s ago: %s (sudo %s has the details)", age_s,
		     message ? message : "no message", path);
	else
		note(br, level_high((double)age, p->cfg->checks.drill_age_warn_days * 86400.0, 1e18),
		     "restore drill OK %s ago (%s)", age_s, message ? message : "");
	json_object_put(d);
}

void check_backup(struct probe *p, struct check_result *r)
{
	struct backup_run br;

	if (p->cfg->backup_info_file[0] == '\0') {
		sample_add(r, "backup_configured", "1 when backups are configured (backup.info_file is set).", 0);
		result_set(r, CHECK_OK, "backups are not configured (backup.info_file is empty): no backup and no "
			   "point-in-time recovery for this database");
		return;
	}
	sample_add(r, "backup_configured", "1 when backups are configured (backup.info_file is set).", 1);
	memset(&br, 0, sizeof(br));
	sb_init(&br.msg);
	br.status = CHECK_OK;
	br.now = (long long)time(NULL);
	backup_age(p, r, &br);
	if (r->status == CHECK_OK)
		archiving(p, r, &br);
	if (r->status == CHECK_OK)
		repository_place(p, r, &br);
	if (r->status == CHECK_OK)
		drill(p, r, &br);
	if (r->status == CHECK_OK)
		result_set(r, br.status, "%s", br.msg.buf);
	sb_free(&br.msg);
}
