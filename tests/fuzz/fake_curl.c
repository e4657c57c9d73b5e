/* fake_curl: see fake_curl.h. */
#define CURL_DISABLE_TYPECHECK
#include "fake_curl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

struct fake_easy {
	curl_write_callback write, header;
	void *wdata, *hdata;
	curl_off_t max;
	long status;
};

static const struct fake_answer *script;
static size_t nscript, taken;

void
fake_curl_script(const struct fake_answer *answers, size_t n)
{
	script = answers;
	nscript = n;
	taken = 0;
}

size_t
fake_curl_left(void)
{
	return nscript - taken;
}

CURL *
curl_easy_init(void)
{
	return calloc(1, sizeof(struct fake_easy));
}

void
curl_easy_cleanup(CURL *h)
{
	free(h);
}

CURLcode
curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
	struct fake_easy *e = h;
	va_list ap;

	va_start(ap, opt);
	switch (opt) {
	case CURLOPT_WRITEFUNCTION:
		e->write = va_arg(ap, curl_write_callback);
		break;
	case CURLOPT_WRITEDATA:
		e->wdata = va_arg(ap, void *);
		break;
	case CURLOPT_HEADERFUNCTION:
		e->header = va_arg(ap, curl_write_callback);
		break;
	case CURLOPT_HEADERDATA:
		e->hdata = va_arg(ap, void *);
		break;
	case CURLOPT_MAXFILESIZE_LARGE:
		e->max = va_arg(ap, curl_off_t);
		break;
	default:	/* the URL, the policy, the credentials: no network to apply them to */
		break;
	}
	va_end(ap);
	return CURLE_OK;
}

/* Hands text to cb in pieces of at most 7 bytes, then the rest, as a
 * network delivers a body in several calls. */
static CURLcode
deliver(curl_write_callback cb, void *arg, const char *text, size_t len)
{
	size_t first = len < 7 ? len : 7;

	if (cb == NULL || len == 0)
		return CURLE_OK;
	if (cb((char *)text, 1, first, arg) != first)
		return CURLE_WRITE_ERROR;
	if (len > first && cb((char *)text + first, 1, len - first, arg) != len - first)
		return CURLE_WRITE_ERROR;
	return CURLE_OK;
}

static CURLcode
deliver_headers(struct fake_easy *e, const struct fake_answer *a)
{
	char line[8192];
	const char *p = a->headers, *end = p != NULL ? p + a->hlen : NULL;
	int n = snprintf(line, sizeof(line), "HTTP/1.1 %03ld Fake\r\n", a->status);

	if (deliver(e->header, e->hdata, line, (size_t)n) != CURLE_OK)
		return CURLE_WRITE_ERROR;
	while (p != NULL && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = (size_t)((nl != NULL ? nl : end) - p);

		if (l > sizeof(line) - 3)
			l = sizeof(line) - 3;
		memcpy(line, p, l);
		memcpy(line + l, "\r\n", 2);
		if (deliver(e->header, e->hdata, line, l + 2) != CURLE_OK)
			return CURLE_WRITE_ERROR;
		p = nl != NULL ? nl + 1 : end;
	}
	return deliver(e->header, e->hdata, "\r\n", 2);
}

CURLcode
curl_easy_perform(CURL *h)
{
	struct fake_easy *e = h;
	const struct fake_answer *a;
	CURLcode rc;

	e->status = 0;
	if (taken == nscript || script[taken].status == 0) {
		taken += taken < nscript;
		return CURLE_COULDNT_CONNECT;
	}
	a = &script[taken++];
	e->status = a->status;
	if ((rc = deliver_headers(e, a)) != CURLE_OK)
		return rc;
	if (e->max > 0 && (curl_off_t)a->len > e->max)
		return CURLE_FILESIZE_EXCEEDED;
	return deliver(e->write, e->wdata, a->body, a->len);
}

CURLcode
curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	struct fake_easy *e = h;
	va_list ap;

	va_start(ap, info);
	if (info == CURLINFO_RESPONSE_CODE)
		*va_arg(ap, long *) = e->status;
	va_end(ap);
	return CURLE_OK;
}
