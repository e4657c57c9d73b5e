/* guard: who may make a request, decided from its headers before any route
 * runs: the Host it was sent to (DNS rebinding), CORS preflights, the Origin of a request that changes state (CSRF),
 * the bearer token (in Authorization, or ?access_token= on the routes that
 * take it), signed image URLs, and the JSON content type of a request that
 * changes state.  Plain strings in, a verdict out: the HTTP core feeds it,
 * and it knows neither MHD nor any route. */
#ifndef T2I_GUARD_H
#define T2I_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct urlsig;

/* A name the service answers to: Host as "host" or "host:port". */
struct guard_name {
	char *host;		/* lower case; "[v6]" bracketed */
	int port;		/* 0: none given, or the service's own port */
};

struct guard {
	char *token;		/* secret; NULL: no token needed */
	struct guard_name *names; /* http.server_names, or the defaults */
	size_t nnames;
	bool any_name;		/* "*": any Host */
	int port;		/* the service's */
	char **origins;		/* CORS origins, lower case */
	size_t norigins;
	const struct urlsig *urlsig; /* NULL: no signed URL is taken */
};

/* One request: NULL for an absent header or argument. */
struct guard_req {
	const char *method;
	const char *path;
	bool matched;		/* a route takes method and path; then: */
	bool public;		/* it needs no token */
	bool query_token;	/* it takes ?access_token= */
	bool signed_url;	/* it takes a signed URL */
	bool any_host;		/* it answers whatever the Host (/healthz) */
	const char *origin;
	const char *host;	/* Host, or an absolute target's authority */
	const char *forwarded_host;	/* X-Forwarded-Host, from a proxy */
	const char *authorization;
	const char *content_type;
	const char *preflight_method;	/* Access-Control-Request-Method */
	const char *access_token;	/* ?access_token= */
	const char *exp, *sig;		/* ?exp= and ?sig= */
	int64_t now;			/* UNIX seconds */
};

enum guard_verdict {
	GUARD_PASS,		/* on to the route (or its 404 / 405) */
	GUARD_PREFLIGHT,	/* a preflight from a listed origin: 204 */
	GUARD_REFUSE,		/* *status with the message */
};

/* The order: a Host that is none of the service's names is 421 (a page of
 * another site, its name rebound to this address, reaches nothing), then
 * preflights, a foreign Origin changing state (403), the token (401), the
 * content type of a change (415). */

enum guard_verdict guard_check(const struct guard *g, const struct guard_req *r,
			       unsigned *status, char *msg, size_t msglen);

/* origin is one of http.cors_origins: responses to it carry
 * Access-Control-Allow-Origin. */
bool guard_origin_listed(const struct guard *g, const char *origin);

/* Replace the token or the origins (copied; reload).  -1 out of memory,
 * leaving the old ones. */
int guard_set_token(struct guard *g, const char *token);
int guard_set_origins(struct guard *g, char *const *origins, size_t n);
/* The names Host may carry: names as http.server_names has them, or when n
 * is 0 the defaults: the host of listen (unless it is every address),
 * localhost, 127.0.0.1 and [::1].  A name without a port takes Host with no
 * port or with port, the service's.  -1 out of memory, leaving the old. */
int guard_set_names(struct guard *g, char *const *names, size_t n, const char *listen,
		    int port);
void guard_free(struct guard *g);

#endif
