/*
 * http: the small HTTP/JSON toolkit shared by the plugins that talk to a
 * provider over HTTP (jimeng, openai, sdwebui).  It is compiled into each of
 * those plugins, so every symbol here is hidden from the host.
 */
#ifndef T2I_PLUGIN_HTTP_H
#define T2I_PLUGIN_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "t2istage/plugin.h"

#define HTTP_HIDDEN __attribute__((visibility("hidden")))

/* One JSON POST.  Strings not used are NULL. */
struct http_req {
	const char *tag;		/* plugin name, prefixes messages */
	const char *url;
	const char *bearer;		/* Authorization: Bearer <bearer> */
	const char *basic;		/* HTTP Basic, "user:pass" */
	const char *body;		/* JSON text */
	double timeout_s;		/* whole transfer; <= 0: no limit */
	double connect_timeout_s;	/* <= 0: curl's default */
	uint64_t max_bytes;		/* response body cap; 0: HTTP_DEFAULT_MAX */
};

struct http_resp {
	long status;			/* 0 when no HTTP answer came */
	char *body;			/* NUL-terminated, len bytes before it */
	size_t len;
	int64_t retry_after_ms;		/* from retry-after-ms or Retry-After, -1 if absent */
};

#define HTTP_DEFAULT_MAX (64u * 1024 * 1024)
#define HTTP_EXCERPT_MAX 200	/* bytes of a body quoted in a message */

/* The request and host members the plugins read (all ABI version 1). */
#define HTTP_REQ_NEEDS \
	(offsetof(struct t2i_request, max_response_bytes) + sizeof(uint64_t))
#define HTTP_HOST_NEEDS \
	(offsetof(struct t2i_host, log) + sizeof(((struct t2i_host *)0)->log))

/* Checks the ABI sizes of the three structs; fills err and returns -1 when
 * the host is older than this plugin. */
HTTP_HIDDEN int http_check_abi(const char *tag, const struct t2i_request *req,
			       const struct t2i_host *host, struct t2i_error *err);

/* Sets up an http_req from the request's budget and limits. */
HTTP_HIDDEN void http_req_init(struct http_req *rq, const char *tag,
			       const struct t2i_request *req);

/* POSTs rq->body.  Returns 0 when an HTTP answer arrived (any status: see
 * rs->status), -1 with err filled otherwise: transient for anything on the
 * way (DNS, connect, TLS, timeout, dropped connection, a body over the cap),
 * auth for a key with a control character in it.  rs must be freed
 * with http_resp_free() in both cases. */
HTTP_HIDDEN int http_post_json(const struct http_req *rq, struct http_resp *rs,
			       struct t2i_error *err);
HTTP_HIDDEN void http_resp_free(struct http_resp *rs);

/* http_post_json() with body (whose reference this takes) as compact JSON;
 * each real in its shortest text, so 0.7 stays "0.7". */
HTTP_HIDDEN int http_post_body(struct http_req *rq, json_t *body, struct http_resp *rs,
			       struct t2i_error *err);

/* The error class of an HTTP status: 401/403 auth, 402 quota, 429 rate limited,
 * 408/5xx transient, other 4xx rejected, anything else transient. */
HTTP_HIDDEN int http_status_class(long status);

/* Fills err (message printf-style, cut on a UTF-8 boundary) and returns -1. */
HTTP_HIDDEN int http_fail(struct t2i_error *err, int cls, long status, int64_t retry_after_ms,
			  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Fails with the class of rs->status and "<tag>: HTTP <status>: <what>",
 * carrying rs's retry delay; what NULL quotes an excerpt of the body. */
HTTP_HIDDEN int http_fail_status(struct t2i_error *err, const char *tag,
				 const struct http_resp *rs, const char *what);

/* A transient "<tag>: <what> (HTTP <status>): <body excerpt>", for a 2xx
 * answer that carries no usable result. */
HTTP_HIDDEN int http_fail_malformed(struct t2i_error *err, const char *tag,
				    const struct http_resp *rs, const char *what);

/* Replaces secret, each comma-separated part of it and the password of a
 * "user:pass", in err->message by "***": a provider may echo what it was
 * sent. */
HTTP_HIDDEN void http_scrub(struct t2i_error *err, const char *secret);

/* What differs between the HTTP plugins; http_generate() is the rest of
 * their generate_image(): ABI check, body, POST, answer, key scrubbed from
 * any error. */
struct http_plugin {
	const char *tag;
	json_t *(*build_body)(const struct t2i_request *req, const struct t2i_host *host,
			      struct t2i_error *err);
	int (*handle)(const struct t2i_request *req, const struct t2i_host *host,
		      const struct http_resp *rs, struct t2i_error *err);
	/* The URL to POST to (malloc'd), or NULL for api_url as it is. */
	char *(*endpoint)(const char *api_url);
	/* Sets rq's credentials from the api key; NULL: Bearer. */
	void (*auth)(struct http_req *rq, const char *key);
};

HTTP_HIDDEN int http_generate(const struct http_plugin *pl, const struct t2i_request *req,
			      const struct t2i_host *host, struct t2i_error *err);

/* A printable, single-line, valid UTF-8 copy of at most HTTP_EXCERPT_MAX
 * bytes of s, with "..." when cut. */
HTTP_HIDDEN void http_excerpt(const char *s, size_t len, char *out, size_t outlen);

/* Parses a response body; NULL when it is empty, larger than max_bytes
 * (0: no limit) or not a JSON object or array. */
HTTP_HIDDEN json_t *http_parse_json(const struct http_resp *rs, uint64_t max_bytes);

/* obj[key] when it is a non-empty string, else NULL. */
HTTP_HIDDEN const char *http_str(const json_t *obj, const char *key);

/* Sets obj[key] to the string value: 0, or -1 when value is not valid
 * UTF-8 (jansson refuses it; the member would silently go missing). */
HTTP_HIDDEN int http_put_str(json_t *obj, const char *key, const char *value);

/* For a body in which http_put_str() failed: drops it, fills a rejected
 * error and returns NULL. */
HTTP_HIDDEN json_t *http_bad_field(json_t *body, const char *tag, struct t2i_error *err);

/* Merges the members of options_json (a JSON object text, "" for none) into
 * body, except the names in deny (NULL-terminated; each dropped with a
 * warning) and those body already has (request fields win).  Returns 0, or
 * -1 with a rejected error when options_json is not an object. */
HTTP_HIDDEN int http_merge_options(json_t *body, const char *options_json,
				   const char *const *deny, const char *tag,
				   const struct t2i_host *host, struct t2i_error *err);

/* Decodes base64, tolerating a "data:...;base64," prefix, whitespace and
 * missing padding.  Returns 0 with *out (malloc'd) and *outlen, or -1. */
HTTP_HIDDEN int http_b64_decode(const char *in, size_t inlen, unsigned char **out,
				size_t *outlen);

/* Hands every item of the array to the host in order: an object's
 * "b64_json" (or a bare string) decoded to bytes, else its "url" for the
 * host to download.  Returns 0 when at
 * least one was stored, else -1 with "<tag>: no image could be stored"
 * (transient: the host recorded why and adds it to the message). */
HTTP_HIDDEN int http_add_images(const struct t2i_host *host, const char *tag,
				const json_t *items, long status, struct t2i_error *err);

/* Calls host->log when the host has one. */
HTTP_HIDDEN void http_log(const struct t2i_host *host, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* T2I_PLUGIN_HTTP_H */
