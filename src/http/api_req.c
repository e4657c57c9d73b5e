/* api_req: helpers of the API's handlers. */
#include "api_req.h"

#include <ctype.h>
#include <stdio.h>
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
