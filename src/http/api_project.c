/* api_project: projects, their storyboards and images as JSON. */
#include "api_project.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service.h"
#include "store.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 500

enum MHD_Result
api_project_post(struct http_req *rq)
{
	char pid[37], err[512];
	int status = service_import(api_req_service(rq), rq->body != NULL ? rq->body : "",
				    rq->len, pid, err, sizeof(err));

	if (status != MHD_HTTP_CREATED)
		return http_reply_error(rq, (unsigned)status, "%s", err);
	return http_reply_json(rq, MHD_HTTP_CREATED, store_query_project(api_req_store(rq), pid));
}

/* ?limit=N: 1 to PAGE_MAX; -1 when bad. */
static int
page_limit(struct http_req *rq)
{
	const char *v = http_query(rq, "limit");
	char *end;
	long n;

	if (v == NULL)
		return PAGE_DEFAULT;
	errno = 0;
	n = strtol(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || n < 1 || n > PAGE_MAX)
		return -1;
	return (int)n;
}

enum MHD_Result
api_project_list(struct http_req *rq)
{
	const char *after = http_query(rq, "after");
	char next[STORE_CURSOR_MAX];
	int limit = page_limit(rq);
	bool bad_cursor;
	json_t *page;

	if (limit < 0)
		return http_reply_error(rq, MHD_HTTP_BAD_REQUEST, "limit: expected 1 to %d",
					PAGE_MAX);
	/* An empty after= is the first page, as no after at all. */
	if (after != NULL && *after == '\0')
		after = NULL;
	page = store_query_project_page(api_req_store(rq), after, limit, next, &bad_cursor);
	if (bad_cursor)
		return http_reply_error(rq, MHD_HTTP_BAD_REQUEST,
					"after: not a cursor of this service (pass the \"next\" of"
					" the previous page)");
	if (page == NULL)
		return http_reply_json(rq, 500, NULL);
	return http_reply_json(rq, MHD_HTTP_OK,
			       json_pack("{so so}", "projects", page, "next",
					 next[0] != '\0' ? json_string(next) : json_null()));
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

enum MHD_Result
api_project_get(struct http_req *rq)
{
	struct store *st = api_req_store(rq);
	json_t *p, *sbs, *images;

	if (!store_project_exists(st, rq->id))
		return api_req_no_project(rq);
	p = store_query_project(st, rq->id);
	sbs = store_query_storyboards(st, rq->id, NULL, false);
	images = store_query_current_images(st, rq->id);
	if (p == NULL || sbs == NULL || images == NULL) {
		json_decref(p);
		json_decref(sbs);
		json_decref(images);
		return http_reply_json(rq, 500, NULL);
	}
	api_req_sign_images(rq, images);
	attach_images(sbs, images);
	json_decref(images);
	json_object_set_new(p, "storyboards", sbs);
	return http_reply_json(rq, MHD_HTTP_OK, p);
}

enum MHD_Result
api_project_images(struct http_req *rq)
{
	struct store *st = api_req_store(rq);
	json_t *images;

	if (!store_project_exists(st, rq->id))
		return api_req_no_project(rq);
	if ((images = store_query_images(st, rq->id)) == NULL)
		return http_reply_json(rq, 500, NULL);
	api_req_sign_images(rq, images);
	return http_reply_json(rq, MHD_HTTP_OK,
			       json_pack("{ss so}", "project_id", rq->id, "images", images));
}

enum MHD_Result
api_project_delete(struct http_req *rq)
{
	char err[512];
	int files = 0, status;

	if (!api_req_no_arguments(rq, err, sizeof(err)))
		return http_reply_error(rq, MHD_HTTP_BAD_REQUEST, "%s", err);
	status = service_delete_project(api_req_service(rq), rq->id, &files, err, sizeof(err));
	if (status != MHD_HTTP_OK)
		return http_reply_error(rq, (unsigned)status, "%s", err);
	return http_reply_json(rq, MHD_HTTP_OK,
			       json_pack("{ss sb si}", "id", rq->id, "deleted", 1, "files_removed",
					 files));
}

enum MHD_Result
api_project_patch_storyboard(struct http_req *rq)
{
	char err[512];
	int status = service_patch_storyboard(api_req_service(rq), rq->id, rq->id2,
					      rq->body != NULL ? rq->body : "", rq->len, err,
					      sizeof(err));

	if (status != MHD_HTTP_OK)
		return http_reply_error(rq, (unsigned)status, "%s", err);
	return http_reply_json(rq, MHD_HTTP_OK,
			       store_query_storyboard(api_req_store(rq), rq->id, rq->id2));
}
