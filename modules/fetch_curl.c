/* fetch_curl: downloads of image URLs for the worker, with libcurl.
 * A module (see src/proc/module.h) because linking libcurl into the binary cost
 * every start ~24 ms; only a worker whose plugin hands over URLs loads it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "curl_policy.h"
#include "module_abi.h"

module_fetch_fn t2i_fetch;
module_fetch_prepare_fn t2i_fetch_prepare;

struct sink {
	unsigned char *buf;
	size_t len, cap, max;
	int too_big;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n;

	if (add > s->max - s->len) {
		s->too_big = 1;
		return 0;	/* aborts the transfer */
	}
	if (s->len + add > s->cap) {
		size_t ncap = s->cap ? s->cap : 65536;
		unsigned char *nb;

		while (ncap < s->len + add)
			ncap *= 2;
		if ((nb = realloc(s->buf, ncap)) == NULL)
			return 0;
		s->buf = nb;
		s->cap = ncap;
	}
	memcpy(s->buf + s->len, p, add);
	s->len += add;
	return add;
}

static int global_ready;

/* curl_global_init() is not thread-safe and starts no threads: done once,
 * in a template before it forks, or by the first download. */
void
t2i_fetch_prepare(void)
{
	if (!global_ready && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
		global_ready = 1;
}

static CURL *
handle(void)
{
	static CURL *h;

	if (h == NULL) {
		t2i_fetch_prepare();
		h = curl_easy_init();	/* kept: connections are reused */
	}
	return h;
}

/* GET url into *out (free with free()).  Returns 0 on HTTP 200, -1 with a
 * reason otherwise; *http_status is 0 when no HTTP answer came. */
int
t2i_fetch(const char *url, size_t max, double connect_timeout_s, double timeout_s, void **out,
	  size_t *outlen, long *http_status, char *err, size_t errlen)
{
	struct sink s = { .max = max };
	CURL *h = handle();
	CURLcode rc;

	*out = NULL;
	*outlen = 0;
	*http_status = 0;
	if (h == NULL) {
		snprintf(err, errlen, "curl: cannot initialise");
		return -1;
	}
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_policy_apply(h, connect_timeout_s, timeout_s);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http_status);
	if (s.too_big)
		snprintf(err, errlen, "image larger than %zu bytes", max);
	else if (rc != CURLE_OK)
		snprintf(err, errlen, "download failed: %s", curl_easy_strerror(rc));
	else if (*http_status != 200)
		snprintf(err, errlen, "download answered HTTP %ld", *http_status);
	if (s.too_big || rc != CURLE_OK || *http_status != 200) {
		free(s.buf);
		return -1;
	}
	*out = s.buf;
	*outlen = s.len;
	return 0;
}
