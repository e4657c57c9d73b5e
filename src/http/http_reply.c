/* http_reply: the answers of the HTTP server, with the headers every answer
 * may need (CORS, Connection: close, Retry-After), and the lookups of a
 * request's headers and arguments. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http_internal.h"
#include "jsontext.h"
#include "log.h"

#define RETRY_AFTER "5"	/* seconds, in a 503 */

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
	if (rq->hc != NULL)
		http_conn_answered(&rq->server->conns, rq->hc);
	if (resp == NULL) {
		log_errx("http: %s %s: cannot build the response", rq->method, rq->path);
		rq->status = 500;
		return MHD_NO;	/* MHD closes the connection */
	}
	cors_headers(rq, resp);
	/* After a head whose framing is in doubt, nothing more is read. */
	if (rq->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER);
	rq->status = status;
	rq->bytes = rq->head ? 0 : bytes;	/* MHD sends no body to HEAD */
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

/* A client that reads nothing fills its socket's send buffer, which the
 * kernel otherwise grows to megabytes; MHD then makes no progress on it,
 * and its timeout, set to the stall timeout, ends it.  (A stream waiting
 * for events is suspended, and MHD times out no suspended connection.) */
enum MHD_Result
http_reply_stream(struct http_req *rq, struct MHD_Response *resp)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	int size = HTTP_STREAM_SNDBUF;

	if (resp != NULL && !rq->head) {
		if (ci != NULL)
			setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		MHD_set_connection_option(rq->conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  rq->server->stall_s);
		rq->streaming = true;
	}
	return http_reply(rq, MHD_HTTP_OK, resp, 0);
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

/* The methods the path takes (the 405's Allow), the headers a page may
 * send (the token, a JSON body, an EventSource's resume point). */
enum MHD_Result
http_reply_preflight(struct http_req *rq)
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
