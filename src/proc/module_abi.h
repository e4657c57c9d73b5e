/* module_abi: what each module in modules/ exports, written once.  The
 * worker looks the symbols up by name (module.h); each module includes
 * this header and declares its functions with these types, so that the
 * compiler holds both sides to one signature. */
#ifndef T2I_MODULE_ABI_H
#define T2I_MODULE_ABI_H

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

#endif
