/* worker: one batch, in a disposable process. */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "clock.h"
#include "fdpass.h"
#include "host.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "plugin.h"
#include "wchan.h"

/* Calls the plugin for one storyboard and reports begin, images and result.
 * Returns -1 on success, else the error class reported. */
static int
run_item(struct wchan *ch, const struct msg_batch *b, const struct msg_item *it,
	 const char *plugin, t2i_generate_fn *gen)
{
	struct host_call c;
	struct t2i_host host;
	struct t2i_request req;
	struct t2i_error err;
	size_t len;
	int rc;

	wchan_send(ch, msg_encode_begin(it->image_id, clock_now_ms(), &len));
	/* Nothing is sent before the supervisor has recorded the begin and
	 * still holds the storyboard (its lease, with several instances). */
	if (wchan_ack(ch, it->image_id) < 0)
		_exit(WORKER_EXIT_OK);	/* the supervisor is gone */
	host_begin(&c, b, it, plugin, ch, &req, &host);
	memset(&err, 0, sizeof(err));
	err.abi_version = T2I_ABI_VERSION;
	err.struct_size = sizeof(err);
	rc = gen(&req, &host, &err);
	if (rc == 0 && c.nimages > 0) {
		wchan_send(ch, msg_encode_result(it->image_id, true, 0, 0, 0, NULL, &len));
		return -1;
	}
	err.message[sizeof(err.message) - 1] = '\0';
	if (rc == 0 || (err.message[0] == '\0' && c.error[0] != '\0')) {
		/* The plugin said yes but no image was kept: say why. */
		snprintf(err.message, sizeof(err.message), "%s",
			 c.error[0] ? c.error : "plugin returned no image");
		err.error_class = T2I_ERR_TRANSIENT;
	} else if (c.nimages == 0 && c.error[0] != '\0') {
		/* The plugin gave up because no image could be stored: the
		 * host knows why (an expired URL, bytes that are no image). */
		size_t n = strlen(err.message);

		snprintf(err.message + n, sizeof(err.message) - n, ": %s", c.error);
	}
	/* Only the plugin ABI's classes are a plugin's to give. */
	if (err.error_class < T2I_ERR_TRANSIENT || err.error_class > T2I_ERR_QUOTA)
		err.error_class = T2I_ERR_TRANSIENT;
	if (err.message[0] == '\0')
		snprintf(err.message, sizeof(err.message), "plugin %s failed without a message",
			 plugin);
	if (c.local && c.nimages == 0) {
		/* The provider made the image (and was paid); our disk lost it.
		 * Whatever the plugin made of the failed add_image, the fault
		 * is ours: the supervisor neither retries nor fails over. */
		err.error_class = MSG_ERR_LOCAL;
		err.http_status = 0;
		err.retry_after_ms = 0;
		snprintf(err.message, sizeof(err.message),
			 "the provider's image could not be stored: %s", c.error);
	}
	host_redact(err.message, b->api_key);
	msg_text_clean(err.message);
	wchan_send(ch, msg_encode_result(it->image_id, false, err.error_class, err.http_status,
					 err.retry_after_ms, err.message, &len));
	return err.error_class;
}

bool
worker_ends_batch(int error_class)
{
	return error_class == T2I_ERR_AUTH || error_class == T2I_ERR_QUOTA ||
	       error_class == T2I_ERR_RATE_LIMITED || error_class == MSG_ERR_LOCAL;
}

static _Noreturn void
worker_main(void)
{
	struct wchan ch;
	struct msg_batch b;
	const struct t2i_plugin *meta;
	t2i_generate_fn *gen;
	char err[1024];
	char *text;
	size_t len;

	wchan_init(&ch, STDIN_FILENO, WORKER_MSG_FD, WORKER_EXIT_INTERNAL);
	if ((text = wchan_batch(&ch, IPC_LINE_MAX * 64, &len)) == NULL)
		_exit(WORKER_EXIT_INTERNAL);
	if (msg_decode_batch(text, len, &b, err, sizeof(err)) < 0) {
		log_errx("bad batch: %s", err);
		_exit(WORKER_EXIT_INTERNAL);
	}
	if (plugin_load(b.plugin_path, &meta, &gen, err, sizeof(err)) == NULL) {
		wchan_send(&ch, msg_encode_fatal(err, &len));
		_exit(WORKER_EXIT_FATAL);
	}
	/* After some answers the rest of the batch is not to be sent (see
	 * worker_ends_batch): the supervisor puts it back uncharged, but only
	 * after reading the result, by which time the next item's request
	 * would already be on its way.  Stopping here keeps it from being
	 * sent.  So does a stop (cancel, shutdown, a paused provider) that
	 * came while the last storyboard ran. */
	for (size_t i = 0; i < b.nitems; i++) {
		int cls;

		wchan_wait(&ch, 0);
		if (ch.stop != T2I_STOP_NONE)
			break;
		cls = run_item(&ch, &b, &b.items[i], meta->name, gen);
		if (worker_ends_batch(cls))
			break;
	}
	msg_batch_free(&b);
	wchan_free(&ch);
	_exit(WORKER_EXIT_OK);
}

/* What a child must not keep from its parents: signal handling, the
 * process group, NOTIFY_SOCKET.  Exits when the parent is already gone. */
static void
worker_detach(pid_t parent, const char *name)
{
	sigset_t all;
	static const int sigs[] = { SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT };

	setpgid(0, 0);
	/* A worker has no reason to outlive its supervisor: a paid call whose
	 * result nobody records is money lost. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(WORKER_EXIT_INTERNAL);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	unsetenv("NOTIFY_SOCKET");
	prctl(PR_SET_NAME, name);
}

/* Moves the pipes to 0 and WORKER_MSG_FD and closes every other fd: other
 * workers' pipes, the database, listening sockets. */
static void
worker_pipes(int batch_fd, int msg_fd)
{
	char role[32];

	if (dup2(batch_fd, STDIN_FILENO) < 0 || dup2(msg_fd, WORKER_MSG_FD) < 0 ||
	    dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		_exit(WORKER_EXIT_INTERNAL);
	closefrom(WORKER_MSG_FD + 1);
	snprintf(role, sizeof(role), "worker %ld", (long)getpid());
	log_set_role(role);
}

static _Noreturn void
worker_start(int batch_fd, int msg_fd)
{
	/* getppid() here is the parent: fork() has just returned. */
	worker_detach(getppid(), "t2istage-worker");
	worker_pipes(batch_fd, msg_fd);
	worker_main();
}

static _Noreturn void
worker_spare(int sock)
{
	int fds[2], nfds = 2;
	char byte;

	worker_detach(getppid(), "t2istage-spare");
	if (dup2(sock, WORKER_MSG_FD + 1) < 0)
		_exit(WORKER_EXIT_INTERNAL);
	closefrom(WORKER_MSG_FD + 2);
	for (int fd = STDERR_FILENO + 1; fd <= WORKER_MSG_FD; fd++)
		close(fd);
	if (fdpass_recv(WORKER_MSG_FD + 1, fds, &nfds, &byte, 1) <= 0 || nfds != 2)
		_exit(0);	/* retired before it was needed */
	prctl(PR_SET_NAME, "t2istage-worker");
	worker_pipes(fds[0], fds[1]);
	worker_main();
}

pid_t
worker_fork(int batch_fd, int msg_fd)
{
	pid_t pid = fork();

	if (pid == 0)
		worker_start(batch_fd, msg_fd);
	if (pid > 0)
		setpgid(pid, pid);	/* also done by the child: whoever runs first */
	return pid;
}

pid_t
worker_fork_spare(int sock)
{
	pid_t pid = fork();

	if (pid == 0)
		worker_spare(sock);
	if (pid > 0)
		setpgid(pid, pid);
	return pid;
}
