/* api_req: what every handler of the API needs from a request: the service
 * behind it, its store, the rules of small bodies, and signed image URLs in
 * what goes out. */
#ifndef T2I_API_REQ_H
#define T2I_API_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include "http.h"
#include "http_page.h"

struct service;
struct store;

typedef enum MHD_Result api_fn(struct http_req *rq);

struct service *api_req_service(struct http_req *rq);
struct store *api_req_store(struct http_req *rq);

/* The body holds only white space, or nothing. */
bool api_req_blank(const struct http_req *rq);
/* A route that takes no arguments (cancel, DELETE): the body is empty or
 * {}.  Otherwise false with the message in err. */
bool api_req_no_arguments(const struct http_req *rq, char *err, size_t errlen);

/* file_url and thumbnail_url in an image object, or in each of an array's. */
void api_req_sign_image(struct http_req *rq, json_t *image);
void api_req_sign_images(struct http_req *rq, json_t *images);

enum MHD_Result api_req_no_project(struct http_req *rq);

/* Pages (http_page.h): ?limit= (def when absent) and ?after= (NULL when
 * absent or empty: the first page).  A bad limit is answered 400. */
#define API_PAGE_MAX 1000
bool api_req_limit(struct http_req *rq, int def, int max, int *limit);
const char *api_req_after(struct http_req *rq);
enum MHD_Result api_req_bad_limit(struct http_req *rq, int max);

/* What a page's reads need after the handler has returned: the service,
 * and the id of the project or run listed.  Freed with free(). */
struct api_list {
	struct service *sv;
	char id[37];
};
struct api_list *api_req_list(struct http_req *rq);
/* A page's decorate: file_url and thumbnail_url in an image. */
void api_req_sign_listed(void *list, json_t *image);
/* Answers a page of a list (how's arg is made here: an api_list), head the
 * members before it (its reference taken); ?limit= from 1 to max, def when
 * absent. */
enum MHD_Result api_req_page(struct http_req *rq, json_t *head, const char *list, int def,
			     int max, const struct http_page *how);

#endif
