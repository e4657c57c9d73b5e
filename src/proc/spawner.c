/* spawner: forks workers on the supervisor's behalf. */
#include "spawner.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdpass.h"
#include "log.h"
#include "spawnmsg.h"
#include "template.h"
#include "worker.h"

#define SPAWNER_CTL_FD 3
#define SPAWNER_EXITS_FD 4

/* A request: a flags byte (SPAWNMSG_*), a spares byte (warm-ups only),
 * then the plugin path (NUL-terminated, may be empty). */
#define SPAWNER_REQUEST_HEAD 2
#define SPAWNER_REQUEST_MAX (SPAWNER_REQUEST_HEAD + PATH_MAX)
/* Templates nobody asked for in this long give their memory back. */
#define SPAWNER_TEMPLATE_IDLE_MS (10LL * 60 * 1000)
/* At a stop, how long templates get to end their spares and exit. */
#define SPAWNER_STOP_MS 5000

/* Our own workers, workers of templates that died (we are their subreaper)
 * and the templates themselves, which the supervisor never heard of. */
static void
reap_children(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (!template_reaped(pid))
			spawnmsg_send_exit(SPAWNER_EXITS_FD, pid, status);
}

/* The supervisor is stopping (it closed our socket).  Nothing of ours may
 * outlive it: under systemd the unit's cgroup must be empty when the main
 * process exits, or systemd kills what is left.  Templates are retired (they
 * end their spares, then exit once their workers have) and every child is
 * waited for; whatever is still there after SPAWNER_STOP_MS is killed. */
static _Noreturn void
spawner_finish(int sfd)
{
	struct pollfd pfd = { .fd = sfd, .events = POLLIN };
	struct signalfd_siginfo si;
	int timeout = SPAWNER_STOP_MS;

	template_retire_all();
	for (;;) {
		int status;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			(void)template_reaped(pid);
		if (pid < 0 && errno == ECHILD)
			_exit(0);
		if (pid < 0 && errno != EINTR)
			_exit(1);
		if (poll(&pfd, 1, timeout) == 0 && timeout >= 0) {
			log_warnx("templates still running %d s after the stop: killing them",
				  SPAWNER_STOP_MS / 1000);
			template_kill_all();
			timeout = -1;	/* SIGKILL needs no more patience */
		}
		if (pfd.revents & POLLIN)
			(void)!read(sfd, &si, sizeof(si));
	}
}

/* False when the supervisor has closed the control socket. */
static bool
handle_request(void)
{
	char req[SPAWNER_REQUEST_MAX];
	int fds[2];
	int32_t reply;
	pid_t pid;
	int nfds = 2;
	ssize_t n = fdpass_recv(SPAWNER_CTL_FD, fds, &nfds, req, sizeof(req));

	if (n == 0)
		return false;
	if (n > 0 && nfds == 0) {
		/* A warm-up: no descriptors, no answer. */
		if (n > SPAWNER_REQUEST_HEAD && req[n - 1] == '\0' &&
		    req[SPAWNER_REQUEST_HEAD] != '\0')
			template_warm(req + SPAWNER_REQUEST_HEAD, (unsigned char)req[0],
				      (unsigned char)req[1], SPAWNER_EXITS_FD);
		return true;
	}
	if (n <= SPAWNER_REQUEST_HEAD || req[n - 1] != '\0') {
		if (n > 0) {
			close(fds[0]);
			close(fds[1]);
		}
		reply = -EPROTO;
		send(SPAWNER_CTL_FD, &reply, sizeof(reply), MSG_NOSIGNAL);
		return true;
	}
	pid = req[SPAWNER_REQUEST_HEAD] != '\0' ?
	      template_spawn(req + SPAWNER_REQUEST_HEAD, (unsigned char)req[0], fds,
			     SPAWNER_EXITS_FD) : 0;
	if (pid == 0)
		pid = worker_fork(fds[0], fds[1]);
	reply = pid > 0 ? (int32_t)pid : -errno;
	close(fds[0]);
	close(fds[1]);
	send(SPAWNER_CTL_FD, &reply, sizeof(reply), MSG_NOSIGNAL);
	return true;
}

static _Noreturn void
spawner_main(int ctl, int exits, pid_t parent)
{
	sigset_t mask;
	struct pollfd pfd[2];
	int sfd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	/* Orphaned workers of a template that died come to us. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	/* ps and top tell the processes apart by name (at most 15 bytes). */
	prctl(PR_SET_NAME, "t2istage-spawn");
	if (dup2(ctl, SPAWNER_CTL_FD) < 0 || dup2(exits, SPAWNER_EXITS_FD) < 0)
		_exit(1);
	closefrom(SPAWNER_EXITS_FD + 1);
	log_set_role("spawner");
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	/* SIGINT from a terminal's Ctrl-C is the supervisor's to handle. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	if ((sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0)
		_exit(1);
	pfd[0] = (struct pollfd){ .fd = SPAWNER_CTL_FD, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	for (;;) {
		struct signalfd_siginfo si;

		if (poll(pfd, 2, 60 * 1000) < 0 && errno != EINTR)
			_exit(1);
		template_expire(SPAWNER_TEMPLATE_IDLE_MS);
		if (pfd[1].revents & POLLIN) {
			(void)!read(sfd, &si, sizeof(si));
			reap_children();
		}
		if ((pfd[0].revents & (POLLIN | POLLHUP)) && !handle_request())
			spawner_finish(sfd);
	}
}

int
spawner_start(struct spawner *sp)
{
	int ctl[2], ex[2];
	pid_t parent = getpid();

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ex) < 0) {
		close(ctl[0]);
		close(ctl[1]);
		return -1;
	}
	if ((sp->pid = fork()) < 0) {
		close(ctl[0]);
		close(ctl[1]);
		close(ex[0]);
		close(ex[1]);
		return -1;
	}
	if (sp->pid == 0)
		spawner_main(ctl[1], ex[1], parent);
	close(ctl[1]);
	close(ex[1]);
	sp->ctl = ctl[0];
	sp->exits = ex[0];
	return 0;
}

pid_t
spawner_spawn(struct spawner *sp, int batch_fd, int msg_fd, const char *plugin, unsigned flags)
{
	char req[SPAWNER_REQUEST_MAX];
	int fds[2] = { batch_fd, msg_fd };
	size_t plen = plugin != NULL ? strlen(plugin) : 0;
	int32_t reply;
	ssize_t n;

	if (plen + 1 + SPAWNER_REQUEST_HEAD > sizeof(req)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	req[0] = (char)flags;
	req[1] = 0;
	memcpy(req + SPAWNER_REQUEST_HEAD, plugin != NULL ? plugin : "", plen + 1);
	if (fdpass_send(sp->ctl, fds, 2, req, plen + 1 + SPAWNER_REQUEST_HEAD) < 0)
		return -1;
	/* The spawner answers at once: a fork of a small process. */
	while ((n = recv(sp->ctl, &reply, sizeof(reply), 0)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(reply))
		return -1;
	if (reply < 0) {
		errno = -reply;
		return -1;
	}
	return (pid_t)reply;
}

void
spawner_warm(struct spawner *sp, const char *plugin, unsigned flags, int spares)
{
	char req[SPAWNER_REQUEST_MAX];
	size_t plen = strlen(plugin);

	if (plen == 0 || plen + 1 + SPAWNER_REQUEST_HEAD > sizeof(req))
		return;
	req[0] = (char)flags;
	req[1] = (char)(spares < 1 ? 1 : spares > 255 ? 255 : spares);
	memcpy(req + SPAWNER_REQUEST_HEAD, plugin, plen + 1);
	/* Best effort: a lost warm-up costs one slower first batch. */
	while (send(sp->ctl, req, plen + 1 + SPAWNER_REQUEST_HEAD, MSG_NOSIGNAL) < 0 &&
	       errno == EINTR)
		;
}

int
spawner_read_exit(struct spawner *sp, pid_t *pid, int *status)
{
	struct spawnmsg_exit m;
	ssize_t n;

	while ((n = recv(sp->exits, &m, sizeof(m), MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	if (n != (ssize_t)sizeof(m))
		return -1;
	*pid = m.pid;
	*status = m.status;
	return 1;
}

void
spawner_stop(struct spawner *sp)
{
	int status;

	if (sp->pid <= 0)
		return;
	close(sp->ctl);
	close(sp->exits);
	/* EOF on its control socket ends it. */
	while (waitpid(sp->pid, &status, 0) < 0 && errno == EINTR)
		;
	sp->pid = 0;
}
