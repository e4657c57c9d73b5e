/* template_proc: a plugin's template process (see template_proc.h). */
#include "template_proc.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdpass.h"
#include "fetch.h"
#include "log.h"
#include "plugin.h"
#include "spawnmsg.h"
#include "thumb.h"
#include "worker.h"

#define CTL_FD 3
#define EXITS_FD 4

/* A worker forked ahead of need, waiting for its pipes on sock. */
struct spare {
	pid_t pid;
	int sock;
};

static struct spare spares[SPAWNMSG_SPARES_MAX];
static int nspares, spares_want;
static int nchildren;		/* spares and workers not yet reaped */
static int accepting = 1;	/* until the spawner closes our socket */
static bool spares_failed;	/* the last fork of a spare failed */

static bool
stdin_null(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (fd != STDIN_FILENO && (dup2(fd, STDIN_FILENO) < 0 || close(fd) < 0))
		return false;
	return true;
}

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
	if (flags & SPAWNMSG_THUMBS)
		thumb_prepare();
}

/* Forks one more spare.  Called only when no request is waiting: a spare
 * is forked after an answer, never between a request and its answer.
 * False when it could not (out of processes or fds): not tried again
 * before the next request, rather than in a busy loop. */
static bool
add_spare(void)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	pid = worker_fork_spare(sv[1]);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return false;
	}
	spares[nspares++] = (struct spare){ .pid = pid, .sock = sv[0] };
	nchildren++;
	return true;
}

/* Closing its socket ends a spare (see worker_fork_spare()). */
static void
drop_spares(void)
{
	while (nspares > 0)
		close(spares[--nspares].sock);
}

/* A spare's pid once it holds the pipes, 0 when none could take them. */
static pid_t
hand_to_spare(const int fds[2])
{
	while (nspares > 0) {
		struct spare sp = spares[--nspares];
		int rc = fdpass_send(sp.sock, fds, 2, "w", 1);

		close(sp.sock);
		if (rc == 0)
			return sp.pid;
		/* It died idle; reaped (and ignored) as usual. */
	}
	return 0;
}

static bool
is_idle_spare(pid_t pid)
{
	for (int i = 0; i < nspares; i++) {
		if (spares[i].pid == pid) {
			close(spares[i].sock);
			spares[i] = spares[--nspares];
			return true;
		}
	}
	return false;
}

/* Workers' exits go to the supervisor; a spare that never got a batch is
 * nobody's business. */
static void
reap_children(void)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		nchildren--;
		if (!is_idle_spare(pid))
			spawnmsg_send_exit(EXITS_FD, pid, status);
	}
}

/* One request: the pipe ends go to a spare or a new worker; its pid is the
 * answer. */
static void
serve_request(void)
{
	int fds[2], nfds = 2;
	unsigned char byte;
	int32_t reply;
	pid_t pid;
	ssize_t n = fdpass_recv(CTL_FD, fds, &nfds, &byte, 1);

	if (n == 0) {
		accepting = 0;	/* retired: finish the workers we have */
		drop_spares();
		return;
	}
	if (n > 0 && nfds == 0) {
		spares_want = byte < SPAWNMSG_SPARES_MAX ? byte : SPAWNMSG_SPARES_MAX;
		return;
	}
	if (n < 0) {
		reply = -EPROTO;
		send(CTL_FD, &reply, sizeof(reply), MSG_NOSIGNAL);
		return;
	}
	if ((pid = hand_to_spare(fds)) == 0 && (pid = worker_fork(fds[0], fds[1])) > 0)
		nchildren++;
	reply = pid > 0 ? (int32_t)pid : -errno;
	close(fds[0]);
	close(fds[1]);
	send(CTL_FD, &reply, sizeof(reply), MSG_NOSIGNAL);
}

_Noreturn void
template_proc_main(int sock, int exits_fd, pid_t parent, const char *path, unsigned flags,
		   int spares_n)
{
	struct pollfd pfd[2];
	sigset_t mask;
	char ready = SPAWNMSG_READY;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	if (dup2(sock, CTL_FD) < 0 || (exits_fd != EXITS_FD && dup2(exits_fd, EXITS_FD) < 0))
		_exit(1);
	closefrom(EXITS_FD + 1);
	/* Nothing of the terminal or of `run --json`'s output is ours: a reader
	 * of that pipe must not wait for us, nor for our spares, to close it. */
	if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0 || !stdin_null())
		_exit(1);
	prctl(PR_SET_NAME, "t2istage-tmpl");
	log_set_role("template");
	spares_want = spares_n < SPAWNMSG_SPARES_MAX ? spares_n : SPAWNMSG_SPARES_MAX;
	preload(path, flags);
	if (thread_count() != 1) {
		log_warnx("%s started a thread while loading: its workers are forked "
			  "without a template", path);
		_exit(2);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);	/* blocked already: inherited from the spawner */
	pfd[0] = (struct pollfd){ .fd = CTL_FD, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = signalfd(-1, &mask, SFD_CLOEXEC), .events = POLLIN };
	if (pfd[1].fd < 0 || send(CTL_FD, &ready, 1, MSG_NOSIGNAL) != 1)
		_exit(1);
	while (accepting || nchildren > 0) {
		struct signalfd_siginfo si;
		bool short_of_spares = accepting && !spares_failed && nspares < spares_want;
		int rc;

		pfd[0].fd = accepting ? CTL_FD : -1;
		if ((rc = poll(pfd, 2, short_of_spares ? 0 : -1)) < 0 && errno != EINTR)
			_exit(1);
		if (rc == 0) {
			/* Idle: a fork now delays nobody. */
			spares_failed = !add_spare();
			continue;
		}
		if (pfd[1].revents & POLLIN) {
			(void)!read(pfd[1].fd, &si, sizeof(si));
			reap_children();
		}
		if (accepting && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			serve_request();
			spares_failed = false;
		}
	}
	_exit(0);
}
