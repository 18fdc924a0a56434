/*
 * check_disk.c: the `disk` check: free space and inodes on the filesystem of
 * PostgreSQL's data directory, once it is sure that directory is this
 * server's and on this machine.
 */
#include "check_probe.h"
#include "db.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- disk ---- */

/* Is ADDR (text, as host(inet_server_addr()) prints it) one of this machine's addresses? */
static bool address_is_local(const char *addr)
{
	unsigned char want[16], have[16];
	struct ifaddrs *ifs, *i;
	bool v4, found = false;

	if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.') != NULL)
		addr += 7;
	v4 = inet_pton(AF_INET, addr, want) == 1;
	if (!v4 && inet_pton(AF_INET6, addr, want) != 1)
		return false;
	if (getifaddrs(&ifs) == -1)
		return false;
	for (i = ifs; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (v4 && i->ifa_addr->sa_family == AF_INET) {
			memcpy(have, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
			found = memcmp(want, have, 4) == 0;
		} else if (!v4 && i->ifa_addr->sa_family == AF_INET6) {
			memcpy(have, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, 16);
			found = memcmp(want, have, 16) == 0;
		}
	}
	freeifaddrs(ifs);
	return found;
}

/* Without a connection: is database.uri's host this machine? */
static bool uri_is_local(const char *uri, char **why)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(uri, &err), *o;
	const char *host = NULL, *hostaddr = NULL;
	bool local;

	if (opts == NULL) {
		*why = xasprintf("cannot parse database.uri: %s", err ? err : "out of memory");
		PQfreemem(err);
		return false;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
	}
	if (hostaddr != NULL && *hostaddr != '\0')
		host = hostaddr;
	local = host == NULL || *host == '\0' || host[0] == '/' || strcmp(host, "localhost") == 0 ||
		address_is_local(host);
	if (!local)
		*why = xasprintf("the database (%s) is on another host as far as database.uri says; "
				 "statvfs can only read a filesystem of this machine", host);
	PQconninfoFree(opts);
	return local;
}

/* The major version in DIR/PG_VERSION: >0, 0 when unreadable (errno set), -1 when absent. */
static int read_pg_version(const char *dir)
{
	char *path = xasprintf("%s/PG_VERSION", dir);
	FILE *f = fopen(path, "r");
	int major = 0;

	free(path);
	if (f == NULL)
		return errno == ENOENT ? -1 : 0;
	if (fscanf(f, "%d", &major) != 1)
		major = -1;
	fclose(f);
	return major;
}

/* With a connection: the server's address, version and (if visible) data directory against ours. */
static bool server_is_here(struct probe *p, struct check_result *r, const char *dir, char **why, char **note)
{
	PGresult *res = run_query(p, r, CHECK_UNKNOWN, "cannot read the server's address",
				  "SELECT host(inet_server_addr()), current_setting('server_version_num')::int, "
				  "(SELECT setting FROM pg_settings WHERE name = 'data_directory')", 0, NULL);
	int major, server_major;
	bool ok = true;

	if (res == NULL)
		return false;
	if (!PQgetisnull(res, 0, 0) && !address_is_local(get_str(res, 0, 0))) {
		*why = xasprintf("the database is on another host (its address %s is none of this machine's); "
				 "statvfs can only read a filesystem of this machine, so check disk space there",
				 get_str(res, 0, 0));
		PQclear(res);
		return false;
	}
	server_major = (int)get_num(res, 0, 1) >= 100000 ? (int)get_num(res, 0, 1) / 10000 : 0;
	if (!PQgetisnull(res, 0, 2)) {
		char *a = realpath(get_str(res, 0, 2), NULL), *b = realpath(dir, NULL);

		if (a == NULL || b == NULL || strcmp(a, b) != 0) {
			*why = xasprintf("the server's data directory is %s, not service.data_directory %s; fix the setting",
					 get_str(res, 0, 2), dir);
			ok = false;
		}
		free(a);
		free(b);
	}
	PQclear(res);
	major = read_pg_version(dir);
	if (ok && major > 0 && server_major > 0 && major != server_major) {
		*why = xasprintf("%s/PG_VERSION says %d but the server is PostgreSQL %d: service.data_directory is not "
				 "this server's data directory", dir, major, server_major);
		ok = false;
	} else if (ok && major < 0) {
		*why = xasprintf("%s holds no PG_VERSION: it is not a PostgreSQL data directory; fix "
				 "service.data_directory", dir);
		ok = false;
	} else if (major == 0) {
		*note = xstrdup(" (PG_VERSION not readable by this user, data directory not confirmed)");
	}
	return ok;
}

static void disk_verdict(struct probe *p, struct check_result *r, const char *dir, const char *note)
{
	const struct check_thresholds *t = &p->cfg->checks;
	struct statvfs sv;
	double free_pct, ino_pct = 100.0;
	char free_s[32], size_s[32];
	enum check_status st;

	if (statvfs(dir, &sv) == -1) {
		result_set(r, CHECK_UNKNOWN, "cannot statvfs %s: %s", dir, strerror(errno));
		return;
	}
	free_pct = sv.f_blocks ? (double)sv.f_bavail * 100.0 / (double)sv.f_blocks : 0.0;
	if (sv.f_files > 0)
		ino_pct = (double)sv.f_favail * 100.0 / (double)sv.f_files;
	sample_add(r, "disk_free_bytes", "Free bytes (for unprivileged users) on the data directory's filesystem.",
		   (double)sv.f_bavail * (double)sv.f_frsize);
	sample_add(r, "disk_size_bytes", "Size of the data directory's filesystem.",
		   (double)sv.f_blocks * (double)sv.f_frsize);
	sample_levels(sample_add(r, "disk_free_ratio", "Free space on the data directory's filesystem, 0 to 1.",
				 free_pct / 100.0), LEVELS_LOW, t->disk_free_warn_pct / 100.0, t->disk_free_crit_pct / 100.0);
	sample_levels(sample_add(r, "inodes_free_ratio", "Free inodes on the data directory's filesystem, 0 to 1.",
				 ino_pct / 100.0), LEVELS_LOW, t->inodes_free_warn_pct / 100.0, t->inodes_free_crit_pct / 100.0);
	st = worse(level_low(free_pct, t->disk_free_warn_pct, t->disk_free_crit_pct),
		   level_low(ino_pct, t->inodes_free_warn_pct, t->inodes_free_crit_pct));
	format_bytes(free_s, sizeof(free_s), (double)sv.f_bavail * (double)sv.f_frsize);
	format_bytes(size_s, sizeof(size_s), (double)sv.f_blocks * (double)sv.f_frsize);
	result_set(r, st, "%s: %s free of %s (%.1f%%), inodes %.1f%% free (warn below %d%%/%d%%, crit below %d%%/%d%%)%s",
		   dir, free_s, size_s, free_pct, ino_pct, t->disk_free_warn_pct, t->inodes_free_warn_pct,
		   t->disk_free_crit_pct, t->inodes_free_crit_pct, note);
}

/* The server's data_directory, when it shows it to this role (pg_read_all_settings); else NULL. */
static char *server_data_directory(struct probe *p)
{
	PGresult *res = PQexec(p->conn, "SELECT setting FROM pg_settings WHERE name = 'data_directory'");
	char *dir = NULL;

	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		dir = xstrdup(PQgetvalue(res, 0, 0));
	else if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		log_debug("cannot read data_directory from pg_settings: %s", PQerrorMessage(p->conn));
	PQclear(res);
	return dir;
}

void check_disk(struct probe *p, struct check_result *r)
{
	bool live = p->conn != NULL && !db_lost(p->conn);
	bool configured = p->cfg->data_directory[0] != '\0';
	char *dir, *why = NULL, *note = NULL;
	struct stat st;
	bool here;

	memset(&st, 0, sizeof(st));
	dir = configured ? xstrdup(p->cfg->data_directory) : live ? server_data_directory(p) : NULL;
	if (dir == NULL) {
		/* Nothing says where the data is: the check does not apply, which is no fault of the database. */
		result_skip(r, "the data directory is unknown: service.data_directory is not set%s; set it to "
			    "PostgreSQL's data directory to check free space", live ? ", and the server shows "
			    "data_directory only to roles with pg_read_all_settings" : "");
		return;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		if (configured)
			result_set(r, CHECK_UNKNOWN, "data directory %s is not a folder on this machine (%s): the "
				   "database is on another host, or service.data_directory is wrong", dir,
				   st.st_mode == 0 ? strerror(errno) : "not a folder");
		else
			result_skip(r, "the server's data directory %s is not on this machine: the database is on "
				    "another host, so check disk space there", dir);
		free(dir);
		return;
	}
	if (live)
		here = server_is_here(p, r, dir, &why, &note);
	else
		here = uri_is_local(p->cfg->uri, &why);
	if (here)
		disk_verdict(p, r, dir, note ? note : live ? "" : " (database unreachable: not confirmed)");
	else if (why != NULL && !configured)
		result_skip(r, "%s", why);
	else if (why != NULL)
		result_set(r, CHECK_UNKNOWN, "%s", why);
	free(why);
	free(note);
	free(dir);
}
