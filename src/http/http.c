/* http: libmicrohttpd in the supervisor's loop, and the life of a request:
 * its head checked (http_frame.h), routed, guarded (guard.h), its body
 * taken within the memory cap, answered (http_reply.c) and logged
 * (http_log.h).  Connections are accepted, limited and given deadlines by
 * http_conn.h.
 *
 * A request is made when MHD has its request line (the URI callback: the
 * raw target, before MHD decodes it), then MHD calls the access handler at
 * least twice: once when the headers are in (we route, authenticate and
 * check the declared size), once per piece of the body, and once more when
 * the request is complete (we answer).  An error found from the headers
 * (401, 403, 404, 405, 413, 415, 421, 503) is answered at the end too, the
 * body read and dropped, because a response queued early makes MHD close
 * the connection while a client may still be sending: most clients then
 * fail with EPIPE before they read the answer.  Only a client that waits
 * for "100 Continue" (it sends nothing yet), a body too large to drop, or a
 * head whose framing cannot be trusted (its body must not be read at all),
 * is answered at once. */
#include "http.h"

#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "http_internal.h"
#include "log.h"

/* The body of a request answered with an error is read and dropped, up to
 * twice the largest body taken; past it the connection is closed. */
#define HTTP_DISCARD_MAX(h) (2 * (uint64_t)(h)->body_max)
#define HTTP_LOG_ADDRESSES 1024	/* addresses whose 401s are summed up apart */

static const char timeout_body[] =
	"{\"error\":\"request timeout: the request was not complete within"
	" http.request_timeout\"}\n";

/* --- requests: made, ended --- */

static void
copy_path(struct http_req *rq, const char *path)
{
	size_t n = strnlen(path, HTTP_PATH_LOG);

	memcpy(rq->path, path, n);
	rq->path[n] = '\0';
	if (path[n] != '\0' && n >= 3)
		memcpy(rq->path + n - 3, "...", 3);
}

static void
req_free(struct http_req *rq)
{
	rq->server->bodies -= rq->reserved;
	free(rq->body);
	free(rq);
}

/* The access log line, and the request is gone. */
static void
req_end(struct http *h, struct http_req *rq, const char *note)
{
	struct http_logline ln;

	h->routes->completed(rq);	/* it may set rq->bytes */
	ln = (struct http_logline){
		.method = rq->method, .path = rq->path, .pathlen = strlen(rq->path),
		.query_token = rq->query_token, .status = rq->status, .bytes = rq->bytes,
		.ms = clock_now_ms() - rq->start_ms,
		.note = rq->timed_out ? " (request timeout)" : note,
		.peer = rq->hc != NULL ? &rq->hc->peer : NULL,
	};
	http_log_access(&h->log, &ln, clock_now_ms());
	if (rq->hc != NULL)
		rq->hc->rq = NULL;
	req_free(rq);
}

static const char *
termination_note(enum MHD_RequestTerminationCode toe)
{
	switch (toe) {
	case MHD_REQUEST_TERMINATED_COMPLETED_OK:
		return "";
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
		return " (timed out)";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
		return " (shutdown)";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
	case MHD_REQUEST_TERMINATED_READ_ERROR:
		return " (client gone)";
	default:
		return " (error)";
	}
}

/* An event stream MHD timed out made no progress for the stall timeout:
 * its unsent bytes go with a reset, not after a FIN the client never
 * reads (the kernel would keep them for minutes). */
static const char *
stream_stalled(struct http *h, struct http_req *rq)
{
	h->streams_stalled++;
	if (rq->hc != NULL)
		http_conn_reset(rq->hc->fd);
	return " (stream stalled: dropped, see http.sse_stall_timeout)";
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct http_req *rq = *con_cls;
	struct http_conn *hc;
	const char *note;

	(void)conn;
	if (rq == NULL)
		return;
	*con_cls = NULL;
	hc = rq->hc;
	note = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED && rq->streaming
		       ? stream_stalled(h, rq) : termination_note(toe);
	req_end(h, rq, note);
	if (hc != NULL)
		http_conn_done(&h->conns, hc, clock_now_ms());
}

/* The request line is in: the raw target is read before MHD decodes it
 * (%00 and %2F are gone by then), and the request's deadline runs. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http *h = cls;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct http_req *rq = calloc(1, sizeof(*rq));

	if (rq == NULL)
		return NULL;
	rq->arg = h->arg;
	rq->server = h;
	rq->conn = conn;
	rq->start_ms = clock_now_ms();
	http_frame_target(&rq->target, uri);
	copy_path(rq, uri);
	snprintf(rq->method, sizeof(rq->method), "-");
	if (ci != NULL && (rq->hc = ci->socket_context) != NULL) {
		rq->hc->rq = rq;
		http_conn_request(&h->conns, rq->hc, rq->start_ms);
	}
	return rq;
}

/* --- connections --- */

/* A request MHD ended before its head was read: it refused it itself
 * (a malformed line, a head too large), the client left, or the deadline
 * passed. */
static void
req_abandoned(struct http *h, struct http_req *rq)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_HTTP_STATUS);

	if (!rq->timed_out)
		rq->status = ci != NULL ? ci->http_status : 0;
	req_end(h, rq, rq->status == 0 ? " (client gone)" : " (refused by libmicrohttpd)");
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
	      enum MHD_ConnectionNotificationCode code)
{
	struct http *h = cls;
	struct http_conn *hc = *socket_context;
	const union MHD_ConnectionInfo *fd, *addr;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		*socket_context = http_conn_started(
			&h->conns, fd != NULL ? fd->connect_fd : -1,
			addr != NULL ? addr->client_addr : NULL,
			addr != NULL ? sizeof(struct sockaddr_storage) : 0, clock_now_ms());
		return;
	}
	if (hc == NULL)
		return;
	if (hc->rq != NULL)
		req_abandoned(h, hc->rq);
	http_conn_closed(&h->conns, hc);
	*socket_context = NULL;
}

static void
add_connection(void *arg, int fd, const void *addr, size_t addrlen)
{
	struct http *h = arg;

	/* MHD closes fd when it cannot take it. */
	if (MHD_add_connection(h->d, fd, addr, (socklen_t)addrlen) != MHD_YES)
		log_warn("http: cannot take a connection (MHD_add_connection)");
}

/* The deadline passed: 408 unless an answer is on its way, and the end. */
static void
expire(struct http *h, struct http_conn *hc)
{
	struct http_req *rq = hc->rq;

	h->refused[HTTP_REFUSED_TIMEOUT]++;
	if (rq != NULL) {
		rq->timed_out = true;
		if (!hc->answered)
			rq->status = MHD_HTTP_REQUEST_TIMEOUT;
	}
	http_conn_end(hc, timeout_body);
}

/* --- requests: the head --- */

static enum MHD_Result
frame_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
	     const char *value, size_t value_size)
{
	(void)kind;
	http_frame_header(cls, key, key_size, value != NULL ? value : "",
			  value != NULL ? value_size : 0);
	return MHD_YES;
}

/* Why the head cannot be trusted, or NULL (see http_frame.h). */
static const char *
frame_check(struct http_req *rq, const char *method, const char *version)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	struct http_frame f;

	http_frame_init(&f);
	MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, frame_header, &f);
	return http_frame_verdict(&f, &rq->target, method, version,
				  ci != NULL ? ci->header_size : 0);
}

static void
req_fail(struct http_req *rq, unsigned status, const char *msg)
{
	rq->err_status = status;
	snprintf(rq->err_msg, sizeof(rq->err_msg), "%s", msg);
}

/* An error is best answered before the body (see the top of the file). */
static bool
answer_early(struct http_req *rq)
{
	const char *cl = http_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *expect = http_header(rq, MHD_HTTP_HEADER_EXPECT);

	if (cl != NULL && strtoull(cl, NULL, 10) > HTTP_DISCARD_MAX(rq->server))
		return true;
	return expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
	       ((cl != NULL && strtoull(cl, NULL, 10) > 0) ||
		http_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL);
}

/* Nothing more of the body is kept: it is dropped as it comes. */
static void
drop_body(struct http_req *rq, unsigned status, const char *msg)
{
	req_fail(rq, status, msg);
	rq->server->bodies -= rq->reserved;
	free(rq->body);
	rq->body = NULL;
	rq->len = rq->cap = rq->reserved = 0;
}

static void
too_large(struct http_req *rq)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)",
		 rq->server->body_max);
	drop_body(rq, MHD_HTTP_CONTENT_TOO_LARGE, msg);
}

/* n more bytes of bodies may be held: within http.max_body_memory. */
static bool
reserve(struct http_req *rq, size_t n)
{
	struct http *h = rq->server;

	if (h->bodies + n > h->bodies_max) {
		h->refused[HTTP_REFUSED_BODIES]++;
		drop_body(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
			  "the service holds as many request bodies as it may"
			  " (http.max_body_memory): retry later");
		return false;
	}
	h->bodies += n;
	rq->reserved += n;
	return true;
}

/* What guard.c needs to know of the request. */
static void
guard_request(struct http *h, struct http_req *rq, const char *path, const char *method,
	      struct guard_req *g)
{
	unsigned flags = rq->route != NULL ? h->routes->flags(rq->route) : 0;

	*g = (struct guard_req){
		.method = method, .path = path, .matched = rq->route != NULL,
		.public = flags & HTTP_ROUTE_PUBLIC, .query_token = flags & HTTP_ROUTE_QUERY_TOKEN,
		.signed_url = flags & HTTP_ROUTE_SIGNED, .any_host = flags & HTTP_ROUTE_ANY_HOST,
		.origin = http_header(rq, "Origin"),
		/* RFC 9112 3.2.2: an absolute target's host, not Host. */
		.host = rq->target.absolute ? rq->target.authority
					    : http_header(rq, MHD_HTTP_HEADER_HOST),
		.forwarded_host = http_header(rq, "X-Forwarded-Host"),
		.authorization = http_header(rq, MHD_HTTP_HEADER_AUTHORIZATION),
		.content_type = http_header(rq, MHD_HTTP_HEADER_CONTENT_TYPE),
		.preflight_method = http_header(rq, "Access-Control-Request-Method"),
		.access_token = http_query(rq, "access_token"),
		.exp = http_query(rq, "exp"), .sig = http_query(rq, "sig"),
		.now = (int64_t)time(NULL),
	};
}

/* The route: HEAD is every GET route's, and the 405's Allow says so. */
static void
route(struct http *h, struct http_req *rq, const char *path, const char *method,
      unsigned *status)
{
	size_t n;

	rq->head = strcmp(method, "HEAD") == 0;
	rq->route = h->routes->match(rq->head ? "GET" : method, path, rq->id, rq->id2, status,
				     rq->allow, sizeof(rq->allow));
	n = strlen(rq->allow);
	if (strstr(rq->allow, "GET") != NULL && strstr(rq->allow, "HEAD") == NULL)
		snprintf(rq->allow + n, sizeof(rq->allow) - n, ", HEAD");
}

static void
req_guard(struct http *h, struct http_req *rq, const char *path, const char *method)
{
	unsigned status = 0;
	struct guard_req g;
	char msg[sizeof(rq->err_msg)];

	route(h, rq, path, method, &status);
	guard_request(h, rq, path, method, &g);
	rq->query_token = g.access_token != NULL;
	switch (guard_check(&h->guard, &g, &status, msg, sizeof(msg))) {
	case GUARD_PREFLIGHT:
		rq->preflight = true;
		break;
	case GUARD_REFUSE:
		if (status == MHD_HTTP_MISDIRECTED_REQUEST)
			h->refused[HTTP_REFUSED_HOST]++;
		req_fail(rq, status, msg);
		break;
	case GUARD_PASS:
		if (rq->route == NULL)
			req_fail(rq, status, status == MHD_HTTP_METHOD_NOT_ALLOWED
						     ? "method not allowed" : "not found");
		break;
	}
}

static enum MHD_Result
req_begin(struct http *h, struct http_req *rq, const char *url, const char *method,
	  const char *version)
{
	const char *path = http_frame_path(&rq->target, url), *why;

	rq->begun = true;
	snprintf(rq->method, sizeof(rq->method), "%s", method);
	copy_path(rq, path);
	if ((why = frame_check(rq, method, version)) != NULL) {
		h->refused[HTTP_REFUSED_FRAMING]++;
		rq->close = true;
		return http_reply_error(rq, MHD_HTTP_BAD_REQUEST, "bad request: %s", why);
	}
	req_guard(h, rq, path, method);
	if (rq->err_status == 0 && !rq->preflight && (h->routes->flags(rq->route) & HTTP_ROUTE_BODY)) {
		const char *cl = http_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
		/* strtoull saturates at ULLONG_MAX, itself too large. */
		unsigned long long n = cl != NULL ? strtoull(cl, NULL, 10) : 0;

		if (n > h->body_max)
			too_large(rq);
		else if (n > 0)
			reserve(rq, n);
	}
	if (rq->err_status != 0 && answer_early(rq))
		return http_reply_error(rq, rq->err_status, "%s", rq->err_msg);
	return MHD_YES;
}

/* --- requests: the body and the answer --- */

static enum MHD_Result
req_body(struct http_req *rq, const char *data, size_t n)
{
	struct http *h = rq->server;

	rq->received += n;
	if (rq->err_status != 0 || rq->preflight || !(h->routes->flags(rq->route) & HTTP_ROUTE_BODY))
		return rq->received > HTTP_DISCARD_MAX(h) ? MHD_NO : MHD_YES;
	if (rq->len + n > h->body_max) {
		too_large(rq);
		return MHD_YES;
	}
	if (rq->len + n + 1 > rq->cap) {
		/* A declared size is held whole at once; a chunked body grows. */
		size_t cap = rq->reserved > rq->cap ? rq->reserved + 1
			   : rq->cap != 0 ? rq->cap : 4096;
		char *p;

		while (cap < rq->len + n + 1)
			cap *= 2;
		if (cap > rq->reserved && !reserve(rq, cap - rq->reserved))
			return MHD_YES;
		if ((p = realloc(rq->body, cap)) == NULL)
			return MHD_NO;
		rq->body = p;
		rq->cap = cap;
	}
	memcpy(rq->body + rq->len, data, n);
	rq->len += n;
	rq->body[rq->len] = '\0';
	return MHD_YES;
}

static enum MHD_Result
req_answer(struct http *h, struct http_req *rq)
{
	enum MHD_Result r;

	if (rq->err_status != 0)
		return http_reply_error(rq, rq->err_status, "%s", rq->err_msg);
	if (rq->preflight)
		return http_reply_preflight(rq);
	r = h->routes->handle(rq);
	/* The handler is done with the body: a stream must not hold it. */
	h->bodies -= rq->reserved;
	rq->reserved = 0;
	free(rq->body);
	rq->body = NULL;
	return r;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	   const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct http_req *rq = *con_cls;
	size_t n;

	(void)conn;
	if (rq == NULL)
		return MHD_NO;	/* the URI callback ran out of memory */
	if (!rq->begun)
		return req_begin(h, rq, url, method, version);
	if ((n = *upload_size) != 0) {
		*upload_size = 0;
		return req_body(rq, upload, n);
	}
	if (rq->responded)
		return MHD_YES;
	return req_answer(h, rq);
}

/* --- the daemon --- */

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http *h = cls;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	/* MHD may quote what a client sent. */
	http_log_escape(h->last_error, sizeof(h->last_error), msg, n, false);
	/* Once started, MHD mostly reports clients (gone mid-stream, bad
	 * requests): worth a line, not a warning. */
	log_msg(h->d == NULL ? LOG_LVL_WARNING : LOG_LVL_INFO, "http: %s", h->last_error);
}

static struct MHD_Daemon *
daemon_start(struct http *h)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			 MHD_USE_NO_LISTEN_SOCKET;

	return MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, h,
		/* First, or MHD logs the options' errors on its own. */
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_S,
		MHD_OPTION_CONNECTION_LIMIT, h->conns.max,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
		/* SIGPIPE is ignored (below): MHD may use sendfile(). */
		MHD_OPTION_SIGPIPE_HANDLED_BY_APP, (unsigned)1,
		MHD_OPTION_END);
}

void
http_set_token(struct http *h, const char *token)
{
	/* Never fall back to no authentication, nor keep an old token. */
	if (h != NULL && guard_set_token(&h->guard, token) < 0)
		fatalx("out of memory");
}

void
http_set_cors(struct http *h, char *const *origins, size_t n)
{
	if (h != NULL && guard_set_origins(&h->guard, origins, n) < 0)
		fatalx("out of memory");
}

void
http_set_server_names(struct http *h, char *const *names, size_t n)
{
	if (h != NULL && guard_set_names(&h->guard, names, n, h->listen, h->port) < 0)
		fatalx("out of memory");
}

void
http_set_limits(struct http *h, unsigned per_ip, int stall_s, size_t bodies_max)
{
	if (h == NULL)
		return;
	h->conns.per_ip = per_ip < h->conns.max ? per_ip : h->conns.max;
	h->stall_s = (unsigned)stall_s;
	h->bodies_max = bodies_max;
}

static int
http_setup(struct http *h, const struct http_opts *o, char *err, size_t errlen)
{
	const union MHD_DaemonInfo *info;

	h->body_max = o->body_max;
	h->bodies_max = o->bodies_max;
	h->stall_s = (unsigned)o->stall_s;
	h->guard.urlsig = o->urlsig;
	if ((h->listen = strdup(o->listen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	http_set_token(h, o->token);
	http_set_cors(h, o->cors_origins, o->ncors);
	if (http_log_init(&h->log, HTTP_LOG_ADDRESSES) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (http_conn_listen(&h->conns, o->listen, o->max_connections, o->max_connections_per_ip,
			     o->request_timeout_s, &h->port, err, errlen) < 0 ||
	    mhd_load(err, errlen) < 0)
		return -1;
	http_set_server_names(h, o->server_names, o->nserver_names);
	/* A client gone mid-response must give EPIPE, not kill the service. */
	signal(SIGPIPE, SIG_IGN);
	if ((h->d = daemon_start(h)) == NULL ||
	    (info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD)) == NULL) {
		snprintf(err, errlen, "http.listen %s: %s", o->listen,
			 h->last_error[0] != '\0' ? h->last_error : "cannot start the HTTP server");
		return -1;
	}
	h->epoll_fd = info->epoll_fd;
	return 0;
}

struct http *
http_start(const struct http_routes *routes, void *arg, const struct http_opts *o, char *err,
	   size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->routes = routes;
	h->arg = arg;
	h->conns.listen_fd = -1;
	if (http_setup(h, o, err, errlen) < 0) {
		http_free(h);
		return NULL;
	}
	log_info("http: listening on %s (port %d)%s", o->listen, h->port,
		 h->guard.token != NULL ? ", bearer token required for /v1" : "");
	return h;
}

int
http_poll_fds(const struct http *h, struct pollfd *pfd, int max)
{
	int n = 0;

	if (n < max)
		pfd[n++] = (struct pollfd){ .fd = h->epoll_fd, .events = POLLIN };
	if (n < max && h->conns.listen_fd >= 0)
		pfd[n++] = (struct pollfd){ .fd = h->conns.listen_fd, .events = POLLIN };
	return n;
}

int
http_timeout_ms(struct http *h)
{
	MHD_UNSIGNED_LONG_LONG t;
	int conn = http_conn_timeout_ms(&h->conns, clock_now_ms());

	/* A connection resumed since MHD_run began is only processed by the
	 * next MHD_run. */
	if (h->routes->resumes != NULL && h->routes->resumes(h->arg) != h->resumes_seen)
		return 0;
	if (MHD_get_timeout(h->d, &t) != MHD_YES)
		return conn;
	if (t > INT_MAX)
		t = INT_MAX;
	return conn >= 0 && conn < (int)t ? conn : (int)t;
}

void
http_run(struct http *h, const struct pollfd *pfd, int n)
{
	int64_t now = clock_now_ms();
	struct http_conn *hc;

	for (int i = 0; i < n; i++)
		if (pfd[i].fd == h->conns.listen_fd && (pfd[i].revents & POLLIN))
			http_conn_accept(&h->conns, now, add_connection, h);
	while ((hc = http_conn_expired(&h->conns, now)) != NULL)
		expire(h, hc);
	/* Noted before MHD_run: resumes made by handlers inside it (a run
	 * started with an SSE response emits events) need another pass. */
	if (h->routes->resumes != NULL)
		h->resumes_seen = h->routes->resumes(h->arg);
	MHD_run(h->d);
	http_log_tick(&h->log, now);
}

void
http_quiesce(struct http *h)
{
	if (h == NULL || h->quiesced)
		return;
	h->quiesced = true;
	http_conn_quiesce(&h->conns);
	log_info("http: no longer accepting connections (%u open)", http_connections(h));
}

int
http_port(const struct http *h)
{
	return h->port;
}

unsigned
http_connections(const struct http *h)
{
	return h->conns.open;
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	if (h->d != NULL) {
		/* MHD must not be stopped with suspended connections: every
		 * stream is resumed to end, and MHD_stop_daemon closes them. */
		if (h->routes->shutdown != NULL)
			h->routes->shutdown(h->arg);
		MHD_stop_daemon(h->d);
	}
	http_log_tick(&h->log, INT64_MAX);	/* what is held is said now */
	http_conn_free(&h->conns);
	http_log_free(&h->log);
	guard_free(&h->guard);
	free(h->listen);
	free(h);
}
