/* http: the HTTP server of `t2istage serve`, libmicrohttpd driven from the
 * supervisor's poll() loop.  MHD runs in external-epoll mode: no thread of its
 * own, one epoll fd for the loop to poll, and MHD_run() called when it is
 * readable or its timeout is due.
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
#include "mhd.h"

struct http;
struct http_req;
struct urlsig;

/* What a route takes besides a bearer token in Authorization. */
enum http_route_flags {
	HTTP_ROUTE_BODY = 1u << 0,	/* reads a request body (others drop theirs) */
	HTTP_ROUTE_PUBLIC = 1u << 1,	/* needs no token (/healthz, /metrics) */
	HTTP_ROUTE_QUERY_TOKEN = 1u << 2, /* takes ?access_token= too: EventSource
					   * cannot send a header */
	HTTP_ROUTE_SIGNED = 1u << 3,	/* takes a signed URL (?exp=&sig=, see
					 * urlsig.h) instead of the token */
};

/* What the application gives the core.  A route is the application's own
 * object, opaque here. */
struct http_routes {
	/* The route of method and path, with the path's {id} segments (UUIDs,
	 * lower case) in id and id2.  NULL when none: *status is 404, or 405
	 * with the methods the path takes in allow. */
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
};

/* routes and arg stay the caller's and must outlive the server.  On error
 * NULL and one line in err. */
struct http *http_start(const struct http_routes *routes, void *arg, const struct http_opts *o,
			char *err, size_t errlen);
/* MHD's epoll fd: poll it for POLLIN. */
int http_poll_fd(const struct http *h);
/* Milliseconds until http_run must be called: -1 none, 0 now (a stream was
 * resumed since the last http_run, or MHD has work pending). */
int http_timeout_ms(struct http *h);
/* Does whatever is ready, without blocking. */
void http_run(struct http *h);
/* SIGTERM: stop accepting connections; open ones (streams) are served on. */
void http_quiesce(struct http *h);
/* SIGHUP: the new token (NULL: none) and origins apply to the next request. */
void http_set_token(struct http *h, const char *token);
void http_set_cors(struct http *h, char *const *origins, size_t n);
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
	const void *route;	/* from routes->match */
	char id[37];		/* the first {id} of the path, a UUID */
	char id2[37];		/* the second, or "" */
	char method[8];
	char path[HTTP_PATH_LOG + 1];
	char *body;		/* the upload, NUL-terminated; NULL when empty */
	size_t len, cap;
	uint64_t received;	/* upload bytes seen, kept or not */
	unsigned err_status;	/* found before the body: answered at the end */
	char err_msg[160];
	char allow[48];		/* Allow: header of a 405 */
	bool preflight;		/* a CORS preflight, answered by the core */
	bool query_token;	/* ?access_token= was given: logged as [redacted] */
	bool responded;
	unsigned status;
	uint64_t bytes;		/* response body bytes, for the access log */
	int64_t start_ms;
	void *stream;		/* the application's, while a stream serves it */
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

/* The value of a request header, or of an argument of the query string;
 * NULL when absent. */
const char *http_header(struct http_req *rq, const char *name);
const char *http_query(struct http_req *rq, const char *name);

#endif
