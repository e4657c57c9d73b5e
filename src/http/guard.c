/* guard: the request policy of the HTTP core (see guard.h).
 *
 * The order matters.  The Host comes first: a page whose name an attacker
 * has rebound to this address (DNS rebinding) is same-origin to the
 * browser, so no CORS or Origin rule stops it; only the Host it sends
 * still names the attacker's site.  A preflight is answered before any
 * token is asked for (browsers send none with it).  A foreign Origin on a request that
 * changes state is refused before the token is looked at, so that a
 * cross-site form or no-cors fetch learns nothing and changes nothing
 * whether or not the browser holds a token.  Authentication comes before
 * the route's 404 or 405, so that an unknown /v1 path reveals nothing. */
#include "guard.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hash.h"
#include "urlsig.h"

static bool
changes_state(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	       strcmp(method, "OPTIONS") != 0;
}

bool
guard_origin_listed(const struct guard *g, const char *origin)
{
	for (size_t i = 0; origin != NULL && i < g->norigins; i++)
		if (strcasecmp(origin, g->origins[i]) == 0)
			return true;
	return false;
}

static bool
same_host(const char *a, const char *b)
{
	return b != NULL && *b != '\0' && strcasecmp(a, b) == 0;
}

/* The service's own origin: the scheme (http, or https behind a proxy that
 * ends TLS) and the Host the request was sent to, or the X-Forwarded-Host
 * of a proxy that rewrote Host.  Trusting the latter opens nothing to
 * another site: a page cannot add that header to a form or a no-cors
 * fetch, and any other request of its is preflighted first. */
static bool
origin_own(const struct guard_req *r)
{
	const char *o = r->origin, *rest;

	if (strncasecmp(o, "http://", 7) == 0)
		rest = o + 7;
	else if (strncasecmp(o, "https://", 8) == 0)
		rest = o + 8;
	else
		return false;
	return same_host(rest, r->host) || same_host(rest, r->forwarded_host);
}

static bool
bearer_ok(const struct guard *g, const char *v)
{
	if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
		return false;
	for (v += 7; *v == ' '; v++)
		;
	return hash_equal_ct(v, g->token);
}

static bool
under_v1(const char *path)
{
	return strncmp(path, "/v1", 3) == 0 && (path[3] == '/' || path[3] == '\0');
}

static enum guard_verdict
refuse(unsigned status, char *msg, size_t msglen, unsigned *out, const char *text)
{
	*out = status;
	snprintf(msg, msglen, "%s", text);
	return GUARD_REFUSE;
}

/* The token, a signed URL, or neither when none is needed. */
static enum guard_verdict
authenticate(const struct guard *g, const struct guard_req *r, unsigned *status, char *msg,
	     size_t msglen)
{
	enum urlsig_verdict v;

	/* A token in a URL ends up in histories, logs and Referer headers:
	 * only EventSource, which has no other way, may put it there. */
	if (r->access_token != NULL && !r->query_token)
		return refuse(401, msg, msglen, status,
			      "token in the wrong place: ?access_token= is taken by the event"
			      " streams only; send Authorization: Bearer TOKEN");
	if (r->signed_url && (r->exp != NULL || r->sig != NULL)) {
		v = g->urlsig != NULL ? urlsig_check(g->urlsig, r->path, r->exp, r->sig, r->now)
				      : URLSIG_BAD;
		if (v != URLSIG_OK)
			return refuse(403, msg, msglen, status, urlsig_verdict_text(v));
		return GUARD_PASS;
	}
	if (g->token == NULL || r->public ||
	    (!r->matched && !under_v1(r->path)))
		return GUARD_PASS;
	if (bearer_ok(g, r->authorization) ||
	    (r->access_token != NULL && hash_equal_ct(r->access_token, g->token)))
		return GUARD_PASS;
	return refuse(401, msg, msglen, status, "missing or invalid bearer token");
}

/* "application/json", with parameters or not ("; charset=utf-8"). */
static bool
content_is_json(const char *ct)
{
	size_t n = strlen("application/json");

	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* host is one of the names, with the port the name says (or none). */
static bool
host_listed(const struct guard *g, const char *host)
{
	for (size_t i = 0; i < g->nnames; i++) {
		const struct guard_name *n = &g->names[i];
		size_t len = strlen(n->host);
		const char *port = host + len;
		char *end;
		long p;

		if (strncasecmp(host, n->host, len) != 0)
			continue;
		if (*port == '\0' && (n->port == 0 || n->port == g->port))
			return true;
		if (*port != ':' || port[1] < '0' || port[1] > '9')
			continue;
		p = strtol(port + 1, &end, 10);
		if (*end == '\0' && p == (n->port != 0 ? n->port : g->port))
			return true;
	}
	return false;
}

enum guard_verdict
guard_check(const struct guard *g, const struct guard_req *r, unsigned *status, char *msg,
	    size_t msglen)
{
	enum guard_verdict v;

	/* No Host at all is HTTP/1.0's right, and no browser's way. */
	if (!r->any_host && !g->any_name && r->host != NULL && !host_listed(g, r->host))
		return refuse(421, msg, msglen, status,
			      "this service does not answer to that Host (http.server_names)");
	if (strcmp(r->method, "OPTIONS") == 0 && r->origin != NULL && r->preflight_method != NULL) {
		if (guard_origin_listed(g, r->origin))
			return GUARD_PREFLIGHT;
		return refuse(403, msg, msglen, status,
			      "CORS: this origin is not in http.cors_origins");
	}
	if (changes_state(r->method) && r->origin != NULL && !origin_own(r) &&
	    !guard_origin_listed(g, r->origin))
		return refuse(403, msg, msglen, status,
			      "Origin refused: neither this service's own nor in"
			      " http.cors_origins");
	if ((v = authenticate(g, r, status, msg, msglen)) != GUARD_PASS || !r->matched)
		return v;
	if (changes_state(r->method) && !content_is_json(r->content_type))
		return refuse(415, msg, msglen, status,
			      "Content-Type must be application/json on POST, PATCH and DELETE");
	return GUARD_PASS;
}

int
guard_set_token(struct guard *g, const char *token)
{
	char *t = token != NULL ? strdup(token) : NULL;

	if (token != NULL && t == NULL)
		return -1;
	if (g->token != NULL) {
		explicit_bzero(g->token, strlen(g->token));
		free(g->token);
	}
	g->token = t;
	return 0;
}

static void
free_origins(char **o, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(o[i]);
	free(o);
}

int
guard_set_origins(struct guard *g, char *const *origins, size_t n)
{
	char **o = n > 0 ? calloc(n, sizeof(*o)) : NULL;

	if (n > 0 && o == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((o[i] = strdup(origins[i])) == NULL) {
			free_origins(o, i);
			return -1;
		}
	}
	free_origins(g->origins, g->norigins);
	g->origins = o;
	g->norigins = n;
	return 0;
}

static void
free_names(struct guard_name *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i].host);
	free(names);
}

/* "host", "host:port", "[v6]" or "[v6]:port" into name. */
static int
name_parse(struct guard_name *name, const char *text)
{
	const char *colon = text[0] == '[' ? strstr(text, "]:") : strrchr(text, ':');
	size_t len;

	if (colon != NULL && text[0] == '[')
		colon++;
	len = colon != NULL ? (size_t)(colon - text) : strlen(text);
	name->port = colon != NULL ? (int)strtol(colon + 1, NULL, 10) : 0;
	if ((name->host = strndup(text, len)) == NULL)
		return -1;
	for (char *c = name->host; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return 0;
}

/* The host of "HOST:PORT" unless it is every address ("", 0.0.0.0, [::]). */
static char *
listen_host(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	size_t len = colon != NULL ? (size_t)(colon - listen) : 0;

	if (len == 0 || (len == 7 && strncmp(listen, "0.0.0.0", 7) == 0) ||
	    (len == 4 && strncmp(listen, "[::]", 4) == 0))
		return NULL;
	return strndup(listen, len);
}

int
guard_set_names(struct guard *g, char *const *names, size_t n, const char *listen, int port)
{
	static const char *const defaults[] = { "localhost", "127.0.0.1", "[::1]" };
	char *own = n == 0 ? listen_host(listen) : NULL;
	const char *list[4];
	char *const *src = names;
	size_t count = n, k = 0;
	struct guard_name *v;
	bool any = false;

	if (n == 0) {
		for (size_t i = 0; i < 3; i++)
			list[k++] = defaults[i];
		if (own != NULL)
			list[k++] = own;
		src = (char *const *)list;
		count = k;
	}
	if ((v = calloc(count, sizeof(*v))) == NULL) {
		free(own);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		any = any || strcmp(src[i], "*") == 0;
		if (name_parse(&v[i], src[i]) < 0) {
			free_names(v, i);
			free(own);
			return -1;
		}
	}
	free(own);
	free_names(g->names, g->nnames);
	g->names = v;
	g->nnames = count;
	g->any_name = any;
	g->port = port;
	return 0;
}

void
guard_free(struct guard *g)
{
	guard_set_token(g, NULL);
	free_names(g->names, g->nnames);
	g->names = NULL;
	g->nnames = 0;
	free_origins(g->origins, g->norigins);
	g->origins = NULL;
	g->norigins = 0;
}
