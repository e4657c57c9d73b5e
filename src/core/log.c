/* log: stderr logging with journald priority prefixes.  A line is written
 * with one write() so that lines of the supervisor and its workers, which
 * share stderr, never interleave inside a line. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char log_role[48] = "t2istage";
static int log_verbose;
static int log_prefix = -1;	/* -1: not yet decided */

void
log_init(const char *role, int verbose)
{
	log_set_role(role);
	log_verbose = verbose;
	/* systemd reads "<N>" prefixes; people at a terminal do not want them. */
	log_prefix = !isatty(STDERR_FILENO) || getenv("JOURNAL_STREAM") != NULL;
}

void
log_set_role(const char *role)
{
	snprintf(log_role, sizeof(log_role), "%s", role);
}

static void
log_write(int level, const char *fmt, va_list ap, const char *suffix)
{
	char line[2048];
	size_t n = 0;
	int r;

	if (level == LOG_LVL_DEBUG && !log_verbose)
		return;
	if (log_prefix < 0)
		log_prefix = !isatty(STDERR_FILENO);
	if (log_prefix)
		n = (size_t)snprintf(line, sizeof(line), "<%d>", level);
	r = snprintf(line + n, sizeof(line) - n, "t2istage[%s]: ", log_role);
	if (r > 0)
		n += (size_t)r;
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (suffix != NULL && n < sizeof(line)) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", suffix);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* One line per message: embedded newlines would forge log lines. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_write(level, fmt, ap, NULL);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_write(LOG_LVL_WARNING, fmt, ap, strerror(saved));
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_write(LOG_LVL_ERR, fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_write(LOG_LVL_ERR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
