/* api_req: helpers of the API's handlers. */
#include "api_req.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service.h"
#include "store.h"
#include "urlsig.h"

struct service *
api_req_service(struct http_req *rq)
{
	return rq->arg;
}

struct store *
api_req_store(struct http_req *rq)
{
	return service_store(rq->arg);
}

bool
api_req_blank(const struct http_req *rq)
{
	for (size_t i = 0; rq->body != NULL && i < rq->len; i++)
		if (!isspace((unsigned char)rq->body[i]))
			return false;
	return true;
}

bool
api_req_no_arguments(const struct http_req *rq, char *err, size_t errlen)
{
	json_t *o;
	bool ok;

	if (api_req_blank(rq))
		return true;
	o = json_loadb(rq->body, rq->len, 0, NULL);
	ok = json_is_object(o) && json_object_size(o) == 0;
	json_decref(o);
	if (!ok)
		snprintf(err, errlen, "this route takes no arguments: send an empty body or {}");
	return ok;
}

void
api_req_sign_image(struct http_req *rq, json_t *image)
{
	if (json_is_object(image))
		urlsig_image(service_urlsig(rq->arg), image, (int64_t)time(NULL));
}

void
api_req_sign_images(struct http_req *rq, json_t *images)
{
	size_t i;
	json_t *im;

	json_array_foreach(images, i, im)
		api_req_sign_image(rq, im);
}

enum MHD_Result
api_req_no_project(struct http_req *rq)
{
	return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "project %s not found", rq->id);
}

bool
api_req_limit(struct http_req *rq, int def, int max, int *limit)
{
	const char *v = http_query(rq, "limit");
	char *end;
	long n;

	*limit = def;
	if (v == NULL)
		return true;
	errno = 0;
	n = strtol(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || n < 1 || n > max)
		return false;
	*limit = (int)n;
	return true;
}

const char *
api_req_after(struct http_req *rq)
{
	const char *after = http_query(rq, "after");

	return after != NULL && *after != '\0' ? after : NULL;
}

enum MHD_Result
api_req_bad_limit(struct http_req *rq, int max)
{
	return http_reply_error(rq, MHD_HTTP_BAD_REQUEST, "limit: expected 1 to %d", max);
}

struct api_list *
api_req_list(struct http_req *rq)
{
	struct api_list *l = calloc(1, sizeof(*l));

	if (l != NULL) {
		l->sv = rq->arg;
		memcpy(l->id, rq->id, sizeof(l->id));
	}
	return l;
}

void
api_req_sign_listed(void *list, json_t *image)
{
	struct api_list *l = list;

	if (json_is_object(image))
		urlsig_image(service_urlsig(l->sv), image, (int64_t)time(NULL));
}

enum MHD_Result
api_req_page(struct http_req *rq, json_t *head, const char *list, int def, int max,
	     const struct http_page *how)
{
	struct http_page p = *how;
	int limit;

	if (!api_req_limit(rq, def, max, &limit)) {
		json_decref(head);
		return api_req_bad_limit(rq, max);
	}
	if ((p.arg = api_req_list(rq)) == NULL) {
		json_decref(head);
		return http_reply_json(rq, 500, NULL);
	}
	p.free = free;
	return http_reply_page(rq, head, list, api_req_after(rq), limit, &p);
}
