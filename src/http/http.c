/* http: libmicrohttpd in the supervisor's loop, request bodies, CORS
 * preflights and headers, the access log and the response helpers of the
 * routes; guard.c says who may make a request.
 *
 * MHD calls the access handler at least twice per request: once when the
 * headers are in (we route, authenticate and check the declared size), once
 * per piece of the body, and once more when the request is complete (we
 * answer).  Who may make the request is guard.c's to say, from the headers.
 * An error found from the headers (401, 403, 404, 405, 413, 415) is answered
 * at the end too, the body read and dropped, because a response queued early
 * makes MHD close the connection while a client may still be sending: most
 * clients then fail with EPIPE before they read the answer.  Only a client
 * that waits for "100 Continue" (it sends nothing yet), or a body too large
 * to drop, is answered at once. */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "guard.h"
#include "jsontext.h"
#include "log.h"

#define HTTP_TIMEOUT_S 120	/* idle connections; a stream that does not drain */
/* The body of a request answered with an error is read and dropped, up to
 * twice the largest body taken; past it the connection is closed. */
#define HTTP_DISCARD_MAX(h) (2 * (uint64_t)(h)->body_max)

struct http {
	struct MHD_Daemon *d;
	const struct http_routes *routes;
	void *arg;
	size_t body_max;
	struct guard guard;	/* token, CORS origins, signed URLs */
	int epoll_fd;
	uint64_t resumes_seen;	/* routes->resumes() at the last http_run */
	bool quiesced;
	char last_error[256];	/* MHD's last message, for http_start's error */
};


/* --- listen address --- */

/* "HOST:PORT", "[V6]:PORT" or ":PORT" into ss; *dual when it is [::]. */
static int
parse_listen(const char *listen, struct sockaddr_storage *ss, bool *dual, char *err,
	     size_t errlen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai;
	char *end = NULL;
	long port = colon != NULL && isdigit((unsigned char)colon[1])
			    ? strtol(colon + 1, &end, 10) : -1;
	size_t hl;
	int rc;

	if (port < 0 || port > 65535 || *end != '\0') {
		snprintf(err, errlen, "http.listen '%s': expected HOST:PORT", listen);
		return -1;
	}
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		listen++;
		hl -= 2;
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	}
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "http.listen '%s': host too long", listen);
		return -1;
	}
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (hl == 0)
		snprintf(host, sizeof(host), "0.0.0.0");
	if ((rc = getaddrinfo(host, NULL, &hints, &ai)) != 0) {
		snprintf(err, errlen, "http.listen '%s': %s", host, gai_strerror(rc));
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_port = htons((uint16_t)port);
		*dual = memcmp(&s6->sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0;
	} else {
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*dual = false;
	}
	return 0;
}

/* Connections MHD may hold: what the fd limit leaves after the
 * supervisor's own (workers' pipes, the database, the log). */
static unsigned
connection_limit(void)
{
	struct rlimit rl;
	rlim_t n = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = rl.rlim_cur;
	n = n > 256 + 64 ? n - 256 : 64;
	return n > 10000 ? 10000 : (unsigned)n;
}

/* --- the access log --- */

static void
copy_path(char *dst, const char *url)
{
	size_t i;

	/* MHD has unescaped the path: a %0A must not split the log line. */
	for (i = 0; i < HTTP_PATH_LOG && url[i] != '\0'; i++)
		dst[i] = (unsigned char)url[i] < 0x20 || url[i] == 0x7f ? '?' : url[i];
	dst[i] = '\0';
	if (url[i] != '\0' && i >= 3)
		memcpy(dst + i - 3, "...", 3);
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

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct http_req *rq = *con_cls;

	(void)conn;
	if (rq == NULL)
		return;
	*con_cls = NULL;
	h->routes->completed(rq);
	/* The path only: MHD keeps the query string apart, and headers
	 * (Authorization) are never logged.  A token given in the query is
	 * marked, never written. */
	log_info("http: %s %s%s %u %" PRIu64 " %" PRId64 "ms%s", rq->method, rq->path,
		 rq->query_token ? "?access_token=[redacted]" : "", rq->status, rq->bytes,
		 clock_now_ms() - rq->start_ms, termination_note(toe));
	free(rq->body);
	free(rq);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http *h = cls;
	size_t n;

	vsnprintf(h->last_error, sizeof(h->last_error), fmt, ap);
	n = strlen(h->last_error);
	while (n > 0 && (h->last_error[n - 1] == '\n' || h->last_error[n - 1] == '.'))
		h->last_error[--n] = '\0';
	/* Once started, MHD mostly reports clients (gone mid-stream, bad
	 * requests): worth a line, not a warning. */
	log_msg(h->d == NULL ? LOG_LVL_WARNING : LOG_LVL_INFO, "http: %s", h->last_error);
}

/* --- responses --- */

/* Every answer to a listed origin says so, whatever the route (an error,
 * a file, a stream): without it the browser hides the answer, and an
 * EventSource takes a refused answer for a network error and reconnects. */
static void
cors_headers(struct http_req *rq, struct MHD_Response *resp)
{
	const struct guard *g = &rq->server->guard;
	const char *origin;

	if (g->norigins == 0)
		return;
	MHD_add_response_header(resp, "Vary", "Origin");
	if ((origin = http_header(rq, "Origin")) != NULL && guard_origin_listed(g, origin))
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
}

enum MHD_Result
http_reply(struct http_req *rq, unsigned status, struct MHD_Response *resp, uint64_t bytes)
{
	enum MHD_Result r;

	rq->responded = true;
	if (resp == NULL) {
		log_errx("http: %s %s: cannot build the response", rq->method, rq->path);
		rq->status = 500;
		return MHD_NO;	/* MHD closes the connection */
	}
	cors_headers(rq, resp);
	rq->status = status;
	rq->bytes = bytes;
	r = MHD_queue_response(rq->conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result
http_reply_text(struct http_req *rq, unsigned status, const char *ctype, char *text,
		size_t len, bool must_free)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, text, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);

	if (resp == NULL) {
		if (must_free)
			free(text);
	} else if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES) {
		MHD_destroy_response(resp);
		resp = NULL;
	}
	return http_reply(rq, status, resp, len);
}

/* Compact JSON and a newline (a terminal's prompt then starts its line). */
static char *
json_text(json_t *v, size_t *len)
{
	char *t = jsontext_dumps(v, JSON_COMPACT), *p;

	json_decref(v);
	if (t == NULL)
		return NULL;
	*len = strlen(t);
	if ((p = realloc(t, *len + 2)) == NULL) {
		free(t);
		return NULL;
	}
	p[(*len)++] = '\n';
	p[*len] = '\0';
	return p;
}

enum MHD_Result
http_reply_json(struct http_req *rq, unsigned status, json_t *v)
{
	struct MHD_Response *resp = NULL;
	size_t len = 0;
	char *text;

	if (v == NULL)
		return http_reply_error(rq, 500, "internal error: cannot read the database");
	if ((text = json_text(v, &len)) != NULL &&
	    (resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE)) == NULL)
		free(text);
	if (resp != NULL) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		if (status == MHD_HTTP_UNAUTHORIZED)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
		if (status == MHD_HTTP_METHOD_NOT_ALLOWED && rq->allow[0] != '\0')
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rq->allow);
	}
	return http_reply(rq, status, resp, len);
}

enum MHD_Result
http_reply_error(struct http_req *rq, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Truncation may have cut a UTF-8 sequence, which JSON refuses. */
	if ((o = json_pack("{ss}", "error", msg)) == NULL) {
		for (char *c = msg; *c != '\0'; c++)
			if ((unsigned char)*c >= 0x80)
				*c = '?';
		o = json_pack("{ss}", "error", msg);
	}
	if (o == NULL)
		return http_reply(rq, status, NULL, 0);
	return http_reply_json(rq, status, o);
}

enum MHD_Result
http_reply_empty(struct http_req *rq, unsigned status)
{
	return http_reply(rq, status,
			  MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT), 0);
}

const char *
http_header(struct http_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *
http_query(struct http_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* --- CORS preflights --- */

/* The methods the path takes (the 405's Allow), the headers a page may
 * send (the token, a JSON body, an EventSource's resume point). */
static enum MHD_Result
reply_preflight(struct http_req *rq)
{
	struct MHD_Response *resp;

	if (rq->allow[0] == '\0')
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "not found");
	resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp != NULL) {
		MHD_add_response_header(resp, "Access-Control-Allow-Methods", rq->allow);
		MHD_add_response_header(resp, "Access-Control-Allow-Headers",
					"Authorization, Content-Type, Last-Event-ID");
		MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
	}
	return http_reply(rq, MHD_HTTP_NO_CONTENT, resp, 0);
}

/* --- requests --- */

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
too_large(struct http_req *rq)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)",
		 rq->server->body_max);
	req_fail(rq, MHD_HTTP_CONTENT_TOO_LARGE, msg);
	free(rq->body);
	rq->body = NULL;
	rq->len = rq->cap = 0;
}

/* What guard.c needs to know of the request. */
static void
guard_request(struct http *h, struct http_req *rq, const char *url, const char *method,
	      struct guard_req *g)
{
	unsigned flags = rq->route != NULL ? h->routes->flags(rq->route) : 0;

	*g = (struct guard_req){
		.method = method, .path = url, .matched = rq->route != NULL,
		.public = flags & HTTP_ROUTE_PUBLIC, .query_token = flags & HTTP_ROUTE_QUERY_TOKEN,
		.signed_url = flags & HTTP_ROUTE_SIGNED,
		.origin = http_header(rq, "Origin"), .host = http_header(rq, MHD_HTTP_HEADER_HOST),
		.forwarded_host = http_header(rq, "X-Forwarded-Host"),
		.authorization = http_header(rq, MHD_HTTP_HEADER_AUTHORIZATION),
		.content_type = http_header(rq, MHD_HTTP_HEADER_CONTENT_TYPE),
		.preflight_method = http_header(rq, "Access-Control-Request-Method"),
		.access_token = http_query(rq, "access_token"),
		.exp = http_query(rq, "exp"), .sig = http_query(rq, "sig"),
		.now = (int64_t)time(NULL),
	};
}

static enum MHD_Result
req_begin(struct http *h, struct http_req *rq, const char *url, const char *method)
{
	unsigned status = 0;
	struct guard_req g;
	char msg[sizeof(rq->err_msg)];

	rq->route = h->routes->match(method, url, rq->id, rq->id2, &status, rq->allow,
				     sizeof(rq->allow));
	guard_request(h, rq, url, method, &g);
	rq->query_token = g.access_token != NULL;
	switch (guard_check(&h->guard, &g, &status, msg, sizeof(msg))) {
	case GUARD_PREFLIGHT:
		rq->preflight = true;
		break;
	case GUARD_REFUSE:
		req_fail(rq, status, msg);
		break;
	case GUARD_PASS:
		if (rq->route == NULL)
			req_fail(rq, status, status == MHD_HTTP_METHOD_NOT_ALLOWED
						     ? "method not allowed" : "not found");
		break;
	}
	if (rq->err_status == 0 && !rq->preflight && (h->routes->flags(rq->route) & HTTP_ROUTE_BODY)) {
		const char *cl = http_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);

		/* strtoull saturates at ULLONG_MAX, itself too large. */
		if (cl != NULL && strtoull(cl, NULL, 10) > h->body_max)
			too_large(rq);
	}
	if (rq->err_status != 0 && answer_early(rq))
		return http_reply_error(rq, rq->err_status, "%s", rq->err_msg);
	return MHD_YES;
}

static enum MHD_Result
req_body(struct http_req *rq, const char *data, size_t n)
{
	rq->received += n;
	if (rq->err_status != 0 || rq->preflight ||
	    !(rq->server->routes->flags(rq->route) & HTTP_ROUTE_BODY))
		return rq->received > HTTP_DISCARD_MAX(rq->server) ? MHD_NO : MHD_YES;
	if (rq->len + n > rq->server->body_max) {
		too_large(rq);
		return MHD_YES;
	}
	if (rq->len + n + 1 > rq->cap) {
		size_t cap = rq->cap != 0 ? rq->cap : 4096;
		char *p;

		while (cap < rq->len + n + 1)
			cap *= 2;
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

static struct http_req *
req_new(struct http *h, struct MHD_Connection *conn, const char *url, const char *method)
{
	struct http_req *rq = calloc(1, sizeof(*rq));

	if (rq == NULL)
		return NULL;
	rq->arg = h->arg;
	rq->server = h;
	rq->conn = conn;
	rq->start_ms = clock_now_ms();
	snprintf(rq->method, sizeof(rq->method), "%s", method);
	copy_path(rq->path, url);
	return rq;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	   const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct http_req *rq = *con_cls;
	size_t n;

	(void)version;
	if (rq == NULL) {
		if ((rq = req_new(h, conn, url, method)) == NULL)
			return MHD_NO;
		*con_cls = rq;
		return req_begin(h, rq, url, method);
	}
	if ((n = *upload_size) != 0) {
		*upload_size = 0;
		return req_body(rq, upload, n);
	}
	if (rq->responded)
		return MHD_YES;
	if (rq->err_status != 0)
		return http_reply_error(rq, rq->err_status, "%s", rq->err_msg);
	if (rq->preflight)
		return reply_preflight(rq);
	return h->routes->handle(rq);
}

/* --- the daemon --- */

static struct MHD_Daemon *
daemon_start(struct http *h, const struct sockaddr_storage *ss, bool dual)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

	if (ss->ss_family == AF_INET6)
		flags |= dual ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
	return MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, h,
		/* First, or MHD logs the options' errors on its own. */
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
		MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
		MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
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

struct http *
http_start(const struct http_routes *routes, void *arg, const struct http_opts *o, char *err,
	   size_t errlen)
{
	const char *listen = o->listen;
	struct http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	bool dual;

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->routes = routes;
	h->arg = arg;
	h->body_max = o->body_max;
	h->guard.urlsig = o->urlsig;
	http_set_token(h, o->token);
	http_set_cors(h, o->cors_origins, o->ncors);
	if (parse_listen(listen, &ss, &dual, err, errlen) < 0) {
		http_free(h);
		return NULL;
	}
	if (mhd_load(err, errlen) < 0) {
		http_free(h);
		return NULL;
	}
	/* A client gone mid-response must give EPIPE, not kill the service. */
	signal(SIGPIPE, SIG_IGN);
	if ((h->d = daemon_start(h, &ss, dual)) == NULL ||
	    (info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD)) == NULL) {
		snprintf(err, errlen, "http.listen %s: %s", listen,
			 h->last_error[0] != '\0' ? h->last_error : "cannot start the HTTP server");
		http_free(h);
		return NULL;
	}
	h->epoll_fd = info->epoll_fd;
	log_info("http: listening on %s (port %d)%s", listen, http_port(h),
		 h->guard.token != NULL ? ", bearer token required for /v1" : "");
	return h;
}

int
http_poll_fd(const struct http *h)
{
	return h->epoll_fd;
}

int
http_timeout_ms(struct http *h)
{
	MHD_UNSIGNED_LONG_LONG t;

	/* A connection resumed since MHD_run began is only processed by the
	 * next MHD_run. */
	if (h->routes->resumes != NULL && h->routes->resumes(h->arg) != h->resumes_seen)
		return 0;
	if (MHD_get_timeout(h->d, &t) != MHD_YES)
		return -1;
	return t > INT_MAX ? INT_MAX : (int)t;
}

void
http_run(struct http *h)
{
	/* Noted before MHD_run: resumes made by handlers inside it (a run
	 * started with an SSE response emits events) need another pass. */
	if (h->routes->resumes != NULL)
		h->resumes_seen = h->routes->resumes(h->arg);
	MHD_run(h->d);
}

void
http_quiesce(struct http *h)
{
	MHD_socket fd;

	if (h == NULL || h->quiesced)
		return;
	h->quiesced = true;
	/* The listening socket is ours to close once MHD lets go of it. */
	if ((fd = MHD_quiesce_daemon(h->d)) != MHD_INVALID_SOCKET)
		close(fd);
	log_info("http: no longer accepting connections (%u open)", http_connections(h));
}

int
http_port(const struct http *h)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);

	return info != NULL ? info->port : -1;
}

unsigned
http_connections(const struct http *h)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

	return info != NULL ? info->num_connections : 0;
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
	guard_free(&h->guard);
	free(h);
}
