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

/* What the application gives the core.  A route is the application's own
 * object, opaque here. */
struct http_routes {
	/* The route of method and path, with the path's {id} (a UUID, lower
	 * case) in id.  NULL when none: *status is 404, or 405 with the
	 * methods the path takes in allow. */
	const void *(*match)(const char *method, const char *path, char id[37],
			     unsigned *status, char *allow, size_t allowlen);
	/* The route reads a request body (others ignore theirs). */
	bool (*takes_body)(const void *route);
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
/* SIGHUP: the new token (NULL: none) applies to the next request. */
void http_set_token(struct http *h, const char *token);
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
	char id[37];		/* the {id} of the path, a UUID */
	char method[8];
	char path[HTTP_PATH_LOG + 1];
	char *body;		/* the upload, NUL-terminated; NULL when empty */
	size_t len, cap;
	uint64_t received;	/* upload bytes seen, kept or not */
	unsigned err_status;	/* found before the body: answered at the end */
	char err_msg[160];
	char allow[32];		/* Allow: header of a 405 */
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

/* The value of a request header, NULL when absent. */
const char *http_header(struct http_req *rq, const char *name);

#endif
