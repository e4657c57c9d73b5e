/* template: warm processes that fork a plugin's workers (see template.h). */
#include "template.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fdpass.h"
#include "log.h"
#include "spawnmsg.h"
#include "template_proc.h"

#define TEMPLATE_MAX 16
/* A template answers a request by handing the pipes to a spare or with one
 * fork(): anything slower means it is stuck, and it is retired rather than
 * waited for. */
#define TEMPLATE_REPLY_MS 5000
/* How long the first request waits for a starting template.  Loading takes
 * it ~25 ms; meanwhile forking workers that each load the same libraries
 * would only compete with it for the CPU (8 of them at the start of a run
 * took ~90 ms on 2 cores).  A template that takes longer is not waited for
 * again: workers are forked directly until it is ready. */
#define TEMPLATE_READY_WAIT_MS 1000

enum tstate { T_FREE, T_STARTING, T_READY, T_FAILED, T_RETIRED };

struct tmpl {
	enum tstate state;
	char path[PATH_MAX];
	unsigned flags;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	pid_t pid;		/* 0 once reaped */
	int fd;			/* -1 when closed */
	bool waited;		/* a request has waited for it to be ready */
	int spares;		/* spare workers it was asked to keep */
	long long used_ms;
};

static struct tmpl tmpls[TEMPLATE_MAX];

static bool
same_file(const struct tmpl *t, const struct stat *sb)
{
	return t->dev == sb->st_dev && t->ino == sb->st_ino && t->size == sb->st_size &&
	       t->mtim.tv_sec == sb->st_mtim.tv_sec && t->mtim.tv_nsec == sb->st_mtim.tv_nsec &&
	       t->ctim.tv_sec == sb->st_ctim.tv_sec && t->ctim.tv_nsec == sb->st_ctim.tv_nsec;
}

static void
close_fd(struct tmpl *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* No more requests; the process exits once its workers have.  One that
 * never said it was ready has no workers and may be stuck in a plugin's
 * constructor: it is killed. */
static void
retire(struct tmpl *t)
{
	if (t->state == T_STARTING && t->pid > 0)
		kill(t->pid, SIGKILL);
	close_fd(t);
	t->state = t->pid > 0 ? T_RETIRED : T_FREE;
}

static struct tmpl *
find(const char *path, unsigned flags)
{
	for (int i = 0; i < TEMPLATE_MAX; i++) {
		struct tmpl *t = &tmpls[i];

		if (t->state != T_FREE && t->state != T_RETIRED && t->flags == flags &&
		    strcmp(t->path, path) == 0)
			return t;
	}
	return NULL;
}

/* A free entry, else the least recently used live one, retired; NULL when
 * every entry is a retired template still finishing its workers. */
static struct tmpl *
entry(void)
{
	struct tmpl *lru = NULL;

	for (int i = 0; i < TEMPLATE_MAX; i++) {
		struct tmpl *t = &tmpls[i];

		if (t->state == T_FREE)
			return t;
		if (t->state != T_RETIRED && (lru == NULL || t->used_ms < lru->used_ms))
			lru = t;
	}
	if (lru == NULL)
		return NULL;
	retire(lru);
	return lru->state == T_FREE ? lru : NULL;	/* one is freed when reaped */
}

static struct tmpl *
start(const char *path, unsigned flags, const struct stat *sb, int exits_fd, int spares)
{
	struct tmpl *t;
	int sv[2];
	pid_t parent = getpid();

	if (strlen(path) >= sizeof(t->path) || (t = entry()) == NULL)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	if ((t->pid = fork()) == 0)
		template_proc_main(sv[1], exits_fd, parent, path, flags, spares);
	close(sv[1]);
	if (t->pid < 0) {
		close(sv[0]);
		t->pid = 0;
		return NULL;
	}
	snprintf(t->path, sizeof(t->path), "%s", path);
	t->flags = flags;
	t->dev = sb->st_dev;
	t->ino = sb->st_ino;
	t->size = sb->st_size;
	t->mtim = sb->st_mtim;
	t->ctim = sb->st_ctim;
	t->fd = sv[0];
	t->waited = false;
	t->spares = spares;
	t->state = T_STARTING;
	t->used_ms = clock_now_ms();
	return t;
}

/* A starting template says it is ready with one byte, or closes its socket
 * when it gave up. */
static void
check_ready(struct tmpl *t)
{
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
	char c;
	ssize_t n;

	if (!t->waited) {
		t->waited = true;
		while (poll(&pfd, 1, TEMPLATE_READY_WAIT_MS) < 0 && errno == EINTR)
			;
	}
	n = recv(t->fd, &c, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n == 1 && c == SPAWNMSG_READY) {
		t->state = T_READY;
		return;
	}
	close_fd(t);
	t->state = T_FAILED;
}

static pid_t
ask(struct tmpl *t, const int fds[2])
{
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
	int32_t reply;
	ssize_t n = -1;
	int rc;

	if (fdpass_send(t->fd, fds, 2, "w", 1) < 0) {
		retire(t);	/* it died: the spawner reaps it */
		return 0;
	}
	while ((rc = poll(&pfd, 1, TEMPLATE_REPLY_MS)) < 0 && errno == EINTR)
		;
	if (rc == 1)
		while ((n = recv(t->fd, &reply, sizeof(reply), 0)) < 0 && errno == EINTR)
			;
	if (n == (ssize_t)sizeof(reply) && reply > 0)
		return (pid_t)reply;
	/* Stuck, gone or out of processes.  It may yet fork a worker for this
	 * request: the caller gives up the batch, so such a worker finds its
	 * message pipe closed before its first word to the provider. */
	log_warnx("template for %s did not fork a worker: %s", t->path,
		  n == (ssize_t)sizeof(reply) ? strerror(-reply) : "no answer");
	errno = n == (ssize_t)sizeof(reply) ? -reply : EAGAIN;
	retire(t);
	return -1;
}

/* The live template of the plugin file as it is now, started (with
 * spares spare workers) if needed. */
static struct tmpl *
current(const char *plugin, unsigned flags, int exits_fd, int spares)
{
	struct stat sb;
	struct tmpl *t;

	if (stat(plugin, &sb) < 0)
		return NULL;	/* the worker will say what is wrong */
	if ((t = find(plugin, flags)) != NULL && !same_file(t, &sb)) {
		retire(t);
		t = NULL;
	}
	if (t == NULL)
		t = start(plugin, flags, &sb, exits_fd, spares);
	if (t != NULL)
		t->used_ms = clock_now_ms();
	return t;
}

void
template_warm(const char *plugin, unsigned flags, int spares, int exits_fd)
{
	struct tmpl *t = current(plugin, flags, exits_fd, spares);
	unsigned char n;

	if (spares > SPAWNMSG_SPARES_MAX)
		spares = SPAWNMSG_SPARES_MAX;
	if (t == NULL || t->fd < 0 || spares <= t->spares)
		return;
	/* More spares for a template already running: a message without
	 * descriptors carries the new number. */
	n = (unsigned char)spares;
	if (send(t->fd, &n, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
		t->spares = spares;
}

pid_t
template_spawn(const char *plugin, unsigned flags, const int fds[2], int exits_fd)
{
	struct tmpl *t = current(plugin, flags, exits_fd, 1);

	if (t == NULL)
		return 0;
	if (t->state == T_STARTING)
		check_ready(t);
	return t->state == T_READY ? ask(t, fds) : 0;
}

bool
template_reaped(pid_t pid)
{
	for (int i = 0; i < TEMPLATE_MAX; i++) {
		struct tmpl *t = &tmpls[i];

		if (t->pid != pid || pid <= 0)
			continue;
		t->pid = 0;
		close_fd(t);
		/* Gave up while loading: not tried again for this file.  Died
		 * later: started afresh on the next request. */
		t->state = t->state == T_STARTING || t->state == T_FAILED ? T_FAILED : T_FREE;
		return true;
	}
	return false;
}

void
template_retire_all(void)
{
	for (int i = 0; i < TEMPLATE_MAX; i++)
		if (tmpls[i].state != T_FREE && tmpls[i].state != T_RETIRED)
			retire(&tmpls[i]);
}

void
template_kill_all(void)
{
	for (int i = 0; i < TEMPLATE_MAX; i++)
		if (tmpls[i].pid > 0)
			kill(tmpls[i].pid, SIGKILL);
}

void
template_expire(long long idle_ms)
{
	long long now = clock_now_ms();

	for (int i = 0; i < TEMPLATE_MAX; i++) {
		struct tmpl *t = &tmpls[i];

		if (t->state != T_FREE && t->state != T_RETIRED && now - t->used_ms >= idle_ms)
			retire(t);
	}
}
