/* urlsig: signed URLs of image files, which a browser's <img> loads with no
 * header even when the service has a token.
 *
 *   /v1/images/ID/file?exp=UNIX&sig=HEX
 *   sig = lower-case hex HMAC-SHA256(key, "/v1/images/ID/file?exp=UNIX")
 *
 * The message is the path (the same for GET and HEAD) and the expiry, so a
 * signature is good for that one file of that one image until exp, and for
 * nothing else.  exp is rounded down to a 16th of http.url_ttl: the URLs
 * handed out within that time are the same, and a browser's cache keeps
 * the image.  A signature is made when a URL goes out, never stored: every
 * answer and every SSE event, a replayed one too, carries URLs good for
 * url_ttl from then. */
#ifndef T2I_URLSIG_H
#define T2I_URLSIG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct config;

struct urlsig {
	unsigned char *key;	/* secret, NULL before urlsig_configure */
	size_t keylen;
	int ttl;		/* seconds */
	unsigned gen;		/* bumped by urlsig_replace: a signature made
				 * before it may no longer hold */
};

enum urlsig_verdict {
	URLSIG_OK,
	URLSIG_MALFORMED,	/* exp or sig missing or not numbers / hex */
	URLSIG_EXPIRED,
	URLSIG_BAD,		/* does not match: tampered, or another key */
};

/* The key and lifetime of cfg into u (zeroed first): its url_key_file's
 * bytes, or the key made once beside the database.  On error -1 and one
 * line in err. */
int urlsig_configure(struct urlsig *u, const struct config *cfg, char *err, size_t errlen);
/* Frees u's key and takes fresh's (a reload), bumping gen. */
void urlsig_replace(struct urlsig *u, struct urlsig *fresh);
void urlsig_clear(struct urlsig *u);

/* The exp of the URLs made at now: the same for a 16th of the lifetime. */
int64_t urlsig_expiry(const struct urlsig *u, int64_t now);

/* path with "?exp=...&sig=..." appended, into out; "" when it does not fit. */
void urlsig_url(const struct urlsig *u, const char *path, int64_t now, char *out,
		size_t outlen);
/* Checks exp and sig (either may be NULL) of a request for path. */
enum urlsig_verdict urlsig_check(const struct urlsig *u, const char *path, const char *exp,
				 const char *sig, int64_t now);
const char *urlsig_verdict_text(enum urlsig_verdict v);

/* Adds file_url and thumbnail_url to an image object {id, thumbnail_path,
 * [file_path, status], [variants: [...]]}: null when there is no file or no
 * thumbnail. */
void urlsig_image(const struct urlsig *u, json_t *image, int64_t now);
/* The event body with its image objects signed, malloc'd; NULL when the
 * event has none (only image_generated has) or on error. */
char *urlsig_event(const struct urlsig *u, const char *type, const char *body, int64_t now);

#endif
