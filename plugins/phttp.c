/*
 * phttp: one JSON POST with libcurl, plus the pieces every HTTP plugin needs
 * around it: error filling, status classes, base64 and option merging.
 *
 * A worker process runs one plugin call at a time on one thread, so the
 * curl handle is created per request; its cost is nothing next to an image
 * generation that takes seconds to minutes.
 */
#include "phttp.h"

#include <curl/curl.h>
#include <limits.h>
#include <nettle/base64.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "curl_policy.h"

/* The host's JSON text with shortest reals (src/core/jsontext.c is compiled into
 * each HTTP plugin): provider requests carry the options as written. */
#include "../src/core/jsontext.h"

#define RETRY_AFTER_MAX_MS (24LL * 3600 * 1000)
#define HEADER_LINE_MAX 256

/* --------------------------------------------------------------- errors */

/* Length of the valid UTF-8 sequence at p, 0 if it is invalid.  Overlong
 * forms, surrogates and code points past U+10FFFF count as invalid because
 * the host puts messages into JSON, whose encoders refuse them. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (n > avail)
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

/* Makes s one printable line of valid UTF-8, in place: control characters
 * become spaces, invalid bytes '?', and a sequence cut by the end of the
 * string (vsnprintf truncation) is dropped. */
static void utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p != '\0') {
		size_t n = utf8_len(p, 4);
		if (n == 0) {
			size_t k = 1;
			while (k < 4 && p[k] >= 0x80 && p[k] <= 0xBF)
				k++;
			if (p[k] == '\0' && *p >= 0xC2 && *p <= 0xF4) {
				*p = '\0';	/* a cut sequence at the end */
				return;
			}
			*p++ = '?';
			continue;
		}
		if (n == 1 && (*p < 0x20 || *p == 0x7F))
			*p = ' ';
		p += n;
	}
}

int phttp_fail(struct t2i_error *err, int cls, long status, int64_t retry_after_ms,
	      const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err->struct_size < sizeof(*err))
		return -1;
	err->error_class = cls;
	err->http_status = (int32_t)status;
	err->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 0;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	utf8_clean(err->message);
	return -1;
}

int phttp_status_class(long status)
{
	if (status == 401 || status == 403)
		return T2I_ERR_AUTH;
	if (status == 402)	/* Payment Required: what compatibles send when credits run out */
		return T2I_ERR_QUOTA;
	if (status == 429)
		return T2I_ERR_RATE_LIMITED;
	if (status >= 400 && status < 500 && status != 408)
		return T2I_ERR_REJECTED;
	return T2I_ERR_TRANSIENT;
}

/* "Name", "Prefix*" or "*Suffix". */
static int code_matches(const char *pattern, const char *code)
{
	size_t n = strlen(pattern), len = strlen(code);

	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(code, pattern, n - 1) == 0;
	if (n > 0 && pattern[0] == '*')
		return len >= n - 1 && strcmp(code + len - (n - 1), pattern + 1) == 0;
	return strcmp(code, pattern) == 0;
}

int phttp_code_class(const struct phttp_code *table, const char *code, long status)
{
	for (; code != NULL && table != NULL && table->code != NULL; table++)
		if (code_matches(table->code, code))
			return table->cls;
	return phttp_status_class(status);
}

int phttp_fail_code(struct t2i_error *err, const char *tag, const struct phttp_resp *rs,
		   const struct phttp_code *table, const char *code, const char *message)
{
	long status = rs != NULL ? rs->status : 0;
	int cls = phttp_code_class(table, code, status);
	int64_t ra = rs != NULL && (cls == T2I_ERR_RATE_LIMITED || cls == T2I_ERR_TRANSIENT)
		     ? rs->retry_after_ms : 0;
	char where[32] = "";

	if (rs != NULL)
		snprintf(where, sizeof(where), "HTTP %ld%s", status, code != NULL ? " " : "");
	if (message == NULL || message[0] == '\0')
		message = "(no message)";
	return phttp_fail(err, cls, status, ra, "%s: %s%s%s%s", tag, where, code != NULL ? code : "",
			 rs != NULL || code != NULL ? ": " : "", message);
}

int phttp_fail_status(struct t2i_error *err, const char *tag, const struct phttp_resp *rs,
		     const char *what)
{
	char ex[PHTTP_EXCERPT_MAX + 8];
	int cls = phttp_status_class(rs->status);
	int64_t ra = cls == T2I_ERR_RATE_LIMITED || cls == T2I_ERR_TRANSIENT ? rs->retry_after_ms : 0;

	if (what == NULL) {
		phttp_excerpt(rs->body, rs->len, ex, sizeof(ex));
		what = ex[0] != '\0' ? ex : "(empty body)";
	}
	return phttp_fail(err, cls, rs->status, ra, "%s: HTTP %ld: %s", tag, rs->status, what);
}

int phttp_fail_malformed(struct t2i_error *err, const char *tag, const struct phttp_resp *rs,
			const char *what)
{
	char ex[PHTTP_EXCERPT_MAX + 8];

	phttp_excerpt(rs->body, rs->len, ex, sizeof(ex));
	return phttp_fail(err, T2I_ERR_TRANSIENT, rs->status, 0, "%s: %s (HTTP %ld): %s", tag, what,
			 rs->status, ex[0] != '\0' ? ex : "(empty body)");
}

/* Replaces every occurrence of needle (n bytes) in s by "***". */
static void scrub_one(char *s, const char *needle, size_t n)
{
	char *p;

	while ((p = memmem(s, strlen(s), needle, n)) != NULL) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + n, strlen(p + n) + 1);
	}
}

void phttp_scrub(struct t2i_error *err, const char *secret)
{
	const char *p = secret;

	if (err == NULL || err->struct_size < sizeof(*err) || secret == NULL || secret[0] == '\0')
		return;
	err->message[sizeof(err->message) - 1] = '\0';
	if (strlen(secret) >= 3)
		scrub_one(err->message, secret, strlen(secret));
	/* Each of several comma-separated session ids, and the password of a
	 * "user:pass" (a user name is no secret).  Parts shorter than 6 bytes
	 * would mangle ordinary words; the host redacts the whole key too. */
	while (*p != '\0') {
		size_t n = strcspn(p, ","), skip = strcspn(p, ":");
		const char *s = skip < n ? p + skip + 1 : p;
		size_t len = (size_t)(p + n - s);
		if (len >= 6)
			scrub_one(err->message, s, len);
		p += n + (p[n] != '\0');
	}
}

void phttp_excerpt(const char *s, size_t len, char *out, size_t outlen)
{
	/* An empty answer has no body at all: NULL + 0 is undefined too. */
	const unsigned char *p = (const unsigned char *)s, *end = s != NULL ? p + len : p;
	size_t o = 0, room = outlen > 4 ? outlen - 4 : 0;
	int space = 1;	/* drops leading white space and collapses runs */

	if (room > PHTTP_EXCERPT_MAX)
		room = PHTTP_EXCERPT_MAX;
	while (p < end && o < room) {
		size_t n = utf8_len(p, (size_t)(end - p));
		if (n == 0 || *p == 0x7F || (n == 1 && *p < 0x20 && *p != '\t' && *p != '\n' &&
					    *p != '\r')) {
			out[o++] = '?';
			p++;
			space = 0;
		} else if (n == 1 && (*p == ' ' || *p < 0x20)) {
			if (!space)
				out[o++] = ' ';
			p++;
			space = 1;
		} else if (o + n <= room) {
			memcpy(out + o, p, n);
			o += n;
			p += n;
			space = 0;
		} else {
			break;
		}
	}
	if (p < end)
		memcpy(out + o, "...", 3), o += 3;
	if (outlen > 0)
		out[o < outlen ? o : outlen - 1] = '\0';
}

void phttp_log(const struct t2i_host *host, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (host == NULL || host->struct_size < PHTTP_HOST_NEEDS || host->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	utf8_clean(buf);
	host->log(host->ctx, level, "%s", buf);
}

int phttp_check_abi(const char *tag, const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	if (err == NULL || err->struct_size < sizeof(*err))
		return -1;
	if (req == NULL || req->abi_version < 1 || req->struct_size < PHTTP_REQ_NEEDS)
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0,
				 "%s: request struct from an older host (size %u)", tag,
				 req != NULL ? (unsigned)req->struct_size : 0u);
	if (host == NULL || host->abi_version < 1 || host->struct_size < PHTTP_HOST_NEEDS ||
	    host->add_image == NULL)
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, "%s: host struct too small", tag);
	return 0;
}

/* ---------------------------------------------------------------- curl */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void phttp_req_init(struct phttp_req *rq, const char *tag, const struct t2i_request *req)
{
	memset(rq, 0, sizeof(*rq));
	rq->tag = tag;
	rq->timeout_s = req->timeout_s;
	rq->connect_timeout_s = req->connect_timeout_s;
	rq->max_bytes = req->max_response_bytes;
}

/* Where a transfer collects its answer. */
struct sink {
	struct phttp_resp *rs;
	size_t cap;		/* bytes allocated for rs->body */
	uint64_t max;
	int too_big, oom;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	struct phttp_resp *rs = s->rs;
	size_t n = size * nmemb;

	if (n > s->max - rs->len) {
		s->too_big = 1;
		return 0;	/* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (rs->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 16384;
		while (cap < rs->len + n + 1)
			cap *= 2;	/* bounded: len + n <= max, far below SIZE_MAX */
		char *b = realloc(rs->body, cap);
		if (b == NULL) {
			s->oom = 1;
			return 0;
		}
		rs->body = b;
		s->cap = cap;
	}
	memcpy(rs->body + rs->len, data, n);
	rs->len += n;
	rs->body[rs->len] = '\0';
	return n;
}

/* Keeps the header lines of the last response (a 100 Continue or a
 * redirect came before it), one "Name: value\n" each, up to
 * PHTTP_HEADERS_MAX bytes: later lines are dropped, never cut. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct phttp_resp *rs = ((struct sink *)ud)->rs;
	size_t n = size * nmemb, len = n;

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		rs->hlen = 0;
		return n;
	}
	while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
		len--;
	if (len == 0 || memchr(data, ':', len) == NULL || rs->hlen + len + 2 > PHTTP_HEADERS_MAX)
		return n;
	if (rs->headers == NULL && (rs->headers = malloc(PHTTP_HEADERS_MAX)) == NULL)
		return n;
	memcpy(rs->headers + rs->hlen, data, len);
	rs->hlen += len;
	rs->headers[rs->hlen++] = '\n';
	rs->headers[rs->hlen] = '\0';
	return n;
}

int phttp_header(const struct phttp_resp *rs, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);
	const char *p = rs->hlen > 0 ? rs->headers : "";

	for (const char *eol; (eol = strchr(p, '\n')) != NULL; p = eol + 1) {
		const char *v = p + n;
		if ((size_t)(eol - p) <= n || strncasecmp(p, name, n) != 0 || *v != ':')
			continue;
		v += 1 + strspn(v + 1, " \t");
		snprintf(out, outlen, "%.*s", (int)(eol - v), v);
		return 0;
	}
	return -1;
}

/* Milliseconds from a Retry-After value: delay-seconds or an HTTP date.  A
 * value that is neither, negative, or a date gone by is no delay (-1), with
 * why in note, for the message: the supervisor then waits its own backoff. */
static int64_t parse_retry_after(const char *v, char *note, size_t notelen)
{
	if (*v >= '0' && *v <= '9') {
		double s = strtod(v, NULL);
		return s * 1000 < (double)RETRY_AFTER_MAX_MS ? (int64_t)(s * 1000) : RETRY_AFTER_MAX_MS;
	}
	time_t t = curl_getdate(v, NULL), now = time(NULL);
	if (t == (time_t)-1 || t <= now) {
		snprintf(note, notelen, "its Retry-After \"%.60s\" is %s: ignored", v,
			 t != (time_t)-1 ? "a date in the past"
			 : *v == '-' ? "negative" : "neither a delay nor a date");
		return -1;
	}
	return t - now < RETRY_AFTER_MAX_MS / 1000 ? (int64_t)(t - now) * 1000 : RETRY_AFTER_MAX_MS;
}

/* retry-after-ms (OpenAI's, more precise) before Retry-After; -1 if none. */
static int64_t retry_after(struct phttp_resp *rs)
{
	char v[HEADER_LINE_MAX];

	if (phttp_header(rs, "retry-after-ms", v, sizeof(v)) == 0 && v[0] >= '0' && v[0] <= '9') {
		double ms = strtod(v, NULL);
		return ms < (double)RETRY_AFTER_MAX_MS ? (int64_t)ms : RETRY_AFTER_MAX_MS;
	}
	if (phttp_header(rs, "retry-after", v, sizeof(v)) == 0)
		return parse_retry_after(v, rs->retry_note, sizeof(rs->retry_note));
	return -1;
}

/* Everything but the URL, method, body and credentials is the same for
 * every call: curl_policy.h (shared with the worker's downloads), plus TCP
 * keepalive because the connection sits idle for the whole generation (up
 * to 15 minutes), long enough for a NAT or proxy to forget it silently. */
static void set_common(CURL *h, const struct phttp_req *rq, struct sink *s, char *errbuf)
{
	curl_policy_apply(h, rq->connect_timeout_s, rq->timeout_s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 60L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 30L);
	/* Refuses a too large Content-Length before reading; the write
	 * callback catches bodies without one (or decompressed ones). */
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->max);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
}

/* curl keeps the credentials out of redirects to another host. */
static void set_auth(CURL *h, const struct phttp_req *rq)
{
	if (rq->bearer != NULL && rq->bearer[0] != '\0') {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, rq->bearer);
	} else if (rq->basic != NULL && rq->basic[0] != '\0') {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERPWD, rq->basic);
	}
}

/* A body is POSTed unless the method says otherwise; no body is a GET. */
static void set_method(CURL *h, const struct phttp_req *rq)
{
	const char *m = rq->method;

	if (rq->body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(rq->body));
		if (m != NULL && strcmp(m, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	} else if (m == NULL || strcmp(m, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	}
}

/* Turns a failed transfer into a transient error with curl's reason. */
static int transfer_error(const struct phttp_req *rq, const struct sink *s, CURLcode rc,
			  const char *errbuf, struct t2i_error *err)
{
	long status = s->rs->status;

	if (s->too_big || rc == CURLE_FILESIZE_EXCEEDED)
		return phttp_fail(err, T2I_ERR_TRANSIENT, status, 0,
				 "%s: response larger than %llu bytes", rq->tag,
				 (unsigned long long)s->max);
	if (s->oom)
		return phttp_fail(err, T2I_ERR_TRANSIENT, status, 0, "%s: out of memory", rq->tag);
	return phttp_fail(err, T2I_ERR_TRANSIENT, status, 0, "%s: %s", rq->tag,
			 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
}

/* A key pasted with its newline would end the header early and send the
 * rest as a header line of its own. */
static int has_control(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7F)
			return 1;
	return 0;
}

/* The request's header lines: JSON for a body (an empty Expect: stops curl
 * from waiting for "100 Continue" on long prompts, which some servers never
 * send), then the plugin's own.  -1 when out of memory. */
static int build_headers(const struct phttp_req *rq, struct curl_slist **out)
{
	static const char *const json[] = {"Content-Type: application/json",
					   "Accept: application/json", "Expect:", NULL};
	const char *const *lists[] = {rq->body != NULL ? json : NULL, rq->headers};
	struct curl_slist *l;

	*out = NULL;
	for (size_t k = 0; k < 2; k++)
		for (const char *const *p = lists[k]; p != NULL && *p != NULL; p++) {
			if ((l = curl_slist_append(*out, *p)) == NULL) {
				curl_slist_free_all(*out);
				*out = NULL;
				return -1;
			}
			*out = l;
		}
	return 0;
}

static int check_request(const struct phttp_req *rq, struct t2i_error *err)
{
	if (has_control(rq->bearer) || has_control(rq->basic))
		return phttp_fail(err, T2I_ERR_AUTH, 0, 0, "%s: the api key contains a control "
				 "character (a stray newline?)", rq->tag);
	for (const char *const *p = rq->headers; p != NULL && *p != NULL; p++)
		if (has_control(*p) || strchr(*p, ':') == NULL)
			return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, "%s: header %zu is not one "
					 "\"Name: value\" line", rq->tag,
					 (size_t)(p - rq->headers) + 1);
	return 0;
}

int phttp_request(const struct phttp_req *rq, struct phttp_resp *rs, struct t2i_error *err)
{
	struct sink s = {.rs = rs, .max = rq->max_bytes ? rq->max_bytes : PHTTP_DEFAULT_MAX};
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs;
	CURL *h;
	CURLcode rc;

	memset(rs, 0, sizeof(*rs));
	rs->retry_after_ms = -1;
	if (check_request(rq, err) != 0)
		return -1;
	pthread_once(&curl_once, curl_init);
	/* A fresh handle, and so a fresh connection, per request.  Reusing a
	 * kept-alive connection would save a handshake, but when a reused
	 * connection dies before any answer, libcurl sends the request again
	 * by itself, POST included: a paid generation the supervisor never
	 * counted (CURLOPT_FORBID_RETRY_ON_REUSE, which stops that, came with
	 * libcurl 8.16).  A new connection fails instead, and the retry policy
	 * decides. */
	if (curl_init_rc != CURLE_OK || (h = curl_easy_init()) == NULL)
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, "%s: cannot initialise libcurl",
				 rq->tag);
	if (build_headers(rq, &hdrs) != 0) {
		curl_easy_cleanup(h);
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, "%s: out of memory", rq->tag);
	}
	set_common(h, rq, &s, errbuf);
	set_auth(h, rq);
	curl_easy_setopt(h, CURLOPT_URL, rq->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	set_method(h, rq);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
	rs->retry_after_ms = retry_after(rs);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK)
		return transfer_error(rq, &s, rc, errbuf, err);
	return 0;
}

int phttp_post_body(struct phttp_req *rq, json_t *body, struct phttp_resp *rs,
		   struct t2i_error *err)
{
	char *text = jsontext_dumps(body, JSON_COMPACT);
	int rc;

	json_decref(body);
	memset(rs, 0, sizeof(*rs));
	if (text == NULL)
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, "%s: out of memory", rq->tag);
	rq->body = text;
	rc = phttp_request(rq, rs, err);
	rq->body = NULL;
	free(text);
	return rc;
}

void phttp_resp_free(struct phttp_resp *rs)
{
	free(rs->body);
	free(rs->headers);
	rs->body = rs->headers = NULL;
	rs->len = rs->hlen = 0;
}

char *phttp_endpoint(const char *api_url, const char *suffix)
{
	size_t n = strlen(api_url), e = strlen(suffix);
	char *url;

	while (n > 0 && api_url[n - 1] == '/')
		n--;
	if (n >= e && memcmp(api_url + n - e, suffix, e) == 0)
		e = 0;
	if ((url = malloc(n + e + 1)) == NULL)
		return NULL;
	memcpy(url, api_url, n);
	memcpy(url + n, suffix, e);
	url[n + e] = '\0';
	return url;
}

char *phttp_urlf(const char *base, const char *fmt, ...)
{
	char *path, *url;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&path, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if (asprintf(&url, "%s%s", base, path) < 0)
		url = NULL;
	free(path);
	return url;
}

char *phttp_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *out = e != NULL ? strdup(e) : NULL;

	curl_free(e);
	return out;
}

/* ---------------------------------------------------------------- JSON */

json_t *phttp_parse_json(const struct phttp_resp *rs, uint64_t max_bytes)
{
	if (rs->body == NULL || rs->len == 0 || (max_bytes > 0 && rs->len > max_bytes))
		return NULL;
	return json_loadb(rs->body, rs->len, 0, NULL);
}

const char *phttp_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL && s[0] != '\0' ? s : NULL;
}

int phttp_put_str(json_t *obj, const char *key, const char *value)
{
	json_t *v = json_string(value);

	return v != NULL && json_object_set_new(obj, key, v) == 0 ? 0 : -1;
}

json_t *phttp_bad_field(json_t *body, const char *tag, struct t2i_error *err)
{
	json_decref(body);
	phttp_fail(err, T2I_ERR_REJECTED, 0, 0, "%s: a request field is not valid UTF-8", tag);
	return NULL;
}

static int denied(const char *key, const char *const *deny)
{
	for (; deny != NULL && *deny != NULL; deny++)
		if (strcmp(key, *deny) == 0)
			return 1;
	return 0;
}

int phttp_merge_options(json_t *body, const char *options_json, const char *const *deny,
		       const char *tag, const struct t2i_host *host, struct t2i_error *err)
{
	const char *key;
	json_t *opts, *v;

	if (options_json == NULL || options_json[strspn(options_json, " \t\r\n")] == '\0')
		return 0;
	opts = json_loads(options_json, 0, NULL);
	if (!json_is_object(opts)) {
		json_decref(opts);
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, "%s: options are not a JSON object",
				 tag);
	}
	json_object_foreach(opts, key, v) {
		if (denied(key, deny))
			phttp_log(host, T2I_LOG_WARNING, "%s: option \"%s\" is not sent: the "
				 "provider refuses it", tag, key);
		else if (json_object_get(body, key) == NULL)
			json_object_set(body, key, v);
	}
	json_decref(opts);
	return 0;
}

/* ---------------------------------------------------------------- sizes */

/* Compares ratios as the quotient of the two (>= 1), which needs no libm. */
struct phttp_size phttp_nearest_size(const struct phttp_size *list, unsigned w, unsigned h)
{
	struct phttp_size best = list[0];
	double best_d = 0;

	for (; list->w != 0 && w != 0 && h != 0; list++) {
		double q = ((double)w * list->h) / ((double)h * list->w);
		double d = q >= 1 ? q : 1 / q;
		if (best_d == 0 || d < best_d) {
			best_d = d;
			best = *list;
		}
	}
	return best;
}

static unsigned long long clamp_side(unsigned long long v, unsigned min, unsigned max)
{
	return v < min ? min : v > max ? max : v;
}

struct phttp_size phttp_fit_sides(struct phttp_size s, unsigned min, unsigned max)
{
	unsigned long long w = s.w, h = s.h, big = w > h ? w : h, small = w < h ? w : h;

	if (small == 0)
		return s;
	if (big > max) {
		w = w * max / big;
		h = h * max / big;
	} else if (small < min) {
		w = w * min / small;
		h = h * min / small;
	}
	return (struct phttp_size){(unsigned)clamp_side(w, min, max),
				   (unsigned)clamp_side(h, min, max)};
}

void phttp_warn_no_negative(const struct t2i_request *req, const struct t2i_host *host,
			   const char *what)
{
	static int warned;

	if (req->negative_prompt[0] != '\0' && !warned) {
		warned = 1;
		phttp_log(host, T2I_LOG_WARNING, "%s", what);
	}
}

void phttp_set_default(json_t *obj, const char *key, json_t *value)
{
	if (json_object_get(obj, key) == NULL)
		json_object_set_new(obj, key, value);
	else
		json_decref(value);
}

int phttp_body_start(json_t **opts, json_t **body, const struct t2i_request *req,
		    const char *const *deny, const char *tag, const struct t2i_host *host,
		    struct t2i_error *err)
{
	*opts = json_object();
	*body = json_object();
	if (*opts != NULL && *body != NULL &&
	    phttp_merge_options(*opts, req->options_json, deny, tag, host, err) == 0)
		return 0;
	if (*opts == NULL || *body == NULL)
		phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, "%s: out of memory", tag);
	json_decref(*opts);
	json_decref(*body);
	*opts = *body = NULL;
	return -1;
}

/* -------------------------------------------------------------- base64 */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Skips leading blanks and a data: URL's header. */
static const char *b64_start(const char *in, size_t *inlen)
{
	const char *end = in + *inlen, *comma;

	while (in < end && is_space(*in))
		in++;
	if (end - in >= 5 && strncasecmp(in, "data:", 5) == 0) {
		comma = memchr(in, ',', (size_t)(end - in) < 256 ? (size_t)(end - in) : 256);
		if (comma == NULL)
			return NULL;
		in = comma + 1;
	}
	*inlen = (size_t)(end - in);
	return in;
}

int http_b64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
	struct base64_decode_ctx ctx;
	size_t sig = 0, done = 0;
	int padded = 0;
	uint8_t *buf, pad;

	*out = NULL;
	*outlen = 0;
	if ((in = b64_start(in, &inlen)) == NULL)
		return -1;
	for (size_t i = 0; i < inlen; i++) {
		padded |= in[i] == '=';
		sig += !is_space(in[i]) && in[i] != '=';
	}
	if (sig == 0 || (buf = malloc(BASE64_DECODE_LENGTH(inlen) + 1)) == NULL)
		return -1;
	base64_decode_init(&ctx);
	int ok = base64_decode_update(&ctx, &done, buf, inlen, in);
	/* Some servers drop the trailing '=': nettle wants it. */
	for (size_t k = sig % 4; ok && !padded && k >= 2 && k < 4; k++)
		ok = base64_decode_single(&ctx, &pad, '=') >= 0;
	if (!ok || !base64_decode_final(&ctx) || done == 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = done;
	return 0;
}

/* ---------------------------------------------------------------- images */

/* One data[] item; add_image's answer, or -1 (logged) for an item that
 * carries no usable image.  The URL goes along with the bytes, so the host
 * can record where they came from. */
static int add_item(const struct t2i_host *host, const char *tag, const json_t *item,
		    size_t index)
{
	const json_t *b64 = json_is_string(item) ? item : json_object_get(item, "b64_json");
	const char *url = json_string_value(json_object_get(item, "url"));
	unsigned char *bytes;
	size_t len;
	int rc;

	if (url != NULL && url[0] == '\0')
		url = NULL;
	if (json_is_string(b64)) {
		if (http_b64_decode(json_string_value(b64), json_string_length(b64), &bytes,
				    &len) != 0) {
			phttp_log(host, T2I_LOG_WARNING, "%s: image %zu is not valid base64", tag,
				 index + 1);
			return -1;
		}
		rc = host->add_image(host->ctx, url, bytes, len);
		free(bytes);
		return rc;
	}
	if (url != NULL)
		return host->add_image(host->ctx, url, NULL, 0);
	phttp_log(host, T2I_LOG_WARNING, "%s: image %zu has neither url nor b64_json", tag,
		 index + 1);
	return -1;
}

int phttp_add_images(const struct t2i_host *host, const char *tag, const json_t *items,
		    long status, struct t2i_error *err)
{
	size_t i, added = 0;
	const json_t *item;

	json_array_foreach(items, i, item)
		added += add_item(host, tag, item, i) == 0;
	if (added == 0)
		return phttp_fail(err, T2I_ERR_TRANSIENT, status, 0, "%s: no image could be stored",
				 tag);
	if (added < json_array_size(items))
		phttp_log(host, T2I_LOG_WARNING, "%s: %zu of %zu images stored", tag, added,
			 json_array_size(items));
	return 0;
}

int
phttp_generate(const struct phttp_plugin *pl, const struct t2i_request *req,
	      const struct t2i_host *host, struct t2i_error *err)
{
	struct phttp_req rq;
	struct phttp_resp rs = {0};
	json_t *body;
	char *url = NULL;
	int rc;

	if (phttp_check_abi(pl->tag, req, host, err) != 0)
		return -1;
	if (req->api_url[0] == '\0')
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, "%s: no api_url configured", pl->tag);
	if ((body = pl->build_body(req, host, err)) == NULL)
		return -1;
	if (pl->endpoint != NULL && (url = pl->endpoint(req->api_url)) == NULL) {
		json_decref(body);
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, "%s: out of memory", pl->tag);
	}
	phttp_req_init(&rq, pl->tag, req);
	rq.url = url != NULL ? url : req->api_url;
	if (pl->auth != NULL)
		pl->auth(&rq, req->api_key);
	else
		rq.bearer = req->api_key;
	rc = phttp_post_body(&rq, body, &rs, err);
	if (rc == 0)
		rc = pl->handle(req, host, &rs, err);
	if (rc != 0 && rs.retry_note[0] != '\0' && err->retry_after_ms <= 0) {
		size_t n = strlen(err->message);

		/* Said with the failure, so that the warning of the wait says it. */
		snprintf(err->message + n, sizeof(err->message) - n, "; %s", rs.retry_note);
		utf8_clean(err->message);
	}
	phttp_resp_free(&rs);
	free(url);
	if (rc != 0)
		phttp_scrub(err, req->api_key);
	return rc;
}
