/*
 * log.c: one line per message, to stderr. Each line of a multi-line message
 * carries the prefix, so the journal keeps their priority.
 */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

static bool journal;
static bool verbose;

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(2, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(void)
{
	journal = stderr_is_journal();
}

void log_set_verbose(bool v)
{
	verbose = v;
}

bool log_to_journal(void)
{
	return journal;
}

static void log_emit(int priority, const char *fmt, va_list ap)
{
	char *msg, *line, *save = NULL;

	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	for (line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (journal)
			fprintf(stderr, "<%d>%s\n", priority, line);
		else
			fprintf(stderr, "checkpoint-agent: %s\n", line);
	}
	fflush(stderr);
	free(msg);
}

#define LOG_FUNC(name, prio, cond)			\
	void name(const char *fmt, ...)			\
	{						\
		va_list ap;				\
		if (!(cond))				\
			return;				\
		va_start(ap, fmt);			\
		log_emit(prio, fmt, ap);		\
		va_end(ap);				\
	}

LOG_FUNC(log_error, LOG_ERR, true)
LOG_FUNC(log_warning, LOG_WARNING, true)
LOG_FUNC(log_notice, LOG_NOTICE, true)
LOG_FUNC(log_info, LOG_INFO, true)
LOG_FUNC(log_debug, LOG_DEBUG, verbose)
