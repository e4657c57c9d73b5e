/* spawner: forks workers on the supervisor's behalf. */
#include "spawner.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

#define SPAWNER_CTL_FD 3
#define SPAWNER_EXITS_FD 4

struct exit_msg {
	int32_t pid;
	int32_t status;
};

/* Receives one request: two fds.  Returns 1, 0 at EOF, -1 on error. */
static int
recv_fds(int sock, int fds[2])
{
	char byte;
	struct iovec iov = { &byte, 1 };
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;

	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n <= 0)
		return n == 0 ? 0 : -1;
	c = CMSG_FIRSTHDR(&mh);
	if (c == NULL || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
		return -1;
	memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
	return 1;
}

static void
reap_children(void)
{
	struct exit_msg m;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		m.pid = pid;
		m.status = status;
		/* A full socket means the supervisor is stuck or gone; the
		 * message is small and the buffer holds thousands. */
		while (send(SPAWNER_EXITS_FD, &m, sizeof(m), 0) < 0 && errno == EINTR)
			;
	}
}

static void
handle_request(void)
{
	int fds[2];
	int32_t reply;
	pid_t pid;
	int rc = recv_fds(SPAWNER_CTL_FD, fds);

	if (rc == 0)
		_exit(0);	/* the supervisor closed us */
	if (rc < 0) {
		reply = -EPROTO;
		send(SPAWNER_CTL_FD, &reply, sizeof(reply), 0);
		return;
	}
	pid = fork();
	if (pid == 0)
		worker_start(fds[0], fds[1]);
	if (pid > 0)
		setpgid(pid, pid);	/* also done by the child: whoever runs first */
	reply = pid > 0 ? (int32_t)pid : -errno;
	close(fds[0]);
	close(fds[1]);
	send(SPAWNER_CTL_FD, &reply, sizeof(reply), 0);
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

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			_exit(1);
		if (pfd[1].revents & POLLIN) {
			(void)!read(sfd, &si, sizeof(si));
			reap_children();
		}
		if (pfd[0].revents & (POLLIN | POLLHUP))
			handle_request();
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
spawner_spawn(struct spawner *sp, int batch_fd, int msg_fd)
{
	char byte = 'w';
	struct iovec iov = { &byte, 1 };
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int fds[2] = { batch_fd, msg_fd };
	int32_t reply;
	ssize_t n;

	memset(u.buf, 0, sizeof(u.buf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	while ((n = sendmsg(sp->ctl, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n < 0)
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

int
spawner_read_exit(struct spawner *sp, pid_t *pid, int *status)
{
	struct exit_msg m;
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
