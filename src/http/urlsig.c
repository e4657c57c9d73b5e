/* urlsig: sign and check image URLs (see urlsig.h for the scheme). */
#include "urlsig.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hash.h"
#include "jsontext.h"
#include "urlkey.h"

#define URL_MAX 160		/* "/v1/images/UUID/thumbnail?exp=...&sig=HEX" fits */

int
urlsig_configure(struct urlsig *u, const struct config *cfg, char *err, size_t errlen)
{
	unsigned char *key = NULL;
	size_t len = 0;

	if (cfg->http_url_key_given) {
		if ((key = malloc(cfg->http_url_key_len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		memcpy(key, cfg->http_url_key, cfg->http_url_key_len);
		len = cfg->http_url_key_len;
	} else if (urlkey_make(cfg->http_url_key_file, &key, &len, err, errlen) < 0) {
		return -1;
	}
	*u = (struct urlsig){ .key = key, .keylen = len, .ttl = cfg->http_url_ttl };
	return 0;
}

void
urlsig_replace(struct urlsig *u, struct urlsig *fresh)
{
	unsigned gen = u->gen + 1;

	urlsig_clear(u);
	*u = *fresh;
	u->gen = gen;
	*fresh = (struct urlsig){ 0 };
}

void
urlsig_clear(struct urlsig *u)
{
	urlkey_free(u->key, u->keylen);
	u->key = NULL;
	u->keylen = 0;
}

static void
sign(const struct urlsig *u, const char *path, int64_t exp, char out[HASH_HEX_LEN + 1])
{
	char msg[URL_MAX];
	int n = snprintf(msg, sizeof(msg), "%s?exp=%" PRId64, path, exp);

	if (n < 0 || (size_t)n >= sizeof(msg) || u->key == NULL) {
		out[0] = '\0';	/* never matches: a signature is 64 digits */
		return;
	}
	hash_hmac_sha256_hex(u->key, u->keylen, msg, (size_t)n, out);
}

int64_t
urlsig_expiry(const struct urlsig *u, int64_t now)
{
	int64_t step = u->ttl / 16 > 0 ? u->ttl / 16 : 1;

	return (now + u->ttl) / step * step;
}

void
urlsig_url(const struct urlsig *u, const char *path, int64_t now, char *out, size_t outlen)
{
	int64_t exp = urlsig_expiry(u, now);
	char sig[HASH_HEX_LEN + 1];
	int n;

	sign(u, path, exp, sig);
	n = snprintf(out, outlen, "%s?exp=%" PRId64 "&sig=%s", path, exp, sig);
	if (sig[0] == '\0' || n < 0 || (size_t)n >= outlen)
		out[0] = '\0';
}

enum urlsig_verdict
urlsig_check(const struct urlsig *u, const char *path, const char *exp, const char *sig,
	     int64_t now)
{
	char want[HASH_HEX_LEN + 1];
	char *end;
	long long e;

	if (exp == NULL || sig == NULL || !isdigit((unsigned char)exp[0]))
		return URLSIG_MALFORMED;
	errno = 0;
	e = strtoll(exp, &end, 10);
	if (*end != '\0' || errno != 0 || strlen(sig) != HASH_HEX_LEN)
		return URLSIG_MALFORMED;
	sign(u, path, e, want);
	/* The signature first: an expiry is only worth telling about when the
	 * URL is one of ours. */
	if (!hash_equal_ct(sig, want))
		return URLSIG_BAD;
	return e < now ? URLSIG_EXPIRED : URLSIG_OK;
}

const char *
urlsig_verdict_text(enum urlsig_verdict v)
{
	switch (v) {
	case URLSIG_OK:
		return "valid";
	case URLSIG_MALFORMED:
		return "a signed URL needs exp (UNIX seconds) and sig (64 hex digits)";
	case URLSIG_EXPIRED:
		return "the signed URL has expired: get a new one from the API";
	default:
		return "bad signature";
	}
}

static json_t *
signed_url(const struct urlsig *u, const char *id, const char *what, int64_t now)
{
	char path[96], url[URL_MAX];

	snprintf(path, sizeof(path), "/v1/images/%s/%s", id, what);
	urlsig_url(u, path, now, url, sizeof(url));
	return url[0] != '\0' ? json_string(url) : json_null();
}

static bool
has_text(json_t *v)
{
	const char *s = json_string_value(v);

	return s != NULL && *s != '\0';
}

/* Events' image objects have no status: an image_generated one is done. */
static bool
has_file(json_t *image)
{
	json_t *status = json_object_get(image, "status");

	if (status != NULL && (!json_is_string(status) ||
			       strcmp(json_string_value(status), "completed") != 0))
		return false;
	return has_text(json_object_get(image, "file_path"));
}

void
urlsig_image(const struct urlsig *u, json_t *image, int64_t now)
{
	const char *id = json_string_value(json_object_get(image, "id"));
	json_t *variants = json_object_get(image, "variants"), *v;
	size_t i;

	if (id == NULL || strlen(id) != 36)
		return;
	json_object_set_new(image, "file_url",
			    has_file(image) ? signed_url(u, id, "file", now) : json_null());
	json_object_set_new(image, "thumbnail_url",
			    has_text(json_object_get(image, "thumbnail_path"))
				    ? signed_url(u, id, "thumbnail", now) : json_null());
	json_array_foreach(variants, i, v)
		urlsig_image(u, v, now);
}

char *
urlsig_event(const struct urlsig *u, const char *type, const char *body, int64_t now)
{
	json_t *ev, *image;
	char *out = NULL;

	if (type == NULL || strcmp(type, "image_generated") != 0)
		return NULL;
	if ((ev = json_loads(body, 0, NULL)) == NULL)
		return NULL;
	if (json_is_object(image = json_object_get(ev, "image"))) {
		urlsig_image(u, image, now);
		out = jsontext_dumps(ev, JSON_COMPACT);
	}
	json_decref(ev);
	return out;
}
