/* statusfile: the service's state and reload outcomes (see statusfile.h). */
#include "statusfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATUSFILE_MAX 4096

const char *
statusfile_dir(void)
{
	static char dir[PATH_MAX];
	const char *env = getenv("RUNTIME_DIRECTORY");

	if (env == NULL || env[0] != '/')
		return STATUSFILE_DEFAULT_DIR;
	/* Several RuntimeDirectory= entries come colon-separated. */
	snprintf(dir, sizeof(dir), "%.*s", (int)strcspn(env, ":"), env);
	return dir;
}

void
statusfile_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", statusfile_dir(), STATUSFILE_NAME);
}

static int
format(const struct statusfile *st, char *buf, size_t len)
{
	char msg[sizeof(st->message)];

	/* One line per key: a message never carries a newline. */
	snprintf(msg, sizeof(msg), "%s", st->message);
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return snprintf(buf, len,
			"pid=%ld\nstate=%s\nreload=%ld\nreload_done=%ld\nreload_result=%s\n"
			"reload_message=%s\n", (long)st->pid, st->state, st->reload,
			st->reload_done, st->result, msg);
}

int
statusfile_write(const struct statusfile *st, char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32], text[STATUSFILE_MAX];
	int n = format(st, text, sizeof(text)), fd;

	statusfile_path(path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	if (mkdir(statusfile_dir(), 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: mkdir: %s", statusfile_dir(), strerror(errno));
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0) {
		snprintf(err, errlen, "%s: open: %s", tmp, strerror(errno));
		return -1;
	}
	/* A failed close() has released fd all the same: it is not closed twice. */
	if (write(fd, text, (size_t)n) != n) {
		snprintf(err, errlen, "%s: write: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) < 0) {
		snprintf(err, errlen, "%s: close: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "%s: rename: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void
parse_line(struct statusfile *st, const char *key, const char *v)
{
	if (strcmp(key, "pid") == 0)
		st->pid = (pid_t)strtol(v, NULL, 10);
	else if (strcmp(key, "state") == 0)
		snprintf(st->state, sizeof(st->state), "%s", v);
	else if (strcmp(key, "reload") == 0)
		st->reload = strtol(v, NULL, 10);
	else if (strcmp(key, "reload_done") == 0)
		st->reload_done = strtol(v, NULL, 10);
	else if (strcmp(key, "reload_result") == 0)
		snprintf(st->result, sizeof(st->result), "%s", v);
	else if (strcmp(key, "reload_message") == 0)
		snprintf(st->message, sizeof(st->message), "%s", v);
}

int
statusfile_read(struct statusfile *st, char *err, size_t errlen)
{
	char path[PATH_MAX], text[STATUSFILE_MAX], *save = NULL;
	int fd, saved;
	ssize_t n;

	memset(st, 0, sizeof(*st));
	statusfile_path(path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    (n = read(fd, text, sizeof(text) - 1)) < 0) {
		saved = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	text[n] = '\0';
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (eq != NULL) {
			*eq = '\0';
			parse_line(st, line, eq + 1);
		}
	}
	if (st->pid <= 0) {
		snprintf(err, errlen, "%s: no pid in it", path);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

void
statusfile_remove(pid_t pid)
{
	struct statusfile st;
	char path[PATH_MAX], err[PATH_MAX + 64];

	statusfile_path(path, sizeof(path));
	if (statusfile_read(&st, err, sizeof(err)) == 0 && st.pid == pid)
		unlink(path);
}
