/* api_web: the dashboard.  Its page and files are public: they hold no
 * data (the page asks the API for everything, with the token).  They are
 * sent with a Content-Security-Policy that lets the page load its own
 * script, style and images and talk to its own origin, nothing else: no
 * inline script, no other site, no framing. */
#include "api_web.h"

#include <string.h>

#include "service.h"
#include "webasset.h"

#define WEB_PREFIX "/ui/"

static const char web_csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
	" connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/* If-None-Match holds the file's ETag (or "*"): the browser's copy is
 * current.  Weak comparison (W/ prefixes match too), as RFC 9110 says for
 * this header. */
static bool
not_modified(struct http_req *rq, const struct webasset *a)
{
	const char *inm = http_header(rq, MHD_HTTP_HEADER_IF_NONE_MATCH);

	return inm != NULL && (strstr(inm, a->etag) != NULL || strcmp(inm, "*") == 0);
}

static void
web_headers(struct MHD_Response *resp, const struct webasset *a)
{
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
	/* Kept, but checked on every load: a new binary's dashboard is seen
	 * at once, and an unchanged one costs a 304. */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "Content-Security-Policy", web_csp);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result
send_asset(struct http_req *rq, const struct webasset *a)
{
	struct MHD_Response *resp;
	bool same = not_modified(rq, a);

	/* The bytes are the binary's own, never freed. */
	resp = MHD_create_response_from_buffer(same ? 0 : a->len, (void *)a->data,
					       MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return http_reply(rq, 500, NULL, 0);
	web_headers(resp, a);
	if (same)
		return http_reply(rq, MHD_HTTP_NOT_MODIFIED, resp, 0);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
	return http_reply(rq, MHD_HTTP_OK, resp, a->len);
}

enum MHD_Result
api_web_index(struct http_req *rq)
{
	const struct webasset *a = webasset_find("index.html");

	if (a == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "this build has no dashboard");
	return send_asset(rq, a);
}

enum MHD_Result
api_web_file(struct http_req *rq)
{
	const struct webasset *a = NULL;

	/* The page itself is only at /: one URL for it, and relative links
	 * mean the same from wherever it is. */
	if (strncmp(rq->path, WEB_PREFIX, strlen(WEB_PREFIX)) == 0 &&
	    strcmp(rq->path + strlen(WEB_PREFIX), "index.html") != 0)
		a = webasset_find(rq->path + strlen(WEB_PREFIX));
	if (a == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "not found");
	return send_asset(rq, a);
}

/* What the page must know before its first call: whether to ask for a
 * token.  A 401 would tell it too, but as an error in the browser's
 * console on every first visit; this says no more than that 401 does. */
enum MHD_Result
api_web_service(struct http_req *rq)
{
	return http_reply_json(rq, MHD_HTTP_OK,
			       json_pack("{sb ss}", "token_required",
					 service_token_required(api_req_service(rq)), "version",
					 T2I_VERSION));
}
