/* http: the HTTP server of `t2istage serve`, libmicrohttpd driven from the
 * supervisor's poll() loop.  MHD runs in external-epoll mode: no thread of its
 * own, one epoll fd for the loop to poll, and MHD_run() called when it is
 * readable or its timeout is due.  The service accepts connections itself
 * (http_conn.h) and hands them to MHD; it checks each request's head
 * (http_frame.h) and who may make it (guard.h) before any route runs.
 *
 * The core knows no route: like nginx's HTTP core, it calls the application
 * through a table (struct http_routes, filled by api.c) with an opaque
 * argument, so nothing here includes the layers above it. */
#ifndef T2I_HTTP_H
#define T2I_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include "http_frame.h"
#include "mhd.h"

struct http;
struct http_conn;
struct http_req;
struct pollfd;
struct urlsig;

/* What a route takes besides a bearer token in Authorization. */
enum http_route_flags {
	HTTP_ROUTE_BODY = 1u << 0,	/* reads a request body (others drop theirs) */
	HTTP_ROUTE_PUBLIC = 1u << 1,	/* needs no token (/healthz, /metrics) */
	HTTP_ROUTE_QUERY_TOKEN = 1u << 2, /* takes ?access_token= too: EventSource
					   * cannot send a header */
	HTTP_ROUTE_SIGNED = 1u << 3,	/* takes a signed URL (?exp=&sig=, see
					 * urlsig.h) instead of the token */
	HTTP_ROUTE_ANY_HOST = 1u << 4,	/* answers whatever the Host (/healthz:
					 * a probe names the machine as it likes) */
};

/* What the application gives the core.  A route is the application's own
 * object, opaque here. */
struct http_routes {
	/* The route of method and path, with the path's {id} segments (UUIDs,
	 * lower case) in id and id2.  NULL when none: *status is 404, or 405
	 * with the methods the path takes in allow.  HEAD is asked as GET. */
	const void *(*match)(const char *method, const char *path, char id[37], char id2[37],
			     unsigned *status, char *allow, size_t allowlen);
	/* The route's HTTP_ROUTE_* flags. */
	unsigned (*flags)(const void *route);
	/* Answers the complete request (rq->route, rq->body). */
	enum MHD_Result (*handle)(struct http_req *rq);
	/* The request is over, answered or abandoned: release what the
	 * application attached to it (rq->stream) and count it.  Called
	 * before the access log line, so that it can set rq->bytes. */
	void (*completed)(struct http_req *rq);
	/* A counter the application bumps when it resumes a suspended
	 * connection: the core then runs MHD again at once.  May be NULL. */
	uint64_t (*resumes)(void *arg);
	/* Before MHD stops: every suspended connection must be resumed so that
	 * it can end.  May be NULL. */
	void (*shutdown)(void *arg);
};

struct http_opts {
	/* "127.0.0.1:8080", "[::1]:8080", ":8080" (every IPv4 address) or
	 * "[::]:8080" (IPv6 and IPv4); port 0 picks a free port (http_port). */
	const char *listen;
	const char *token;	/* NULL: no authentication */
	size_t body_max;	/* largest request body taken */
	/* Origins of other sites allowed to call (CORS), "scheme://host[:port]". */
	char *const *cors_origins;
	size_t ncors;
	/* Checks signed URLs; the caller's, changed in place on reload. */
	const struct urlsig *urlsig;
	/* What Host may name (http.server_names); none: the defaults. */
	char *const *server_names;
	size_t nserver_names;
	unsigned max_connections, max_connections_per_ip;
	int request_timeout_s;	/* a request's first byte to its last */
	int stall_s;		/* an event stream without progress is dropped */
	size_t bodies_max;	/* request bodies held at once, in bytes */
};

/* routes and arg stay the caller's and must outlive the server.  On error
 * NULL and one line in err. */
struct http *http_start(const struct http_routes *routes, void *arg, const struct http_opts *o,
			char *err, size_t errlen);
/* The fds to poll for POLLIN (MHD's epoll fd, the listening socket) into
 * pfd; returns how many (at most 2). */
int http_poll_fds(const struct http *h, struct pollfd *pfd, int max);
/* Milliseconds until http_run must be called: -1 none, 0 now (a stream was
 * resumed since the last http_run, or MHD has work pending). */
int http_timeout_ms(struct http *h);
/* Does whatever is ready, without blocking; pfd are those of
 * http_poll_fds, after poll(). */
void http_run(struct http *h, const struct pollfd *pfd, int n);
/* SIGTERM: stop accepting connections; open ones (streams) are served on. */
void http_quiesce(struct http *h);
/* SIGHUP: the new token (NULL: none), origins and names apply to the next
 * request. */
void http_set_token(struct http *h, const char *token);
void http_set_cors(struct http *h, char *const *origins, size_t n);
void http_set_server_names(struct http *h, char *const *names, size_t n);
/* And these; max_connections and request_timeout_s stay as they started. */
void http_set_limits(struct http *h, unsigned max_connections_per_ip, int stall_s,
		     size_t bodies_max);
/* The server's counters and gauges as Prometheus text (malloc'd). */
char *http_metrics(const struct http *h);
/* The bound port, and the connections open (streams included). */
int http_port(const struct http *h);
unsigned http_connections(const struct http *h);
/* Ends every stream and closes every connection.  Call before sse_free. */
void http_free(struct http *h);

/* --- for the application: one request --- */

#define HTTP_PATH_LOG 200	/* bytes of the path kept for the access log */

struct http_req {
	void *arg;		/* the application's, given to http_start */
	struct http *server;
	struct MHD_Connection *conn;
	struct http_conn *hc;	/* its connection's record */
	const void *route;	/* from routes->match */
	char id[37];		/* the first {id} of the path, a UUID */
	char id2[37];		/* the second, or "" */
	char method[16];
	char path[HTTP_PATH_LOG + 1]; /* as routed, for the log */
	char *body;		/* the upload, NUL-terminated; NULL when empty */
	size_t len, cap;
	size_t reserved;	/* bytes of server->bodies held for it */
	uint64_t received;	/* upload bytes seen, kept or not */
	unsigned err_status;	/* found before the body: answered at the end */
	char err_msg[160];
	char allow[48];		/* Allow: header of a 405 */
	bool begun;		/* its head was read (the access handler ran) */
	bool head;		/* HEAD: a GET route, answered without a body */
	bool close;		/* the answer ends the connection (bad framing) */
	bool preflight;		/* a CORS preflight, answered by the core */
	bool query_token;	/* ?access_token= was given: logged as [redacted] */
	bool responded;
	bool streaming;		/* answered with an event stream */
	bool timed_out;		/* http.request_timeout passed: 408 */
	unsigned status;
	uint64_t bytes;		/* response body bytes, for the access log */
	int64_t start_ms;
	void *stream;		/* the application's, while a stream serves it */
	/* The raw target, read before MHD decoded it. */
	struct http_target target;
};

/* Each queues the response and returns what the access handler returns.
 * bytes is the body size for the access log. */
enum MHD_Result http_reply(struct http_req *rq, unsigned status, struct MHD_Response *resp,
			   uint64_t bytes);
/* Takes the reference to v; NULL v is a 500. */
enum MHD_Result http_reply_json(struct http_req *rq, unsigned status, json_t *v);
enum MHD_Result http_reply_error(struct http_req *rq, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum MHD_Result http_reply_text(struct http_req *rq, unsigned status, const char *ctype,
				char *text, size_t len, bool must_free);

/* No body (204 No Content). */
enum MHD_Result http_reply_empty(struct http_req *rq, unsigned status);
/* An event stream: its socket's send buffer is capped (HTTP_STREAM_SNDBUF),
 * so that a client that reads nothing pins little kernel memory, and it is
 * dropped when it makes no progress for http.sse_stall_timeout. */
#define HTTP_STREAM_SNDBUF 32768
enum MHD_Result http_reply_stream(struct http_req *rq, struct MHD_Response *resp);

/* The value of a request header, or of an argument of the query string;
 * NULL when absent. */
const char *http_header(struct http_req *rq, const char *name);
const char *http_query(struct http_req *rq, const char *name);

#endif
