/*
 * log.h: messages to stderr. When stderr is the journal (JOURNAL_STREAM names
 * it), every line starts with its syslog priority, "<3>" and so on, so that
 * journalctl -p filters them.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

void log_init(void);
void log_set_verbose(bool verbose);
bool log_to_journal(void);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
