/* api: the routes of the HTTP API.  Each handler answers a complete request
 * (its body, if any, in rq->body) with JSON, a file or an SSE stream. */
#include "api.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "project.h"
#include "service.h"
#include "sse.h"
#include "store.h"

typedef enum MHD_Result api_fn(struct http_req *rq);

struct api_route {
	const char *method;
	const char *pattern;	/* "{}" is one path segment: a UUID */
	api_fn *fn;
	bool body;
};

/* --- small helpers --- */

static struct service *
service_of(struct http_req *rq)
{
	return rq->arg;
}

static struct store *
store_of(struct http_req *rq)
{
	return service_store(service_of(rq));
}

static enum MHD_Result
no_project(struct http_req *rq)
{
	return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "project %s not found", rq->id);
}

static enum MHD_Result
reply_stream(struct http_req *rq, const char *run_id, int64_t after_seq)
{
	struct MHD_Response *resp =
		sse_response(service_sse(service_of(rq)), rq->conn, run_id, rq->id, after_seq,
			     (struct sse_client **)&rq->stream);

	return http_reply(rq, MHD_HTTP_OK, resp, 0);
}

static bool
only_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

/* --- /healthz, /metrics --- */

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
	char *text = service_metrics(service_of(rq));

	if (text == NULL)
		return http_reply_error(rq, 500, "cannot render the metrics");
	return http_reply_text(rq, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
			       strlen(text), true);
}

/* --- projects --- */

static enum MHD_Result
post_project(struct http_req *rq)
{
	char pid[37], err[512];
	int status = service_import(service_of(rq), rq->body != NULL ? rq->body : "", rq->len, pid, err,
				    sizeof(err));

	if (status != MHD_HTTP_CREATED)
		return http_reply_error(rq, (unsigned)status, "%s", err);
	return http_reply_json(rq, MHD_HTTP_CREATED, store_query_project(store_of(rq), pid));
}

static bool
image_completed(json_t *im)
{
	const char *s = json_string_value(json_object_get(im, "status"));

	return s != NULL && strcmp(s, "completed") == 0;
}

/* Each storyboard gets its current image (store_query_current_images), or
 * null, as "image". */
static void
attach_images(json_t *sbs, json_t *images)
{
	json_t *by_sb = json_object(), *im, *sb;
	size_t i;

	json_array_foreach(images, i, im) {
		const char *sid = json_string_value(json_object_get(im, "storyboard_id"));

		if (sid != NULL)
			json_object_set(by_sb, sid, im);
	}
	json_array_foreach(sbs, i, sb) {
		const char *id = json_string_value(json_object_get(sb, "id"));
		json_t *v = id != NULL ? json_object_get(by_sb, id) : NULL;

		json_object_set(sb, "image", v != NULL ? v : json_null());
	}
	json_decref(by_sb);
}

static enum MHD_Result
get_project(struct http_req *rq)
{
	struct store *st = store_of(rq);
	json_t *p, *sbs, *images;

	if (!store_project_exists(st, rq->id))
		return no_project(rq);
	p = store_query_project(st, rq->id);
	sbs = store_query_storyboards(st, rq->id, NULL, false);
	images = store_query_current_images(st, rq->id);
	if (p == NULL || sbs == NULL || images == NULL) {
		json_decref(p);
		json_decref(sbs);
		json_decref(images);
		return http_reply_json(rq, 500, NULL);
	}
	attach_images(sbs, images);
	json_decref(images);
	json_object_set_new(p, "storyboards", sbs);
	return http_reply_json(rq, MHD_HTTP_OK, p);
}

static enum MHD_Result
get_project_images(struct http_req *rq)
{
	struct store *st = store_of(rq);
	json_t *images;

	if (!store_project_exists(st, rq->id))
		return no_project(rq);
	if ((images = store_query_images(st, rq->id)) == NULL)
		return http_reply_json(rq, 500, NULL);
	return http_reply_json(rq, MHD_HTTP_OK,
			       json_pack("{ss so}", "project_id", rq->id, "images", images));
}

/* --- runs --- */

static int
check_ids(json_t *v, char *err, size_t errlen)
{
	size_t i;
	json_t *id;

	if (!json_is_array(v)) {
		snprintf(err, errlen, "storyboard_ids: must be an array of storyboard ids");
		return -1;
	}
	json_array_foreach(v, i, id) {
		if (!json_is_string(id)) {
			snprintf(err, errlen, "storyboard_ids[%zu]: must be a string", i);
			return -1;
		}
	}
	return 0;
}

static int
check_member(const char *key, json_t *v, json_t **ids, bool *no_cache, char *err,
	     size_t errlen)
{
	if (json_is_null(v))
		return 0;	/* null counts as absent, as in project files */
	if (strcmp(key, "storyboard_ids") == 0) {
		if (check_ids(v, err, errlen) < 0)
			return -1;
		*ids = json_incref(v);
	} else if (strcmp(key, "no_cache") == 0) {
		if (!json_is_boolean(v)) {
			snprintf(err, errlen, "no_cache: must be true or false");
			return -1;
		}
		*no_cache = json_is_true(v);
	} else {
		snprintf(err, errlen, "unknown member '%.64s' (known: storyboard_ids, no_cache)",
			 key);
		return -1;
	}
	return 0;
}

/* The optional body {"storyboard_ids": [...], "no_cache": false}. */
static int
parse_run_body(struct http_req *rq, json_t **ids, bool *no_cache, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o, *v;
	const char *key;
	int rc = 0;

	*ids = NULL;
	*no_cache = false;
	if (rq->body == NULL || only_space(rq->body, rq->len))
		return 0;
	if ((o = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", je.line, je.column,
			 je.text);
		return -1;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen, "the body must be a JSON object");
		rc = -1;
	}
	json_object_foreach(o, key, v) {
		if (rc == 0 && check_member(key, v, ids, no_cache, err, errlen) < 0)
			rc = -1;
	}
	json_decref(o);
	if (rc < 0) {
		json_decref(*ids);
		*ids = NULL;
	}
	return rc;
}

static bool
wants_stream(struct http_req *rq)
{
	const char *accept = http_header(rq, MHD_HTTP_HEADER_ACCEPT);

	return accept != NULL && strcasestr(accept, "text/event-stream") != NULL;
}

static enum MHD_Result
post_run(struct http_req *rq)
{
	char run_id[37], err[512];
	json_t *ids;
	bool no_cache;
	int status;

	if (parse_run_body(rq, &ids, &no_cache, err, sizeof(err)) < 0)
		return http_reply_error(rq, MHD_HTTP_BAD_REQUEST, "%s", err);
	status = service_start(service_of(rq), rq->id, ids, no_cache, run_id, err, sizeof(err));
	json_decref(ids);
	if (status != MHD_HTTP_ACCEPTED)
		return http_reply_error(rq, (unsigned)status, "%s", err);
	/* The original Django view answered with the run's stream. */
	if (wants_stream(rq))
		return reply_stream(rq, run_id, 0);
	return http_reply_json(rq, MHD_HTTP_ACCEPTED,
			       json_pack("{ss ss ss}", "run_id", run_id, "project_id", rq->id,
					 "status", "processing"));
}

/* Last-Event-ID: the seq of the last event the client has; -1 when bad. */
static int64_t
last_event_id(struct http_req *rq)
{
	const char *v = http_header(rq, MHD_HTTP_HEADER_LAST_EVENT_ID);
	char *end;
	long long seq;

	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	seq = strtoll(v, &end, 10);
	/* Bounded so that the cursor (seq + 1) cannot overflow. */
	if (!isdigit((unsigned char)*v) || *end != '\0' || errno != 0 || seq > INT64_MAX / 2)
		return -1;
	return seq;
}

static enum MHD_Result
get_events(struct http_req *rq)
{
	struct store *st = store_of(rq);
	char run_id[37];
	int64_t after = last_event_id(rq);
	int rc;

	if (!store_project_exists(st, rq->id))
		return no_project(rq);
	if (after < 0)
		return http_reply_error(rq, MHD_HTTP_BAD_REQUEST,
					"Last-Event-ID: expected the seq of an event");
	if ((rc = store_run_latest(st, rq->id, run_id)) < 0)
		return http_reply_json(rq, 500, NULL);
	if (rc == 0)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "project %s has no run", rq->id);
	return reply_stream(rq, run_id, after);
}

static enum MHD_Result
post_cancel(struct http_req *rq)
{
	char run_id[37], err[512];
	int status = service_cancel(service_of(rq), rq->id, run_id, err, sizeof(err));

	if (status != MHD_HTTP_ACCEPTED)
		return http_reply_error(rq, (unsigned)status, "%s", err);
	return http_reply_json(rq, MHD_HTTP_ACCEPTED,
			       json_pack("{ss ss}", "run_id", run_id, "status", "cancelling"));
}

/* --- images --- */

static json_t *
find_image(struct http_req *rq)
{
	return store_query_image(store_of(rq), rq->id);
}

static enum MHD_Result
get_image(struct http_req *rq)
{
	json_t *im = find_image(rq);

	if (im == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s not found", rq->id);
	return http_reply_json(rq, MHD_HTTP_OK, im);
}

static const char *
mime_of_path(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot == NULL)
		return "application/octet-stream";
	if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0)
		return "image/jpeg";
	if (strcasecmp(dot, ".png") == 0)
		return "image/png";
	if (strcasecmp(dot, ".webp") == 0)
		return "image/webp";
	return "application/octet-stream";
}

/* The file's bytes, sent by MHD with sendfile(); MHD owns and closes fd. */
static enum MHD_Result
send_file(struct http_req *rq, const char *path, const char *mime, const char *sha256)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct MHD_Response *resp;
	struct stat sb;
	char etag[72];
	const char *why = NULL;

	if (fd < 0 && errno == ENOENT)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s: file missing", rq->id);
	if (fd < 0 || fstat(fd, &sb) < 0)
		why = strerror(errno);
	else if (!S_ISREG(sb.st_mode))
		why = "not a regular file";
	if (why != NULL) {
		log_errx("http: image %s: cannot read %s: %s", rq->id, path, why);
		if (fd >= 0)
			close(fd);
		return http_reply_error(rq, 500, "image %s: cannot read its file: %s", rq->id, why);
	}
	if ((resp = MHD_create_response_from_fd64((uint64_t)sb.st_size, fd)) == NULL) {
		close(fd);
		return http_reply(rq, 500, NULL, 0);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime);
	/* Files are named by their sha256: the strongest of validators. */
	if (sha256 != NULL && *sha256 != '\0' && strlen(sha256) < sizeof(etag) - 2) {
		snprintf(etag, sizeof(etag), "\"%s\"", sha256);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	}
	return http_reply(rq, MHD_HTTP_OK, resp, (uint64_t)sb.st_size);
}

static enum MHD_Result
get_image_file(struct http_req *rq)
{
	json_t *im = find_image(rq);
	const char *path = json_string_value(json_object_get(im, "file_path"));
	const char *mime = json_string_value(json_object_get(im, "mime"));
	enum MHD_Result r;

	if (im == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s not found", rq->id);
	if (!image_completed(im) || path == NULL || *path == '\0') {
		r = http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s has no file (status %s)",
				     rq->id, json_string_value(json_object_get(im, "status")));
	} else {
		r = send_file(rq, path, mime != NULL && *mime != '\0' ? mime : mime_of_path(path),
			      json_string_value(json_object_get(im, "sha256")));
	}
	json_decref(im);
	return r;
}

static enum MHD_Result
get_image_thumbnail(struct http_req *rq)
{
	json_t *im = find_image(rq);
	const char *path = json_string_value(json_object_get(im, "thumbnail_path"));
	enum MHD_Result r;

	if (im == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s not found", rq->id);
	if (path == NULL || *path == '\0')
		r = http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s has no thumbnail", rq->id);
	else
		r = send_file(rq, path, mime_of_path(path), NULL);
	json_decref(im);
	return r;
}

/* --- routing --- */

static const struct api_route routes[] = {
	{ "GET", "/healthz", get_healthz, false },
	{ "GET", "/metrics", get_metrics, false },
	{ "POST", "/v1/projects", post_project, true },
	{ "GET", "/v1/projects/{}", get_project, false },
	{ "POST", "/v1/projects/{}/image-generation", post_run, true },
	{ "GET", "/v1/projects/{}/image-generation/events", get_events, false },
	{ "POST", "/v1/projects/{}/image-generation/cancel", post_cancel, false },
	{ "GET", "/v1/projects/{}/images", get_project_images, false },
	{ "GET", "/v1/images/{}", get_image, false },
	{ "GET", "/v1/images/{}/file", get_image_file, false },
	{ "GET", "/v1/images/{}/thumbnail", get_image_thumbnail, false },
};

/* Matches path against pattern; the {} segment goes to seg (*seg_ok false
 * when it does not fit). */
static bool
pattern_match(const char *pat, const char *path, char *seg, size_t seglen, bool *seg_ok)
{
	while (*pat != '\0') {
		if (pat[0] == '{' && pat[1] == '}') {
			size_t n = strcspn(path, "/");

			if (n == 0)
				return false;
			*seg_ok = n < seglen;
			if (*seg_ok) {
				memcpy(seg, path, n);
				seg[n] = '\0';
			}
			path += n;
			pat += 2;
			continue;
		}
		if (*pat++ != *path++)
			return false;
	}
	return *path == '\0';
}

static void
allow_add(char *allow, size_t allowlen, const char *method)
{
	size_t n = strlen(allow);

	if (strstr(allow, method) == NULL)
		snprintf(allow + n, allowlen - n, "%s%s", n > 0 ? ", " : "", method);
}

static const void *
api_match(const char *method, const char *path, char id[37], unsigned *status, char *allow,
	  size_t allowlen)
{
	char seg[37];

	allow[0] = '\0';
	id[0] = '\0';
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		bool seg_ok = true;

		if (!pattern_match(routes[i].pattern, path, seg, sizeof(seg), &seg_ok))
			continue;
		/* An id that is no UUID names nothing that exists. */
		if (!seg_ok || (strstr(routes[i].pattern, "{}") != NULL && !project_is_uuid(seg))) {
			*status = MHD_HTTP_NOT_FOUND;
			return NULL;
		}
		if (strcmp(routes[i].method, method) != 0) {
			allow_add(allow, allowlen, routes[i].method);
			continue;
		}
		if (strstr(routes[i].pattern, "{}") != NULL) {
			for (size_t k = 0; seg[k] != '\0'; k++)
				id[k] = (char)tolower((unsigned char)seg[k]);
			id[36] = '\0';
		}
		return &routes[i];
	}
	*status = allow[0] != '\0' ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND;
	return NULL;
}

static bool
api_takes_body(const void *route)
{
	const struct api_route *r = route;

	return r != NULL && r->body;
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
	service_count_request(service_of(rq), (int)rq->status);
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
	.takes_body = api_takes_body,
	.handle = api_handle,
	.completed = api_completed,
	.resumes = api_resumes,
	.shutdown = api_shutdown,
};
