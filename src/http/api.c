/* api: the routes of the HTTP API (the contract's table), matched for the
 * HTTP core, and /healthz and /metrics.  The handlers of projects, runs
 * and images live in api_project.c, api_run.c and api_image.c. */
#include "api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_image.h"
#include "api_project.h"
#include "api_req.h"
#include "api_run.h"
#include "api_web.h"
#include "project.h"
#include "service.h"
#include "sse.h"

struct api_route {
	const char *method;
	const char *pattern;	/* "{}" is one path segment: a UUID; at most two.
				 * "*" is one segment of any name (the handler
				 * reads it from rq->path). */
	api_fn *fn;
	unsigned flags;		/* HTTP_ROUTE_* */
};

static enum MHD_Result
get_healthz(struct http_req *rq)
{
	return http_reply_text(rq, MHD_HTTP_OK, "text/plain; charset=utf-8", (char *)"ok", 2,
			       false);
}

/* No token, like /healthz: Prometheus scrapes without one, and the text
 * holds counts only (no project, prompt or secret). */
static enum MHD_Result
get_metrics(struct http_req *rq)
{
	char *text = service_metrics(api_req_service(rq));

	if (text == NULL)
		return http_reply_error(rq, 500, "cannot render the metrics");
	return http_reply_text(rq, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
			       strlen(text), true);
}

#define BODY HTTP_ROUTE_BODY
#define PUBLIC HTTP_ROUTE_PUBLIC
#define STREAM HTTP_ROUTE_QUERY_TOKEN
#define SIGNED HTTP_ROUTE_SIGNED

/* Cancel and DELETE take no arguments, but read their body to check it is
 * empty or {}. */
static const struct api_route routes[] = {
	{ "GET", "/", api_web_index, PUBLIC },
	{ "GET", "/ui/service.json", api_web_service, PUBLIC },
	{ "GET", "/ui/*", api_web_file, PUBLIC },
	{ "GET", "/healthz", get_healthz, PUBLIC | HTTP_ROUTE_ANY_HOST },
	{ "GET", "/metrics", get_metrics, PUBLIC },
	{ "GET", "/v1/projects", api_project_list, 0 },
	{ "POST", "/v1/projects", api_project_post, BODY },
	{ "GET", "/v1/projects/{}", api_project_get, 0 },
	{ "DELETE", "/v1/projects/{}", api_project_delete, BODY },
	{ "PATCH", "/v1/projects/{}/storyboards/{}", api_project_patch_storyboard, BODY },
	{ "GET", "/v1/projects/{}/runs", api_run_list, 0 },
	{ "POST", "/v1/projects/{}/image-generation", api_run_start, BODY },
	{ "GET", "/v1/projects/{}/image-generation/events", api_run_latest_events, STREAM },
	{ "POST", "/v1/projects/{}/image-generation/cancel", api_run_cancel, BODY },
	{ "GET", "/v1/projects/{}/images", api_project_images, 0 },
	{ "GET", "/v1/runs/{}", api_run_get, 0 },
	{ "GET", "/v1/runs/{}/events", api_run_events, STREAM },
	{ "GET", "/v1/images/{}", api_image_get, 0 },
	{ "GET", "/v1/images/{}/file", api_image_file, SIGNED },
	{ "GET", "/v1/images/{}/thumbnail", api_image_thumbnail, SIGNED },
};

/* Matches path against pattern; each {} segment goes to segs (*segs_ok
 * false when one is no UUID).  Returns the number of segments, -1 when the
 * path does not fit the pattern. */
static int
pattern_match(const char *pat, const char *path, char segs[2][37], bool *segs_ok)
{
	int n = 0;

	*segs_ok = true;
	while (*pat != '\0') {
		if (pat[0] == '*') {
			size_t len = strcspn(path, "/");

			if (len == 0)
				return -1;
			path += len;
			pat++;
			continue;
		}
		if (pat[0] == '{' && pat[1] == '}') {
			size_t len = strcspn(path, "/");

			if (len == 0 || n == 2)
				return -1;
			if (len < 37) {
				memcpy(segs[n], path, len);
				segs[n][len] = '\0';
			}
			/* An id that is no UUID names nothing that exists. */
			if (len >= 37 || !project_is_uuid(segs[n]))
				*segs_ok = false;
			n++;
			path += len;
			pat += 2;
			continue;
		}
		if (*pat++ != *path++)
			return -1;
	}
	return *path == '\0' ? n : -1;
}

static void
allow_add(char *allow, size_t allowlen, const char *method)
{
	size_t n = strlen(allow);

	if (strstr(allow, method) == NULL)
		snprintf(allow + n, allowlen - n, "%s%s", n > 0 ? ", " : "", method);
}

static void
lower_id(char out[37], const char *seg)
{
	for (size_t k = 0; k < 36; k++)
		out[k] = (char)tolower((unsigned char)seg[k]);
	out[36] = '\0';
}

static const void *
api_match(const char *method, const char *path, char id[37], char id2[37], unsigned *status,
	  char *allow, size_t allowlen)
{
	char segs[2][37];

	allow[0] = '\0';
	id[0] = id2[0] = '\0';
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		bool segs_ok;
		int n = pattern_match(routes[i].pattern, path, segs, &segs_ok);

		if (n < 0)
			continue;
		if (!segs_ok) {
			*status = MHD_HTTP_NOT_FOUND;
			return NULL;
		}
		if (strcmp(routes[i].method, method) != 0) {
			allow_add(allow, allowlen, routes[i].method);
			continue;
		}
		if (n >= 1)
			lower_id(id, segs[0]);
		if (n == 2)
			lower_id(id2, segs[1]);
		return &routes[i];
	}
	*status = allow[0] != '\0' ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND;
	return NULL;
}

static unsigned
api_flags(const void *route)
{
	const struct api_route *r = route;

	return r != NULL ? r->flags : 0;
}

static enum MHD_Result
api_handle(struct http_req *rq)
{
	const struct api_route *r = rq->route;

	return r->fn(rq);
}

static void
api_completed(struct http_req *rq)
{
	if (rq->stream != NULL) {
		rq->bytes = sse_client_bytes(rq->stream);
		sse_client_unlink(rq->stream);
	}
	service_count_request(api_req_service(rq), (int)rq->status);
}

static uint64_t
api_resumes(void *arg)
{
	return sse_resumes(service_sse(arg));
}

static void
api_shutdown(void *arg)
{
	sse_shutdown(service_sse(arg));
}

const struct http_routes api_routes = {
	.match = api_match,
	.flags = api_flags,
	.handle = api_handle,
	.completed = api_completed,
	.resumes = api_resumes,
	.shutdown = api_shutdown,
};
