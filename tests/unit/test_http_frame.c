/* Unit tests for the HTTP server's defences that need no socket: the
 * strict reading of a request's head (src/http/http_frame.c), the escaping
 * and throttling of what is logged (http_log.c), the per-address counters
 * (addrmap.c) and the shared feed of a run's latest events (sse_feed.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addrmap.h"
#include "http_frame.h"
#include "http_log.h"
#include "sse_feed.h"

/* A head: the target, then "Name: value" pairs; NULL when sound. */
static const char *
verdict_of(const char *method, const char *target, const char *version, size_t extra,
	   const char *const *headers)
{
	static struct http_target t;
	struct http_frame f;
	size_t size;

	http_frame_target(&t, target);
	http_frame_init(&f);
	size = strlen(method) + 1 + strlen(target) + 1 + strlen(version) + 2 + 2 + extra;
	for (const char *const *h = headers; h != NULL && *h != NULL; h += 2) {
		http_frame_header(&f, h[0], strlen(h[0]), h[1], strlen(h[1]));
		size += strlen(h[0]) + 2 + strlen(h[1]) + 2;
	}
	return http_frame_verdict(&f, &t, method, version, size);
}

#define HEADERS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void
assert_refused(const char *why, const char *needle)
{
	if (why == NULL || strstr(why, needle) == NULL)
		print_error("verdict \"%s\", want \"%s\"\n", why != NULL ? why : "(sound)", needle);
	assert_non_null(why);
	assert_non_null(strstr(why, needle));
}

static void
test_framing(void **state)
{
	(void)state;
	assert_null(verdict_of("GET", "/healthz", "HTTP/1.1", 0, HEADERS("Host", "a")));
	assert_null(verdict_of("POST", "/v1/projects", "HTTP/1.1", 0,
			       HEADERS("Host", "a", "Content-Length", "12")));
	assert_null(verdict_of("POST", "/v1/projects", "HTTP/1.1", 0,
			       HEADERS("Host", "a", "Transfer-Encoding", "Chunked")));
	assert_null(verdict_of("GET", "/healthz", "HTTP/1.0", 0, NULL));
	assert_refused(verdict_of("POST", "/", "HTTP/1.1", 0,
				  HEADERS("Host", "a", "Content-Length", "2", "Content-Length", "2")),
		       "more than one Content-Length");
	assert_refused(verdict_of("POST", "/", "HTTP/1.1", 0,
				  HEADERS("Host", "a", "Content-Length", "+2")), "not a number");
	assert_refused(verdict_of("POST", "/", "HTTP/1.1", 0,
				  HEADERS("Host", "a", "Content-Length", "2, 2")), "not a number");
	assert_refused(verdict_of("POST", "/", "HTTP/1.1", 0,
				  HEADERS("Host", "a", "Content-Length", "")), "not a number");
	assert_refused(verdict_of("POST", "/", "HTTP/1.1", 0,
				  HEADERS("Host", "a", "Content-Length", "2",
					  "Transfer-Encoding", "chunked")),
		       "Content-Length and Transfer-Encoding");
	for (const char *const *te = HEADERS("gzip", "chunked, gzip", "gzip, chunked", "identity",
					     "chunked;x=1");
	     *te != NULL; te++)
		assert_refused(verdict_of("POST", "/", "HTTP/1.1", 0,
					  HEADERS("Host", "a", "Transfer-Encoding", *te)),
			       "other than chunked");
	assert_refused(verdict_of("POST", "/", "HTTP/1.1", 0,
				  HEADERS("Host", "a", "Transfer-Encoding", "chunked",
					  "Transfer-Encoding", "chunked")), "other than chunked");
	assert_refused(verdict_of("POST", "/", "HTTP/1.0", 0,
				  HEADERS("Transfer-Encoding", "chunked")), "HTTP/1.0");
	assert_refused(verdict_of("GET", "/", "HTTP/1.1", 0, NULL), "no Host");
	assert_refused(verdict_of("GET", "/", "HTTP/1.1", 0, HEADERS("Host", "a", "host", "b")),
		       "more than one Host");
}

static void
test_names_values_and_targets(void **state)
{
	struct http_target t;

	(void)state;
	assert_refused(verdict_of("G\x01T", "/", "HTTP/1.1", 0, HEADERS("Host", "a")),
		       "method");
	assert_refused(verdict_of("GET", "/", "HTTP/1.1", 0, HEADERS("Host", "a", "Bad Name", "x")),
		       "header name");
	assert_refused(verdict_of("GET", "/", "HTTP/1.1", 0,
				  HEADERS("Host", "a", "Content-Length ", "0")), "header name");
	assert_refused(verdict_of("GET", "/", "HTTP/1.1", 0, HEADERS("Host", "a", "X", "a\x01")),
		       "control character");
	assert_null(verdict_of("GET", "/", "HTTP/1.1", 0, HEADERS("Host", "a", "X", "a\tb")));
	for (const char *const *p = HEADERS("/a%00", "/a%2fb", "/a%2Fb", "/a b", "/a\x7f",
					    "/?x=%00", "*", "a/b", "http://", "http://u@h/");
	     *p != NULL; p++)
		assert_non_null(verdict_of("GET", *p, "HTTP/1.1", 0, HEADERS("Host", "a")));
	assert_null(verdict_of("GET", "/a%2e%20b%25", "HTTP/1.1", 0, HEADERS("Host", "a")));
	/* A NUL MHD hid: the head is longer than what it gave. */
	assert_refused(verdict_of("GET", "/", "HTTP/1.1", 1, HEADERS("Host", "a")), "NUL");
	assert_null(verdict_of("GET", "/", "HTTP/1.1", 0, HEADERS("Host", "a")));
	/* The absolute form: routed on its path, its authority for Host. */
	http_frame_target(&t, "HTTP://Images.Example:8080/v1/projects?limit=2");
	assert_true(t.absolute && !t.origin && !t.bad);
	assert_string_equal(t.authority, "images.example:8080");
	assert_string_equal(http_frame_path(&t, "http://images.example:8080/v1/projects"),
			    "/v1/projects");
	http_frame_target(&t, "http://a.example");
	assert_string_equal(http_frame_path(&t, "http://a.example"), "/");
	http_frame_target(&t, "/x");
	assert_string_equal(http_frame_path(&t, "/x"), "/x");
}

static void
test_log_escape(void **state)
{
	char out[64];

	(void)state;
	http_log_escape(out, sizeof(out), "/caf\xc3\xa9 \\x", 9, true);
	assert_string_equal(out, "/caf\xc3\xa9\\x20\\x5cx");
	http_log_escape(out, sizeof(out), "a b", 3, false);
	assert_string_equal(out, "a b");
	/* Control characters, a C1 control, cut, overlong and surrogate forms,
	 * a NUL within. */
	http_log_escape(out, sizeof(out), "\n\x1b\xc2\x9b\xe2\x82\xc0\xaf\xed\xa0\x80\0z", 13,
			true);
	assert_string_equal(out, "\\x0a\\x1b\\xc2\\x9b\\xe2\\x82\\xc0\\xaf\\xed\\xa0\\x80\\x00z");
	http_log_escape(out, sizeof(out), "\xf0\x9f\x98\x80\xf4\x90\x80\x80", 8, true);
	assert_string_equal(out, "\xf0\x9f\x98\x80\\xf4\\x90\\x80\\x80");
	/* Too long: cut with "...", always terminated. */
	http_log_escape(out, 12, "\x01\x02\x03\x04", 4, true);
	assert_string_equal(out, "\\x01\\x02...");
}

static void
test_throttle(void **state)
{
	struct http_throttle t = { 0 };
	uint64_t n = 0;

	(void)state;
	assert_int_equal(http_throttle_hit(&t, 1000, &n), HTTP_THROTTLE_LINE);
	assert_int_equal(http_throttle_hit(&t, 2000, &n), HTTP_THROTTLE_QUIET);
	assert_int_equal(http_throttle_hit(&t, 3000, &n), HTTP_THROTTLE_QUIET);
	assert_false(http_throttle_due(&t, 30000, &n));
	/* The interval ends: one line with the two held. */
	assert_true(http_throttle_due(&t, 61000, &n));
	assert_int_equal(n, 2);
	assert_int_equal(http_throttle_hit(&t, 62000, &n), HTTP_THROTTLE_QUIET);
	/* A hit past the interval says the held and itself. */
	assert_int_equal(http_throttle_hit(&t, 122000, &n), HTTP_THROTTLE_SUMMARY);
	assert_int_equal(n, 2);
	/* Quiet for an interval: the next gets its own line again. */
	assert_false(http_throttle_due(&t, 190000, &n));
	assert_int_equal(http_throttle_hit(&t, 200000, &n), HTTP_THROTTLE_LINE);
	assert_int_equal(http_throttle_hit(&t, 200001, &n), HTTP_THROTTLE_QUIET);
	assert_true(http_throttle_due(&t, INT64_MAX, &n));	/* the stop */
	assert_int_equal(n, 1);
}

static void
key_of(struct addrkey *k, int family, const char *text)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

	if (family == AF_INET) {
		assert_int_equal(inet_pton(AF_INET, text, &in.sin_addr), 1);
		assert_true(addrkey_of(k, (struct sockaddr *)&in, sizeof(in)));
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &in6.sin6_addr), 1);
		assert_true(addrkey_of(k, (struct sockaddr *)&in6, sizeof(in6)));
	}
}

static void
test_addrmap(void **state)
{
	struct addrkey a, b, c, d;
	struct addrmap m;
	char text[ADDRKEY_TEXT];

	(void)state;
	key_of(&a, AF_INET, "127.0.0.1");
	key_of(&b, AF_INET6, "::ffff:127.0.0.1");	/* the same, dual stack */
	key_of(&c, AF_INET6, "2001:db8:1:2::5");
	key_of(&d, AF_INET6, "2001:db8:1:2:ffff::9");	/* the same /64 */
	assert_memory_equal(&a, &b, sizeof(a));
	assert_memory_equal(&c, &d, sizeof(c));
	addrkey_text(&a, text);
	assert_string_equal(text, "127.0.0.1");
	addrkey_text(&c, text);
	assert_string_equal(text, "2001:db8:1:2::/64");
	assert_int_equal(addrmap_init(&m, 2), 0);
	assert_null(addrmap_get(&m, &a));
	addrmap_add(&m, &c)->n = 7;
	addrmap_add(&m, &a)->n = 3;
	assert_int_equal(addrmap_add(&m, &b)->n, 3);	/* found, not made */
	key_of(&d, AF_INET, "10.0.0.1");
	assert_null(addrmap_add(&m, &d));		/* full */
	assert_int_equal(addrmap_get(&m, &c)->n, 7);
	addrmap_del(&m, addrmap_get(&m, &a));
	assert_null(addrmap_get(&m, &a));
	assert_int_equal(addrmap_get(&m, &c)->n, 7);
	assert_non_null(addrmap_add(&m, &d));
	addrmap_free(&m);
}

static void
test_feed(void **state)
{
	struct sse_feeds fs = { 0 };
	struct sse_feed *f = sse_feed_follow(&fs, "run-1"), *g;
	char text[32];
	size_t len;
	bool done;

	(void)state;
	assert_non_null(f);
	assert_ptr_equal(sse_feed_follow(&fs, "run-1"), f);
	assert_null(sse_feed_get(f, 1, 0, &len, &done));
	assert_int_equal(sse_feed_put(f, 5, 0, "e5", 2, false), 0);
	assert_int_equal(sse_feed_put(f, 6, 0, "e6", 2, true), 0);
	assert_string_equal(sse_feed_get(f, 5, 0, &len, &done), "e5");
	assert_false(done);
	assert_string_equal(sse_feed_get(f, 6, 0, &len, &done), "e6");
	assert_true(done);
	assert_null(sse_feed_get(f, 7, 0, &len, &done));
	assert_null(sse_feed_get(f, 6, 1, &len, &done));	/* another URL key */
	/* An older event (a replay) does not push the window out. */
	assert_int_equal(sse_feed_put(f, 2, 0, "e2", 2, false), 0);
	assert_null(sse_feed_get(f, 2, 0, &len, &done));
	assert_string_equal(sse_feed_get(f, 5, 0, &len, &done), "e5");
	/* A gap starts it anew; the window keeps the latest SSE_FEED_SLOTS. */
	for (int seq = 100; seq < 100 + SSE_FEED_SLOTS + 10; seq++) {
		snprintf(text, sizeof(text), "e%d", seq);
		assert_int_equal(sse_feed_put(f, seq, 0, text, strlen(text), false), 0);
	}
	assert_null(sse_feed_get(f, 5, 0, &len, &done));
	assert_null(sse_feed_get(f, 109, 0, &len, &done));
	assert_string_equal(sse_feed_get(f, 110, 0, &len, &done), "e110");
	g = sse_feed_follow(&fs, "run-2");
	assert_true(g != f);
	sse_feed_leave(&fs, f);
	sse_feed_leave(&fs, f);		/* the last follower: gone */
	assert_ptr_equal(fs.head, g);
	sse_feed_free_all(&fs);
	assert_null(fs.head);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_names_values_and_targets),
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test(test_throttle),
		cmocka_unit_test(test_addrmap),
		cmocka_unit_test(test_feed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
