/* template: warm processes that fork a plugin's workers (see template.h). */
#include "template.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"
#include "fetch.h"
#include "log.h"
#include "plugin.h"
#include "spawner.h"
#include "thumb.h"
#include "worker.h"

#define TEMPLATE_MAX 16
#define TEMPLATE_CTL_FD 3
#define TEMPLATE_EXITS_FD 4
#define TEMPLATE_READY 'R'
/* A template answers a request with one fork(): anything slower means it
 * is stuck, and it is retired rather than waited for. */
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
	long long used_ms;
};

static struct tmpl tmpls[TEMPLATE_MAX];

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- in the template process ---- */

static int
thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* What a worker of this plugin would load anyway.  Failures are left for
 * the worker to meet and report in its own words. */
static void
preload(const char *path, unsigned flags)
{
	const struct t2i_plugin *meta;
	t2i_generate_fn *gen;
	char err[512];
	void *curl;

	if (plugin_load(path, &meta, &gen, err, sizeof(err)) == NULL)
		return;
	/* The download module adds libcurl to every fork; worth it only when
	 * the plugin has brought libcurl in already (it speaks HTTP and will
	 * hand over URLs), not for a plugin that returns bytes. */
	if ((curl = dlopen("libcurl.so.4", RTLD_NOW | RTLD_NOLOAD)) != NULL) {
		dlclose(curl);
		fetch_prepare();
	}
	if (flags & TEMPLATE_THUMBS)
		thumb_prepare();
}

static void
reap_workers(int *nchildren)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		spawner_send_exit(TEMPLATE_EXITS_FD, pid, status);
		(*nchildren)--;
	}
}

/* One request: fork a worker on the fds that came with it, answer its pid. */
static void
serve_request(int *accepting, int *nchildren)
{
	int fds[2];
	char byte;
	int32_t reply;
	pid_t pid;
	int nfds = 2;
	ssize_t n = fdpass_recv(TEMPLATE_CTL_FD, fds, &nfds, &byte, 1);

	if (n == 0) {
		*accepting = 0;	/* retired: finish the workers we have */
		return;
	}
	if (n < 0 || nfds != 2) {
		reply = -EPROTO;
		send(TEMPLATE_CTL_FD, &reply, sizeof(reply), MSG_NOSIGNAL);
		return;
	}
	pid = fork();
	if (pid == 0)
		worker_start(fds[0], fds[1]);
	if (pid > 0) {
		setpgid(pid, pid);
		(*nchildren)++;
	}
	reply = pid > 0 ? (int32_t)pid : -errno;
	close(fds[0]);
	close(fds[1]);
	send(TEMPLATE_CTL_FD, &reply, sizeof(reply), MSG_NOSIGNAL);
}

static _Noreturn void
template_main(int sock, int exits_fd, pid_t parent, const char *path, unsigned flags)
{
	struct pollfd pfd[2];
	sigset_t mask;
	int accepting = 1, nchildren = 0;
	char ready = TEMPLATE_READY;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	if (dup2(sock, TEMPLATE_CTL_FD) < 0 ||
	    (exits_fd != TEMPLATE_EXITS_FD && dup2(exits_fd, TEMPLATE_EXITS_FD) < 0))
		_exit(1);
	closefrom(TEMPLATE_EXITS_FD + 1);
	prctl(PR_SET_NAME, "t2istage-tmpl");
	log_set_role("template");
	preload(path, flags);
	if (thread_count() != 1) {
		log_warnx("%s started a thread while loading: its workers are forked "
			  "without a template", path);
		_exit(2);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);	/* blocked already: inherited from the spawner */
	pfd[0] = (struct pollfd){ .fd = TEMPLATE_CTL_FD, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = signalfd(-1, &mask, SFD_CLOEXEC), .events = POLLIN };
	if (pfd[1].fd < 0 || send(TEMPLATE_CTL_FD, &ready, 1, MSG_NOSIGNAL) != 1)
		_exit(1);
	while (accepting || nchildren > 0) {
		struct signalfd_siginfo si;

		pfd[0].fd = accepting ? TEMPLATE_CTL_FD : -1;
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			_exit(1);
		if (pfd[1].revents & POLLIN) {
			(void)!read(pfd[1].fd, &si, sizeof(si));
			reap_workers(&nchildren);
		}
		if (accepting && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			serve_request(&accepting, &nchildren);
	}
	_exit(0);
}

/* ---- in the spawner ---- */

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

/* No more requests; the process exits once its workers have. */
static void
retire(struct tmpl *t)
{
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
start(const char *path, unsigned flags, const struct stat *sb, int exits_fd)
{
	struct tmpl *t;
	int sv[2];
	pid_t parent = getpid();

	if (strlen(path) >= sizeof(t->path) || (t = entry()) == NULL)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	if ((t->pid = fork()) == 0)
		template_main(sv[1], exits_fd, parent, path, flags);
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
	t->state = T_STARTING;
	t->used_ms = now_ms();
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
	if (n == 1 && c == TEMPLATE_READY) {
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

/* The live template of the plugin file as it is now, started if needed. */
static struct tmpl *
current(const char *plugin, unsigned flags, int exits_fd)
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
		t = start(plugin, flags, &sb, exits_fd);
	if (t != NULL)
		t->used_ms = now_ms();
	return t;
}

void
template_warm(const char *plugin, unsigned flags, int exits_fd)
{
	(void)current(plugin, flags, exits_fd);
}

pid_t
template_spawn(const char *plugin, unsigned flags, const int fds[2], int exits_fd)
{
	struct tmpl *t = current(plugin, flags, exits_fd);

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
template_expire(long long now, long long idle_ms)
{
	for (int i = 0; i < TEMPLATE_MAX; i++) {
		struct tmpl *t = &tmpls[i];

		if (t->state != T_FREE && t->state != T_RETIRED && now - t->used_ms >= idle_ms)
			retire(t);
	}
}
