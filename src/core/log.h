/* log: one line per message on stderr, with a journald "<N>" priority prefix
 * when stderr is not a terminal, and the process role ("supervisor",
 * "worker 1234") in front. */
#ifndef T2I_LOG_H
#define T2I_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

enum { LOG_LVL_ERR = 3, LOG_LVL_WARNING = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_init(const char *role, int verbose);
void log_set_role(const char *role);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_warnx(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_errx(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)

/* Appends ": strerror(errno)". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
