/* api: the routes of the HTTP API (doc/http.md) and their
 * handlers, on top of service.h and the store's JSON views.  The HTTP core
 * reaches them only through api_routes, whose argument is the service. */
#ifndef T2I_API_H
#define T2I_API_H

#include "http.h"

extern const struct http_routes api_routes;

#endif
