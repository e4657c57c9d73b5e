/* hooksend_proc: the webhook sender's loop.  One thread: libcurl's multi
 * interface drives every transfer, and its poll also watches the socket
 * to the supervisor. */
#include "hooksend_proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <jansson.h>

#include "hooksend.h"
#include "jsontext.h"
#include "log.h"
#include "module.h"
#include "module_abi.h"

struct sender {
	const struct module_post_ops *ops;	/* NULL: the module did not load */
	struct module_post *post;
	struct ipc_reader rd;
	struct ipc_writer wr;
};

static void
answer(struct sender *s, unsigned long long tag, long status, const char *kind,
       const char *error)
{
	json_t *doc = json_pack("{sI sI}", "tag", (json_int_t)tag, "status", (json_int_t)status);
	char *line;

	if (kind != NULL) {
		json_object_set_new(doc, "kind", json_string(kind));
		json_object_set_new(doc, "error", json_string(error));
	}
	if ((line = jsontext_dumps(doc, JSON_COMPACT)) == NULL ||
	    ipc_queue(&s->wr, line, strlen(line)) < 0 || ipc_queue(&s->wr, "\n", 1) < 0)
		_exit(1);
	free(line);
	json_decref(doc);
}

/* A request into rq, pointing into doc.  0, or -1: the line is not one. */
static int
decode(const char *line, size_t len, json_t **doc, struct hooksend_request *rq)
{
	json_int_t tag;
	json_t *hdrs, *h;
	json_error_t je;
	size_t i;

	memset(rq, 0, sizeof(*rq));
	if ((*doc = json_loadb(line, len, 0, &je)) == NULL ||
	    json_unpack_ex(*doc, &je, JSON_STRICT, "{sI ss so ss% sF sF}", "tag", &tag, "url",
			   &rq->url, "headers", &hdrs, "body", &rq->body, &rq->body_len,
			   "connect_timeout", &rq->connect_timeout, "timeout", &rq->timeout) < 0 ||
	    tag < 0 || !json_is_array(hdrs) || json_array_size(hdrs) > HOOKSEND_HEADERS_MAX)
		return -1;
	rq->tag = (unsigned long long)tag;
	json_array_foreach(hdrs, i, h) {
		const char *v = json_string_value(h);

		/* One header per string: a line break would smuggle another. */
		if (v == NULL || strpbrk(v, "\r\n") != NULL || strchr(v, ':') == NULL)
			return -1;
		rq->headers[rq->nheaders++] = v;
	}
	return rq->timeout > 0 && rq->connect_timeout > 0 ? 0 : -1;
}

static void
handle_lines(struct sender *s)
{
	struct hooksend_request rq;
	char *line, err[256];
	size_t len;
	json_t *doc;
	int rc;

	while ((rc = ipc_next_line(&s->rd, &line, &len)) == IPC_LINE) {
		if (decode(line, len, &doc, &rq) < 0) {
			log_errx("bad request from the supervisor: exiting");
			_exit(2);
		}
		if (s->post == NULL)
			answer(s, rq.tag, 0, "other", "post_curl.so did not load (see the log)");
		else if (s->ops->add(s->post, rq.tag, rq.url, rq.headers, rq.nheaders, rq.body,
				     rq.body_len, rq.connect_timeout, rq.timeout, err,
				     sizeof(err)) < 0)
			answer(s, rq.tag, 0, "other", err);
		json_decref(doc);
	}
	if (rc == IPC_TOOLONG) {
		log_errx("request from the supervisor too long: exiting");
		_exit(2);
	}
}

static void
setup(const char *parent_pid)
{
	/* Dies with the supervisor; and if it died already, now. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != (pid_t)strtol(parent_pid, NULL, 10))
		_exit(1);
	prctl(PR_SET_NAME, "t2istage-hook");
	log_set_role("webhook sender");
	closefrom(3);
	/* Ctrl-C and SIGHUP are the supervisor's; EPIPE is an error here. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (ipc_set_nonblock(STDIN_FILENO) < 0)
		_exit(1);
}

/* curl's poll waits for its transfers' sockets and timers and for ours. */
static void
wait_ready(struct sender *s, struct pollfd *pfd)
{
	if (s->post == NULL) {
		if (poll(pfd, 1, -1) < 0 && errno != EINTR)
			fatal("poll");
	} else if (s->ops->wait(s->post, pfd, 1, 60 * 1000) < 0) {
		fatalx("%s: curl_multi_poll failed", MODULE_POST);
	}
}

int
hooksend_proc_main(const char *parent_pid)
{
	struct sender s = { .rd.max = HOOKSEND_LINE_MAX };
	struct module_post_result res;

	setup(parent_pid != NULL ? parent_pid : "0");
	if ((s.ops = module_symbol(MODULE_POST, MODULE_POST_OPS)) != NULL &&
	    (s.post = s.ops->open()) == NULL)
		log_errx("%s: cannot initialise libcurl", MODULE_POST);
	for (;;) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		int rc;

		pfd.revents = 0;
		if (ipc_pending(&s.wr))
			pfd.events |= POLLOUT;
		wait_ready(&s, &pfd);
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			rc = ipc_read(&s.rd, STDIN_FILENO);
			handle_lines(&s);
			if (rc == IPC_EOF || rc == IPC_ERROR)
				break;	/* the supervisor is gone or stopping */
		}
		while (s.post != NULL && s.ops->result(s.post, &res) == 1)
			answer(&s, res.tag, res.status, res.kind, res.error);
		if (ipc_flush(&s.wr, STDOUT_FILENO) < 0)
			break;
	}
	if (s.post != NULL)
		s.ops->close(s.post);
	ipc_reader_free(&s.rd);
	ipc_writer_free(&s.wr);
	return 0;
}
