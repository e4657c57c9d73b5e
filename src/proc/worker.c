/* worker: one batch, in a disposable process. */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "fdpass.h"
#include "fetch.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "plugin.h"
#include "storage.h"
#include "thumb.h"

#define WORKER_VARIANTS_MAX 16

/* State of one generate_image() call, handed to the host callbacks. */
struct call {
	const struct msg_batch *batch;
	const struct msg_item *item;
	const char *plugin;
	int nimages;
	char error[T2I_ERROR_MESSAGE_MAX];	/* why the last add_image failed */
};

/* Messages are NUL-terminated lines: the length is taken here, so that no
 * caller reads a length its own argument list is still computing. */
static void
send_line(char *line)
{
	if (line == NULL || ipc_write_all(WORKER_MSG_FD, line, strlen(line)) < 0) {
		/* The supervisor is gone or we are out of memory: nobody is
		 * left to report to. */
		_exit(WORKER_EXIT_INTERNAL);
	}
	free(line);
}

/* Replaces every occurrence of the API key in s, so that a provider echoing
 * the key in an error message does not leak it into events or logs. */
static void
redact(char *s, const char *key)
{
	size_t klen = strlen(key);
	char *p;

	if (klen < 4)
		return;
	while ((p = strstr(s, key)) != NULL) {
		static const char mask[] = "[redacted]";
		size_t mlen = strlen(mask) < klen ? strlen(mask) : klen;

		memcpy(p, mask, mlen);
		memmove(p + mlen, p + klen, strlen(p + klen) + 1);
	}
}

static int
host_store(struct call *c, const char *url, const void *bytes, size_t size)
{
	struct storage_meta m;
	struct msg_image im;
	char thumb[4096];
	size_t len;

	if (storage_put(c->batch->storage_dir, bytes, size, &m, c->error, sizeof(c->error)) < 0)
		return -1;
	memset(&im, 0, sizeof(im));
	im.url = (char *)url;
	im.file_path = m.path;
	im.thumbnail_path = NULL;
	if (c->batch->thumbnails &&
	    thumb_make(c->batch->storage_dir, &m, bytes, size, thumb, sizeof(thumb)) == 0)
		im.thumbnail_path = thumb;
	snprintf(im.sha256, sizeof(im.sha256), "%s", m.sha256);
	snprintf(im.mime, sizeof(im.mime), "%s", m.mime);
	im.width = m.width;
	im.height = m.height;
	im.file_size = m.size;
	send_line(msg_encode_image(c->item->image_id, &im, &len));
	c->nimages++;
	return 0;
}

/* Provider URLs expire within hours: the image is fetched now, while the
 * worker still holds the storyboard. */
static int
host_download(struct call *c, const char *url)
{
	void *bytes = NULL;
	size_t size = 0;
	int rc;

	if (fetch_url(url, STORAGE_IMAGE_MAX, c->batch->connect_timeout, c->batch->timeout,
		      &bytes, &size, c->error, sizeof(c->error)) < 0)
		return -1;
	rc = host_store(c, url, bytes, size);
	free(bytes);
	return rc;
}

static int
host_add_image(void *ctx, const char *url, const void *bytes, size_t size)
{
	struct call *c = ctx;

	if (c->nimages > WORKER_VARIANTS_MAX) {
		snprintf(c->error, sizeof(c->error), "more than %d images for one storyboard",
			 WORKER_VARIANTS_MAX + 1);
		return -1;
	}
	if (bytes != NULL && size > 0)
		return host_store(c, url, bytes, size);
	if (url == NULL || url[0] == '\0') {
		snprintf(c->error, sizeof(c->error), "add_image without a URL or bytes");
		return -1;
	}
	return host_download(c, url);
}

static void
host_log(void *ctx, int level, const char *fmt, ...)
{
	struct call *c = ctx;
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	redact(buf, c->batch->api_key);
	if (level < LOG_LVL_ERR || level > LOG_LVL_DEBUG)
		level = LOG_LVL_INFO;
	log_msg(level, "plugin %s: %s", c->plugin, buf);
}

static void
fill_request(struct t2i_request *req, const struct msg_batch *b, const struct msg_item *it)
{
	memset(req, 0, sizeof(*req));
	req->abi_version = T2I_ABI_VERSION;
	req->struct_size = sizeof(*req);
	req->api_url = b->api_url;
	req->api_key = b->api_key;
	req->model = b->model;
	req->prompt = it->prompt;
	req->negative_prompt = it->negative_prompt;
	req->ratio = it->ratio;
	req->resolution = it->resolution;
	req->width = (uint32_t)it->width;
	req->height = (uint32_t)it->height;
	req->options_json = it->options_json;
	req->timeout_s = b->timeout;
	req->connect_timeout_s = b->connect_timeout;
	req->max_response_bytes = STORAGE_IMAGE_MAX;
	req->storyboard_id = it->storyboard_id;
	req->storyboard_index = (uint32_t)it->index;
	req->resume_json = "";
	req->idempotency_key = "";
}

/* Calls the plugin for one storyboard and reports begin, images and result.
 * Returns -1 on success, else the error class reported. */
static int
run_item(const struct msg_batch *b, const struct msg_item *it, const char *plugin,
	 t2i_generate_fn *gen)
{
	struct call c = { .batch = b, .item = it, .plugin = plugin };
	/* Until the version 2 host calls are served, the host says it is a
	 * version 1 host: a plugin checks struct_size before calling them. */
	struct t2i_host host = { .abi_version = 1,
				 .struct_size = offsetof(struct t2i_host, checkpoint),
				 .ctx = &c, .add_image = host_add_image, .log = host_log };
	struct t2i_request req;
	struct t2i_error err;
	size_t len;
	int rc;

	send_line(msg_encode_begin(it->image_id, &len));
	fill_request(&req, b, it);
	memset(&err, 0, sizeof(err));
	err.abi_version = T2I_ABI_VERSION;
	err.struct_size = sizeof(err);
	rc = gen(&req, &host, &err);
	if (rc == 0 && c.nimages > 0) {
		send_line(msg_encode_result(it->image_id, true, 0, 0, 0, NULL, &len));
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
	if (msg_class_name(err.error_class) == NULL)
		err.error_class = T2I_ERR_TRANSIENT;
	if (err.message[0] == '\0')
		snprintf(err.message, sizeof(err.message), "plugin %s failed without a message",
			 plugin);
	redact(err.message, b->api_key);
	send_line(msg_encode_result(it->image_id, false, err.error_class, err.http_status,
				    err.retry_after_ms, err.message, &len));
	return err.error_class;
}

static _Noreturn void
worker_main(void)
{
	struct msg_batch b;
	const struct t2i_plugin *meta;
	t2i_generate_fn *gen;
	char err[1024];
	char *text;
	size_t len;

	if ((text = ipc_read_all(STDIN_FILENO, IPC_LINE_MAX * 64, &len)) == NULL)
		_exit(WORKER_EXIT_INTERNAL);
	if (msg_decode_batch(text, len, &b, err, sizeof(err)) < 0) {
		log_errx("bad batch: %s", err);
		_exit(WORKER_EXIT_INTERNAL);
	}
	free(text);
	if (plugin_load(b.plugin_path, &meta, &gen, err, sizeof(err)) == NULL) {
		send_line(msg_encode_fatal(err, &len));
		_exit(WORKER_EXIT_FATAL);
	}
	/* A refused credential or exhausted credits make the provider unusable
	 * for the run: the
	 * supervisor stops this worker and requeues the rest of the batch
	 * uncharged, but only after reading the result, by which time the
	 * next item's request would already be on its way.  Stopping here
	 * keeps the provider from being asked again. */
	for (size_t i = 0; i < b.nitems; i++) {
		int cls = run_item(&b, &b.items[i], meta->name, gen);

		if (cls == T2I_ERR_AUTH || cls == T2I_ERR_QUOTA)
			break;
	}
	msg_batch_free(&b);
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
