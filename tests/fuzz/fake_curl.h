/* fake_curl: the libcurl easy handle of a plugin harness, answering from a
 * script instead of the network.  A plugin and plugins/phttp.c are linked
 * unchanged: their curl_easy_perform() gets the script's next answer
 * through the write and header callbacks they set, as libcurl would hand
 * it to them.  The rest of libcurl (slists, escaping, dates) is the real
 * library. */
#ifndef T2I_FAKE_CURL_H
#define T2I_FAKE_CURL_H

#include <stddef.h>

/* One answer: status 0 is a transfer that failed before any HTTP answer
 * (curl_easy_perform() says it could not connect). */
struct fake_answer {
	long status;
	const char *headers;	/* "Name: value" lines, '\n' between them */
	size_t hlen;
	const char *body;
	size_t len;
};

/* The answers the next transfers get, in order; past the last one each
 * transfer fails to connect. */
void fake_curl_script(const struct fake_answer *answers, size_t n);
/* Answers not yet taken. */
size_t fake_curl_left(void);

#endif
