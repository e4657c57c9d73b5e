/* module_abi: what each module in modules/ exports, written once.  The
 * worker and the webhook sender look the symbols up by name (module.h);
 * each module includes this header and declares its functions with these
 * types, so that the compiler holds both sides to one signature. */
#ifndef T2I_MODULE_ABI_H
#define T2I_MODULE_ABI_H

#include <poll.h>
#include <stddef.h>

/* fetch_curl.so: downloads over libcurl. */
#define MODULE_FETCH "fetch_curl.so"
#define MODULE_FETCH_PREPARE "t2i_fetch_prepare"
#define MODULE_FETCH_URL "t2i_fetch"

/* Initialises libcurl once, before any fork that should inherit it. */
typedef void module_fetch_prepare_fn(void);
/* GETs url into *out (malloc'd, at most max bytes): 0, or -1 with the HTTP
 * status (0 when none came) and a reason in err. */
typedef int module_fetch_fn(const char *url, size_t max, double connect_timeout_s,
			    double timeout_s, void **out, size_t *outlen, long *http_status,
			    char *err, size_t errlen);

/* thumb_vips.so: thumbnails over libvips. */
#define MODULE_THUMB "thumb_vips.so"
#define MODULE_THUMB_ENCODE "t2i_thumb_encode"

/* A JPEG of the image in bytes with its long edge at most edge pixels, into
 * *out (malloc'd: the caller frees it with free()): 0, or -1 with err. */
typedef int module_thumb_fn(const void *bytes, size_t size, int edge, void **out,
			    size_t *outlen, char *err, size_t errlen);

/* post_curl.so: POSTs over libcurl's multi interface, several at once in
 * one thread (the webhook sender, hooksend_proc.c). */
#define MODULE_POST "post_curl.so"
#define MODULE_POST_OPS "t2i_post_ops"

struct module_post;

struct module_post_result {
	unsigned long long tag;	/* as given to add */
	long status;		/* the HTTP status, 0 when no answer came */
	const char *kind;	/* NULL for a 2xx answer, else why it failed: "http",
				 * "timeout", "connect", "closed", "tls", "other" */
	char error[256];	/* "" for a 2xx answer */
};

struct module_post_ops {
	struct module_post *(*open)(void);
	/* Starts POSTing body (copied) to url with headers ("Name: value",
	 * count of them): 0, or -1 with err. */
	int (*add)(struct module_post *p, unsigned long long tag, const char *url,
		   const char *const *headers, size_t nheaders, const char *body, size_t len,
		   double connect_timeout_s, double timeout_s, char *err, size_t errlen);
	/* Waits up to timeout_ms for the transfers or for one of the n extra
	 * pollfds (their revents filled), and moves the transfers on:
	 * 0, or -1. */
	int (*wait)(struct module_post *p, struct pollfd *extra, unsigned n, int timeout_ms);
	/* A finished transfer into *out: 1, or 0 when none has finished. */
	int (*result)(struct module_post *p, struct module_post_result *out);
	void (*close)(struct module_post *p);
};

#endif
