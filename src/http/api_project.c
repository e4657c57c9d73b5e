/* api_project: projects, their storyboards and images as JSON. */
#include "api_project.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_page.h"
#include "service.h"
#include "store.h"

/* Default page sizes: a screenful, and a few milliseconds of the loop. */
#define PROJECTS_PAGE 50
#define PROJECTS_PAGE_MAX 500
#define STORYBOARDS_PAGE 100
#define IMAGES_PAGE 100

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

static json_t *
fetch_projects(void *arg, const char *after, int limit, char next[HTTP_PAGE_CURSOR_MAX],
	       bool *bad_cursor)
{
	struct api_list *l = arg;

	return store_query_project_page(service_store(l->sv), after, limit, next, bad_cursor);
}

static json_t *
fetch_storyboards(void *arg, const char *after, int limit, char next[HTTP_PAGE_CURSOR_MAX],
		  bool *bad_cursor)
{
	struct api_list *l = arg;

	return store_page_storyboards(service_store(l->sv), l->id, after, limit, next,
				      bad_cursor);
}

static json_t *
fetch_images(void *arg, const char *after, int limit, char next[HTTP_PAGE_CURSOR_MAX],
	     bool *bad_cursor)
{
	struct api_list *l = arg;

	return store_page_images(service_store(l->sv), l->id, after, limit, next, bad_cursor);
}

static void
sign_storyboard(void *arg, json_t *sb)
{
	api_req_sign_listed(arg, json_object_get(sb, "image"));
}

enum MHD_Result
api_project_list(struct http_req *rq)
{
	static const struct http_page how = { .fetch = fetch_projects };

	return api_req_page(rq, json_object(), "projects", PROJECTS_PAGE, PROJECTS_PAGE_MAX, &how);
}

/* The project with a page of its storyboards, each with its current
 * image or null; the project's own members come first, as in version 1. */
enum MHD_Result
api_project_get(struct http_req *rq)
{
	static const struct http_page how = { .fetch = fetch_storyboards,
					      .decorate = sign_storyboard };
	struct store *st = api_req_store(rq);
	json_t *p;

	if (!store_project_exists(st, rq->id))
		return api_req_no_project(rq);
	if ((p = store_query_project(st, rq->id)) == NULL)
		return http_reply_json(rq, 500, NULL);
	return api_req_page(rq, p, "storyboards", STORYBOARDS_PAGE, API_PAGE_MAX, &how);
}

enum MHD_Result
api_project_images(struct http_req *rq)
{
	static const struct http_page how = { .fetch = fetch_images,
					      .decorate = api_req_sign_listed };

	if (!store_project_exists(api_req_store(rq), rq->id))
		return api_req_no_project(rq);
	return api_req_page(rq, json_pack("{ss}", "project_id", rq->id), "images", IMAGES_PAGE,
			  API_PAGE_MAX, &how);
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
