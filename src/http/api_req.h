/* api_req: what every handler of the API needs from a request: the service
 * behind it, its store, the rules of small bodies, and signed image URLs in
 * what goes out. */
#ifndef T2I_API_REQ_H
#define T2I_API_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include "http.h"

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

#endif
