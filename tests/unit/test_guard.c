/* Unit tests for what the HTTP core decides before any route runs:
 * src/http/guard.c (CORS preflights, Origin, tokens, content type) and
 * src/http/urlsig.c (signed image URLs), with their helpers
 * hash_hmac_sha256_hex and src/core/urlkey.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"
#include "hash.h"
#include "urlkey.h"
#include "urlsig.h"

#define NOW 1800000000LL
#define IMG "dddddddd-0000-4000-8000-000000000001"

/* RFC 4231, test cases 1 and 2. */
static void
test_hmac_vectors(void **state)
{
	char out[HASH_HEX_LEN + 1];
	unsigned char key[20];

	(void)state;
	memset(key, 0x0b, sizeof(key));
	hash_hmac_sha256_hex(key, sizeof(key), "Hi There", 8, out);
	assert_string_equal(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	hash_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, out);
	assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	assert_true(hash_equal_ct("abc", "abc"));
	assert_false(hash_equal_ct("abd", "abc"));
	assert_false(hash_equal_ct("ab", "abc"));
	assert_false(hash_equal_ct("abcd", "abc"));
}

static void
test_urlkey(void **state)
{
	char dir[] = "/tmp/t2i-urlkey-XXXXXX", path[PATH_MAX], err[512];
	unsigned char *k1, *k2;
	size_t n1, n2;
	struct stat sb;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/url.key", dir);
	/* Made once, private, and the same key on every later start. */
	assert_int_equal(urlkey_make(path, &k1, &n1, err, sizeof(err)), 0);
	assert_int_equal(n1, URLKEY_MIN);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(urlkey_make(path, &k2, &n2, err, sizeof(err)), 0);
	assert_int_equal(n2, n1);
	assert_memory_equal(k1, k2, n1);
	urlkey_free(k1, n1);
	urlkey_free(k2, n2);
	/* Too short a key file is refused, by path. */
	assert_non_null(f = fopen(path, "w"));
	fputs("short", f);
	fclose(f);
	assert_int_equal(urlkey_read(path, &k1, &n1, err, sizeof(err)), -1);
	assert_null(k1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "at least 32"));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(urlkey_read(path, &k1, &n1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(rmdir(dir), 0);
}

static unsigned char key_a[32] = "0123456789abcdef0123456789abcdef";
static unsigned char key_b[32] = "0123456789abcdef0123456789abcdeF";

static void
split(const char *url, char *path, char *exp, char *sig)
{
	const char *q = strchr(url, '?');

	assert_non_null(q);
	memcpy(path, url, (size_t)(q - url));
	path[q - url] = '\0';
	assert_int_equal(sscanf(q, "?exp=%20[0-9]&sig=%64[0-9a-f]", exp, sig), 2);
}

static void
test_urlsig(void **state)
{
	struct urlsig u = { .key = key_a, .keylen = sizeof(key_a), .ttl = 86400 };
	struct urlsig other = { .key = key_b, .keylen = sizeof(key_b), .ttl = 86400 };
	char url[256], path[128], exp[32], sig[80], want[HASH_HEX_LEN + 1], msg[160];
	long long e;

	(void)state;
	urlsig_url(&u, "/v1/images/" IMG "/file", NOW, url, sizeof(url));
	split(url, path, exp, sig);
	assert_string_equal(path, "/v1/images/" IMG "/file");
	/* exp: a day from now, rounded down to a 16th of it. */
	e = atoll(exp);
	assert_true(e <= NOW + 86400 && e > NOW + 86400 - 86400 / 16);
	assert_int_equal(e % (86400 / 16), 0);
	/* sig is the HMAC of the path and exp, nothing else. */
	snprintf(msg, sizeof(msg), "%s?exp=%s", path, exp);
	hash_hmac_sha256_hex(key_a, sizeof(key_a), msg, strlen(msg), want);
	assert_string_equal(sig, want);
	assert_int_equal(urlsig_check(&u, path, exp, sig, NOW), URLSIG_OK);
	assert_int_equal(urlsig_check(&u, path, exp, sig, e), URLSIG_OK);
	assert_int_equal(urlsig_check(&u, path, exp, sig, e + 1), URLSIG_EXPIRED);
	/* Another image, the thumbnail, a later exp, a changed digit, another key. */
	assert_int_equal(urlsig_check(&u, "/v1/images/" IMG "/thumbnail", exp, sig, NOW),
			 URLSIG_BAD);
	snprintf(msg, sizeof(msg), "%lld", e + 1);
	assert_int_equal(urlsig_check(&u, path, msg, sig, NOW), URLSIG_BAD);
	sig[10] = sig[10] == 'a' ? 'b' : 'a';
	assert_int_equal(urlsig_check(&u, path, exp, sig, NOW), URLSIG_BAD);
	sig[10] = want[10];
	assert_int_equal(urlsig_check(&other, path, exp, sig, NOW), URLSIG_BAD);
	/* Malformed. */
	assert_int_equal(urlsig_check(&u, path, NULL, sig, NOW), URLSIG_MALFORMED);
	assert_int_equal(urlsig_check(&u, path, exp, NULL, NOW), URLSIG_MALFORMED);
	assert_int_equal(urlsig_check(&u, path, "-5", sig, NOW), URLSIG_MALFORMED);
	assert_int_equal(urlsig_check(&u, path, "12x", sig, NOW), URLSIG_MALFORMED);
	assert_int_equal(urlsig_check(&u, path, exp, "abc", NOW), URLSIG_MALFORMED);
	/* URLs made within a 16th of the lifetime are the same (caching). */
	urlsig_url(&u, "/v1/images/" IMG "/file", e - 86400, msg, sizeof(msg));
	assert_string_equal(msg, url);
}

static void
test_urlsig_images(void **state)
{
	struct urlsig u = { .key = key_a, .keylen = sizeof(key_a), .ttl = 60 };
	json_t *im = json_pack("{ss ss s:n s[{ss ss ss}]}", "id", IMG, "file_path", "/x/a.png",
			       "thumbnail_path", "variants", "id", IMG, "file_path", "/x/b.png",
			       "thumbnail_path", "/x/b.thumb.webp");
	json_t *failed = json_pack("{ss ss s:n s:n}", "id", IMG, "status", "failed", "file_path",
				   "thumbnail_path");
	char *ev;

	(void)state;
	urlsig_image(&u, im, NOW);
	assert_non_null(strstr(json_string_value(json_object_get(im, "file_url")),
			       "/v1/images/" IMG "/file?exp="));
	assert_true(json_is_null(json_object_get(im, "thumbnail_url")));
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_array_get(json_object_get(im, "variants"), 0),
				       "thumbnail_url")),
			       "/thumbnail?exp="));
	urlsig_image(&u, failed, NOW);
	assert_true(json_is_null(json_object_get(failed, "file_url")));
	assert_true(json_is_null(json_object_get(failed, "thumbnail_url")));
	/* Only image_generated events have images. */
	assert_null(urlsig_event(&u, "progress", "{\"type\":\"progress\"}", NOW));
	ev = urlsig_event(&u, "image_generated",
			  "{\"type\":\"image_generated\",\"seq\":4,\"image\":{\"id\":\"" IMG "\","
			  "\"file_path\":\"/x/a.png\",\"thumbnail_path\":null}}", NOW);
	assert_non_null(ev);
	assert_memory_equal(ev, "{\"type\":\"image_generated\",\"seq\":4,\"image\":{\"id\":\"" IMG
			    "\",\"file_path\":\"/x/a.png\",\"thumbnail_path\":null,\"file_url\":",
			    strlen("{\"type\":\"image_generated\",\"seq\":4,\"image\":{\"id\":\"" IMG
				   "\",\"file_path\":\"/x/a.png\",\"thumbnail_path\":null,"
				   "\"file_url\":"));
	free(ev);
	json_decref(im);
	json_decref(failed);
}

/* ---- guard ---- */

static char *origins[] = { "https://ui.example", "http://127.0.0.1:9000" };

static struct guard_req
req(const char *method, const char *path)
{
	return (struct guard_req){ .method = method, .path = path, .matched = true,
				   .host = "127.0.0.1:8080", .now = NOW };
}

static unsigned
verdict(const struct guard *g, struct guard_req r, enum guard_verdict want)
{
	char msg[256];
	unsigned status = 0;
	enum guard_verdict v = guard_check(g, &r, &status, msg, sizeof(msg));

	if (v != want)
		print_error("%s %s: verdict %d (%u %s), want %d\n", r.method, r.path, v, status,
			    v == GUARD_REFUSE ? msg : "", want);
	assert_int_equal(v, want);
	return v == GUARD_REFUSE ? status : 0;
}

static void
test_guard_origin_and_content_type(void **state)
{
	struct guard g = { 0 };
	struct guard_req r;

	(void)state;
	assert_int_equal(guard_set_origins(&g, origins, 2), 0);
	assert_int_equal(guard_set_names(&g, NULL, 0, "127.0.0.1:8080", 8080), 0);
	/* A preflight: 204 for a listed origin, refused for another. */
	r = req("OPTIONS", "/v1/projects");
	r.matched = false;
	r.origin = "https://ui.example";
	r.preflight_method = "POST";
	verdict(&g, r, GUARD_PREFLIGHT);
	r.origin = "https://evil.example";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 403);
	/* State changes: JSON only; an Origin must be ours or listed. */
	r = req("POST", "/v1/projects");
	r.content_type = "application/json; charset=utf-8";
	verdict(&g, r, GUARD_PASS);
	r.origin = "http://127.0.0.1:8080";	/* our own */
	verdict(&g, r, GUARD_PASS);
	r.origin = "HTTP://127.0.0.1:9000";	/* listed */
	verdict(&g, r, GUARD_PASS);
	r.origin = "https://t2i.example";	/* ours, behind a proxy */
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 403);
	r.forwarded_host = "t2i.example";
	verdict(&g, r, GUARD_PASS);
	r.forwarded_host = NULL;
	r.origin = "http://127.0.0.1:9001";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 403);
	r.origin = "null";			/* a sandboxed frame */
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 403);
	r.origin = NULL;
	for (const char *const *ct = (const char *const[]){ "text/plain", "application/jsonx",
		     "application/x-www-form-urlencoded", "multipart/form-data", NULL };
	     *ct != NULL; ct++) {
		r.content_type = *ct;
		assert_int_equal(verdict(&g, r, GUARD_REFUSE), 415);
	}
	r.content_type = NULL;
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 415);
	r.method = "DELETE";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 415);
	/* Reading needs neither; a GET from another site is answered (the
	 * browser then hides it without CORS headers). */
	r = req("GET", "/v1/projects");
	r.origin = "https://evil.example";
	verdict(&g, r, GUARD_PASS);
	/* Unmatched: the route's 404/405 comes before the content type. */
	r = req("POST", "/v1/nowhere");
	r.matched = false;
	verdict(&g, r, GUARD_PASS);
	guard_free(&g);
}

static unsigned
host_verdict(const struct guard *g, const char *host, bool any_host)
{
	struct guard_req r = req("GET", "/v1/projects");
	char msg[256];
	unsigned status = 0;

	r.host = host;
	r.any_host = any_host;
	return guard_check(g, &r, &status, msg, sizeof(msg)) == GUARD_REFUSE ? status : 0;
}

/* The Host a request names must be one of the service's (DNS rebinding):
 * by default the listen address, localhost, 127.0.0.1 and [::1], bare or
 * with the service's port. */
static void
test_guard_server_names(void **state)
{
	char *names[] = { "images.example", "[::1]:9000", "10.0.0.5:8080" };
	char *any[] = { "*" };
	struct guard g = { 0 };

	(void)state;
	assert_int_equal(guard_set_names(&g, NULL, 0, "192.168.1.7:8080", 8080), 0);
	assert_int_equal(host_verdict(&g, "127.0.0.1:8080", false), 0);
	assert_int_equal(host_verdict(&g, "LOCALHOST:8080", false), 0);
	assert_int_equal(host_verdict(&g, "localhost", false), 0);
	assert_int_equal(host_verdict(&g, "[::1]:8080", false), 0);
	assert_int_equal(host_verdict(&g, "192.168.1.7:8080", false), 0);
	assert_int_equal(host_verdict(&g, "127.0.0.1:8081", false), 421);
	assert_int_equal(host_verdict(&g, "127.0.0.1:", false), 421);
	assert_int_equal(host_verdict(&g, "127.0.0.1:8080x", false), 421);
	assert_int_equal(host_verdict(&g, "evil.example:8080", false), 421);
	assert_int_equal(host_verdict(&g, "localhost.evil.example:8080", false), 421);
	assert_int_equal(host_verdict(&g, "evil.example:8080", true), 0);	/* /healthz */
	assert_int_equal(host_verdict(&g, NULL, false), 0);	/* HTTP/1.0 */
	/* Every address: no name of its own. */
	assert_int_equal(guard_set_names(&g, NULL, 0, "0.0.0.0:8080", 8080), 0);
	assert_int_equal(host_verdict(&g, "0.0.0.0:8080", false), 421);
	assert_int_equal(host_verdict(&g, "127.0.0.1:8080", false), 0);
	/* Named ones: with the port they give, or bare and the service's. */
	assert_int_equal(guard_set_names(&g, names, 3, "0.0.0.0:8080", 8080), 0);
	assert_int_equal(host_verdict(&g, "images.example", false), 0);
	assert_int_equal(host_verdict(&g, "images.example:8080", false), 0);
	assert_int_equal(host_verdict(&g, "images.example:443", false), 421);
	assert_int_equal(host_verdict(&g, "[::1]:9000", false), 0);
	assert_int_equal(host_verdict(&g, "[::1]:8080", false), 421);
	assert_int_equal(host_verdict(&g, "[::1]", false), 421);
	assert_int_equal(host_verdict(&g, "10.0.0.5:8080", false), 0);
	assert_int_equal(host_verdict(&g, "localhost:8080", false), 421);
	assert_int_equal(guard_set_names(&g, any, 1, "0.0.0.0:8080", 8080), 0);
	assert_int_equal(host_verdict(&g, "anything:1", false), 0);
	guard_free(&g);
}

static void
test_guard_tokens(void **state)
{
	struct urlsig u = { .key = key_a, .keylen = sizeof(key_a), .ttl = 60 };
	struct guard g = { .urlsig = &u };
	struct guard_req r;
	char url[256], path[128], exp[32], sig[80];

	(void)state;
	assert_int_equal(guard_set_token(&g, "s3cret"), 0);
	assert_int_equal(guard_set_names(&g, NULL, 0, "127.0.0.1:8080", 8080), 0);
	r = req("GET", "/v1/projects");
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 401);
	r.authorization = "Bearer s3cret";
	verdict(&g, r, GUARD_PASS);
	r.authorization = "Bearer s3cre";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 401);
	/* ?access_token= only where the route takes it, even when right. */
	r = req("GET", "/v1/projects");
	r.access_token = "s3cret";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 401);
	r.query_token = true;
	verdict(&g, r, GUARD_PASS);
	r.access_token = "wrong";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 401);
	/* Public routes, and unknown paths outside /v1 (a 404 says nothing). */
	r = req("GET", "/healthz");
	r.public = true;
	verdict(&g, r, GUARD_PASS);
	r = req("GET", "/nowhere");
	r.matched = false;
	verdict(&g, r, GUARD_PASS);
	r = req("GET", "/v1/nowhere");
	r.matched = false;
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 401);
	/* A signed URL instead of the token; a bad one is 403 whatever else. */
	urlsig_url(&u, "/v1/images/" IMG "/file", NOW, url, sizeof(url));
	split(url, path, exp, sig);
	r = req("GET", path);
	r.signed_url = true;
	r.exp = exp;
	r.sig = sig;
	verdict(&g, r, GUARD_PASS);
	r.now = NOW + 3600;
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 403);
	r.now = NOW;
	r.path = "/v1/images/" IMG "/thumbnail";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 403);
	r.authorization = "Bearer s3cret";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 403);
	r.exp = r.sig = NULL;
	verdict(&g, r, GUARD_PASS);
	r.authorization = NULL;
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 401);
	/* A foreign Origin is refused before the token is looked at. */
	r = req("POST", "/v1/projects");
	r.origin = "https://evil.example";
	r.authorization = "Bearer s3cret";
	r.content_type = "application/json";
	assert_int_equal(verdict(&g, r, GUARD_REFUSE), 403);
	guard_free(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hmac_vectors),
		cmocka_unit_test(test_urlkey),
		cmocka_unit_test(test_urlsig),
		cmocka_unit_test(test_urlsig_images),
		cmocka_unit_test(test_guard_origin_and_content_type),
		cmocka_unit_test(test_guard_tokens),
		cmocka_unit_test(test_guard_server_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
