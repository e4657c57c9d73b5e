/* hooksend: starting the webhook sender and talking to it (the
 * supervisor's side; the process itself is hooksend_proc.c). */
#include "hooksend.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "jsontext.h"

/* posix_spawn() of /proc/self/exe with the socket as stdin and stdout,
 * every signal unblocked and those the supervisor takes for itself back to
 * their defaults. */
static pid_t
spawn(int fd, const char *conf_path)
{
	char exe[PATH_MAX], parent[24];
	const char *argv[6];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defaults;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int argc = 0, rc;
	pid_t pid = -1;

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	snprintf(parent, sizeof(parent), "%ld", (long)getpid());
	argv[argc++] = exe;
	if (conf_path != NULL) {
		argv[argc++] = "-c";
		argv[argc++] = conf_path;
	}
	argv[argc++] = HOOKSEND_COMMAND;
	argv[argc++] = parent;
	argv[argc] = NULL;
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGCHLD);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGHUP);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 0);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	rc = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return pid;
}

int
hooksend_start(struct hooksend *h, const char *conf_path)
{
	int sv[2];

	memset(h, 0, sizeof(*h));
	h->fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if ((h->pid = spawn(sv[1], conf_path)) < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		h->pid = 0;
		errno = e;
		return -1;
	}
	close(sv[1]);
	h->fd = sv[0];
	(void)ipc_set_nonblock(h->fd);
	return 0;
}

int
hooksend_queue(struct hooksend *h, const struct hooksend_request *rq)
{
	json_t *hdrs = json_array(), *doc;
	char *line;
	int rc;

	for (size_t i = 0; hdrs != NULL && i < rq->nheaders; i++)
		json_array_append_new(hdrs, json_string(rq->headers[i]));
	doc = json_pack("{sI ss so ss% sf sf}", "tag", (json_int_t)rq->tag, "url", rq->url,
			"headers", hdrs, "body", rq->body, rq->body_len, "connect_timeout",
			rq->connect_timeout, "timeout", rq->timeout);
	line = doc != NULL ? jsontext_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (line == NULL)
		return -1;
	rc = ipc_queue(&h->wr, line, strlen(line));
	if (rc == 0)
		rc = ipc_queue(&h->wr, "\n", 1);
	free(line);
	return rc;
}

int
hooksend_flush(struct hooksend *h)
{
	return ipc_flush(&h->wr, h->fd);
}

int
hooksend_read(struct hooksend *h)
{
	h->rd.max = HOOKSEND_LINE_MAX;
	return ipc_read(&h->rd, h->fd);
}

int
hooksend_next(struct hooksend *h, struct hooksend_answer *a)
{
	const char *kind = "", *error = "";
	json_int_t tag, status;
	json_error_t je;
	json_t *doc;
	char *line;
	size_t len;
	int rc = ipc_next_line(&h->rd, &line, &len);

	if (rc == IPC_AGAIN)
		return 0;
	if (rc != IPC_LINE)
		return -1;
	if ((doc = json_loadb(line, len, 0, &je)) == NULL ||
	    json_unpack_ex(doc, &je, JSON_STRICT, "{sI sI s?s s?s}", "tag", &tag, "status",
			   &status, "kind", &kind, "error", &error) < 0 || tag < 0) {
		json_decref(doc);
		return -1;
	}
	memset(a, 0, sizeof(*a));
	a->tag = (unsigned long long)tag;
	a->status = (long)status;
	snprintf(a->kind, sizeof(a->kind), "%s", kind);
	snprintf(a->error, sizeof(a->error), "%s", error);
	json_decref(doc);
	return 1;
}

void
hooksend_stop(struct hooksend *h, int *status)
{
	*status = 0;
	if (h->fd >= 0)
		close(h->fd);
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		while (waitpid(h->pid, status, 0) < 0 && errno == EINTR)
			;
	}
	ipc_reader_free(&h->rd);
	ipc_writer_free(&h->wr);
	h->fd = -1;
	h->pid = 0;
}
