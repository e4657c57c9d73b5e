/* http_internal: the HTTP server's state, shared by its files (http.c, the
 * requests; http_reply.c, the answers; http_metrics.c). */
#ifndef T2I_HTTP_INTERNAL_H
#define T2I_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "http.h"
#include "http_conn.h"
#include "http_log.h"

/* Requests refused before any route, by why (the metrics' reasons). */
enum http_refused {
	HTTP_REFUSED_TIMEOUT,	/* 408: http.request_timeout */
	HTTP_REFUSED_BODIES,	/* 503: http.max_body_memory */
	HTTP_REFUSED_FRAMING,	/* 400: see http_frame.h */
	HTTP_REFUSED_HOST,	/* 421: http.server_names */
	HTTP_REFUSED_KINDS
};

struct http {
	struct MHD_Daemon *d;
	const struct http_routes *routes;
	void *arg;
	char *listen;			/* http.listen as it started */
	size_t body_max;		/* one body */
	size_t bodies_max;		/* every body held at once */
	size_t bodies;			/* bytes held (reserved) now */
	unsigned stall_s;		/* http.sse_stall_timeout */
	struct guard guard;		/* Host, token, CORS origins, signed URLs */
	struct http_conns conns;
	struct http_log log;
	int epoll_fd;
	int port;
	uint64_t resumes_seen;		/* routes->resumes() at the last http_run */
	uint64_t refused[HTTP_REFUSED_KINDS];
	uint64_t streams_stalled;	/* event streams dropped: no progress */
	bool quiesced;
	char last_error[256];		/* MHD's last message, for http_start's error */
};

/* The 204 of a CORS preflight from a listed origin (http_reply.c). */
enum MHD_Result http_reply_preflight(struct http_req *rq);

#endif
