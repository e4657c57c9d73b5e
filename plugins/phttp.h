/*
 * phttp: the small HTTP/JSON client toolkit ("plugin HTTP", not the server
 * in src/http) shared by the plugins that talk to a provider over HTTP
 * (jimeng, openai, sdwebui, ark, dashscope, comfyui).  It is compiled into
 * each of those plugins, so every symbol here is hidden from the host.
 * In-tree plugins build with -Iinclude and their own directory only.
 */
#ifndef T2I_PLUGIN_PHTTP_H
#define T2I_PLUGIN_PHTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "t2istage/plugin.h"

#define PHTTP_HIDDEN __attribute__((visibility("hidden")))

/* One request.  Strings not used are NULL. */
struct phttp_req {
	const char *tag;		/* plugin name, prefixes messages */
	const char *method;		/* NULL: POST with a body, else GET */
	const char *url;
	const char *bearer;		/* Authorization: Bearer <bearer> */
	const char *basic;		/* HTTP Basic, "user:pass" */
	const char *const *headers;	/* extra "Name: value" lines, NULL-terminated */
	const char *body;		/* JSON text */
	double timeout_s;		/* whole transfer; <= 0: no limit */
	double connect_timeout_s;	/* <= 0: curl's default */
	uint64_t max_bytes;		/* response body cap; 0: PHTTP_DEFAULT_MAX */
};

struct phttp_resp {
	long status;			/* 0 when no HTTP answer came */
	char *body;			/* NUL-terminated, len bytes before it */
	size_t len;
	int64_t retry_after_ms;		/* from retry-after-ms or Retry-After, -1 if absent */
	char retry_note[160];		/* a Retry-After ignored, and why; "" when none */
	char *headers;			/* the answer's header lines, see phttp_header() */
	size_t hlen;
};

#define PHTTP_DEFAULT_MAX (64u * 1024 * 1024)
#define PHTTP_HEADERS_MAX 8192	/* bytes of response header lines kept */
#define PHTTP_EXCERPT_MAX 200	/* bytes of a body quoted in a message */

/* The request and host members the plugins read (all ABI version 1). */
#define PHTTP_REQ_NEEDS \
	(offsetof(struct t2i_request, max_response_bytes) + sizeof(uint64_t))
#define PHTTP_HOST_NEEDS \
	(offsetof(struct t2i_host, log) + sizeof(((struct t2i_host *)0)->log))

/* Checks the ABI sizes of the three structs; fills err and returns -1 when
 * the host is older than this plugin. */
PHTTP_HIDDEN int phttp_check_abi(const char *tag, const struct t2i_request *req,
			       const struct t2i_host *host, struct t2i_error *err);

/* Sets up an http_req from the request's budget and limits. */
PHTTP_HIDDEN void phttp_req_init(struct phttp_req *rq, const char *tag,
			       const struct t2i_request *req);

/* Sends rq: a POST of rq->body as JSON, or a GET without one (rq->method
 * may say otherwise).  Returns 0 when an HTTP answer arrived (any status:
 * see rs->status), -1 with err filled otherwise: transient for anything on
 * the way (DNS, connect, TLS, timeout, dropped connection, a body over the
 * cap), auth for a key with a control character in it, rejected for a bad
 * extra header.  rs must be freed with phttp_resp_free() in both cases. */
PHTTP_HIDDEN int phttp_request(const struct phttp_req *rq, struct phttp_resp *rs,
			     struct t2i_error *err);
PHTTP_HIDDEN void phttp_resp_free(struct phttp_resp *rs);

/* api_url with suffix appended (malloc'd; NULL when out of memory), unless
 * api_url already ends with it: a base URL or the full endpoint both do. */
PHTTP_HIDDEN char *phttp_endpoint(const char *api_url, const char *suffix);

/* base followed by the printf-formatted path (malloc'd; NULL when out of
 * memory). */
PHTTP_HIDDEN char *phttp_urlf(const char *base, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* s %-escaped for a URL's query or path (malloc'd; NULL when out of memory). */
PHTTP_HIDDEN char *phttp_escape(const char *s);

/* Copies the value of the answer's header name (any case) into out: 0, or
 * -1 when the answer has no such header. */
PHTTP_HIDDEN int phttp_header(const struct phttp_resp *rs, const char *name, char *out,
			    size_t outlen);

/* phttp_request() with body (whose reference this takes) as compact JSON;
 * each real in its shortest text, so 0.7 stays "0.7". */
PHTTP_HIDDEN int phttp_post_body(struct phttp_req *rq, json_t *body, struct phttp_resp *rs,
			       struct t2i_error *err);

/* The error class of an HTTP status: 401/403 auth, 402 quota, 429 rate limited,
 * 408/5xx transient, other 4xx rejected, anything else transient. */
PHTTP_HIDDEN int phttp_status_class(long status);

/* A plugin's classifier of error bodies, as a table: the HTTP status alone
 * misleads (Ark's 403 AccountOverdueError and DashScope's 400 Arrearage are
 * quota, Ark's 429 QuotaExceeded is no rate limit).  "Prefix*" matches every
 * code it starts, "*Suffix" every code it ends; the table ends with
 * {NULL, 0}. */
struct phttp_code {
	const char *code;
	int cls;			/* enum t2i_error_class */
};

/* The class of the first entry matching code (NULL: none matches), else the
 * class of the HTTP status (0, no HTTP answer of its own: transient). */
PHTTP_HIDDEN int phttp_code_class(const struct phttp_code *table, const char *code, long status);

/* Fails with that class and "<tag>: HTTP <status> <code>: <message>"
 * (without "HTTP <status> " when rs is NULL), carrying rs's retry delay. */
PHTTP_HIDDEN int phttp_fail_code(struct t2i_error *err, const char *tag,
			       const struct phttp_resp *rs, const struct phttp_code *table,
			       const char *code, const char *message);

/* Fills err (message printf-style, cut on a UTF-8 boundary) and returns -1. */
PHTTP_HIDDEN int phttp_fail(struct t2i_error *err, int cls, long status, int64_t retry_after_ms,
			  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Fails with the class of rs->status and "<tag>: HTTP <status>: <what>",
 * carrying rs's retry delay; what NULL quotes an excerpt of the body. */
PHTTP_HIDDEN int phttp_fail_status(struct t2i_error *err, const char *tag,
				 const struct phttp_resp *rs, const char *what);

/* A transient "<tag>: <what> (HTTP <status>): <body excerpt>", for a 2xx
 * answer that carries no usable result. */
PHTTP_HIDDEN int phttp_fail_malformed(struct t2i_error *err, const char *tag,
				    const struct phttp_resp *rs, const char *what);

/* Replaces secret, each comma-separated part of it and the password of a
 * "user:pass", in err->message by "***": a provider may echo what it was
 * sent. */
PHTTP_HIDDEN void phttp_scrub(struct t2i_error *err, const char *secret);

/* What differs between the HTTP plugins; phttp_generate() is the rest of
 * their generate_image(): ABI check, body, POST, answer, key scrubbed from
 * any error. */
struct phttp_plugin {
	const char *tag;
	json_t *(*build_body)(const struct t2i_request *req, const struct t2i_host *host,
			      struct t2i_error *err);
	int (*handle)(const struct t2i_request *req, const struct t2i_host *host,
		      const struct phttp_resp *rs, struct t2i_error *err);
	/* The URL to POST to (malloc'd), or NULL for api_url as it is. */
	char *(*endpoint)(const char *api_url);
	/* Sets rq's credentials from the api key; NULL: Bearer. */
	void (*auth)(struct phttp_req *rq, const char *key);
};

PHTTP_HIDDEN int phttp_generate(const struct phttp_plugin *pl, const struct t2i_request *req,
			      const struct t2i_host *host, struct t2i_error *err);

/* A printable, single-line, valid UTF-8 copy of at most PHTTP_EXCERPT_MAX
 * bytes of s, with "..." when cut. */
PHTTP_HIDDEN void phttp_excerpt(const char *s, size_t len, char *out, size_t outlen);

/* Parses a response body; NULL when it is empty, larger than max_bytes
 * (0: no limit) or not a JSON object or array. */
PHTTP_HIDDEN json_t *phttp_parse_json(const struct phttp_resp *rs, uint64_t max_bytes);

/* obj[key] when it is a non-empty string, else NULL. */
PHTTP_HIDDEN const char *phttp_str(const json_t *obj, const char *key);

/* Sets obj[key] to the string value: 0, or -1 when value is not valid
 * UTF-8 (jansson refuses it; the member would silently go missing). */
PHTTP_HIDDEN int phttp_put_str(json_t *obj, const char *key, const char *value);

/* For a body in which phttp_put_str() failed: drops it, fills a rejected
 * error and returns NULL. */
PHTTP_HIDDEN json_t *phttp_bad_field(json_t *body, const char *tag, struct t2i_error *err);

/* Merges the members of options_json (a JSON object text, "" for none) into
 * body, except the names in deny (NULL-terminated; each dropped with a
 * warning) and those body already has (request fields win).  Returns 0, or
 * -1 with a rejected error when options_json is not an object. */
PHTTP_HIDDEN int phttp_merge_options(json_t *body, const char *options_json,
				   const char *const *deny, const char *tag,
				   const struct t2i_host *host, struct t2i_error *err);

/* Pixel sizes, for the plugins that map the host's width x height onto what
 * a provider takes. */
struct phttp_size {
	unsigned w, h;
};

/* The entry of list (ended by {0, 0}) nearest to w:h in aspect ratio. */
PHTTP_HIDDEN struct phttp_size phttp_nearest_size(const struct phttp_size *list, unsigned w,
						unsigned h);

/* s scaled, ratio kept, so that each side lies between min and max where
 * the ratio allows (a side is clamped where it does not). */
PHTTP_HIDDEN struct phttp_size phttp_fit_sides(struct phttp_size s, unsigned min, unsigned max);

/* For a provider without a negative prompt field: when the request has a
 * negative prompt, one warning-level line saying so (once per worker; the
 * host makes one warning event per run of such lines). */
PHTTP_HIDDEN void phttp_warn_no_negative(const struct t2i_request *req,
				       const struct t2i_host *host, const char *what);

/* Sets obj[key] to value (whose reference this takes) unless obj has key. */
PHTTP_HIDDEN void phttp_set_default(json_t *obj, const char *key, json_t *value);

/* The start of an OpenAI-shaped body: *opts gets the provider options
 * (phttp_merge_options() with deny), *body an empty object.  0, or -1 with
 * err filled and both NULL. */
PHTTP_HIDDEN int phttp_body_start(json_t **opts, json_t **body, const struct t2i_request *req,
				const char *const *deny, const char *tag,
				const struct t2i_host *host, struct t2i_error *err);

/* Decodes base64, tolerating a "data:...;base64," prefix, whitespace and
 * missing padding.  Returns 0 with *out (malloc'd) and *outlen, or -1. */
PHTTP_HIDDEN int http_b64_decode(const char *in, size_t inlen, unsigned char **out,
				size_t *outlen);

/* Hands every item of the array to the host in order: an object's
 * "b64_json" (or a bare string) decoded to bytes, else its "url" for the
 * host to download.  Returns 0 when at
 * least one was stored, else -1 with "<tag>: no image could be stored"
 * (transient: the host recorded why and adds it to the message). */
PHTTP_HIDDEN int phttp_add_images(const struct t2i_host *host, const char *tag,
				const json_t *items, long status, struct t2i_error *err);

/* Calls host->log when the host has one. */
PHTTP_HIDDEN void phttp_log(const struct t2i_host *host, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* T2I_PLUGIN_PHTTP_H */
