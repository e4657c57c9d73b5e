/* api: the routes of the HTTP API (doc/http.md) and their
 * handlers, on top of service.h and the store's JSON views. */
#ifndef T2I_API_H
#define T2I_API_H

#include <stdbool.h>
#include <stddef.h>

#include "mhd.h"

struct api_route;
struct http_req;

/* The route of method and path, with the path's {id} (a UUID, lower case)
 * in id.  NULL when none: *status is 404, or 405 with the methods the path
 * takes in allow. */
const struct api_route *api_match(const char *method, const char *path, char id[37],
				  unsigned *status, char *allow, size_t allowlen);
/* The route reads a request body (others ignore theirs). */
bool api_takes_body(const struct api_route *r);
/* Answers the complete request. */
enum MHD_Result api_handle(const struct api_route *r, struct http_req *rq);

#endif
