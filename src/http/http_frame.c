/* http_frame: the strict reading of a request's head (see http_frame.h). */
#include "http_frame.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2: a token is any visible ASCII but the separators. */
static bool
is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
			return false;
	}
	return true;
}

static bool
name_is(const char *name, size_t n, const char *want)
{
	return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

/* Exactly "chunked", in any case, with white space around it at most. */
static bool
is_chunked(const char *v, size_t n)
{
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	return n == 7 && strncasecmp(v, "chunked", 7) == 0;
}

void
http_frame_init(struct http_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->cl_digits = true;
	f->te_chunked = true;
}

void
http_frame_header(struct http_frame *f, const char *name, size_t namelen, const char *value,
		  size_t valuelen)
{
	if (!is_token(name, namelen))
		f->bad_name = true;
	for (size_t i = 0; i < valuelen; i++)
		if (((unsigned char)value[i] < 0x20 && value[i] != '\t') || value[i] == 0x7f)
			f->bad_value = true;
	if (name_is(name, namelen, "Content-Length")) {
		f->content_length++;
		if (valuelen == 0 || strspn(value, "0123456789") < valuelen)
			f->cl_digits = false;
	} else if (name_is(name, namelen, "Transfer-Encoding")) {
		f->transfer_encoding++;
		if (!is_chunked(value, valuelen))
			f->te_chunked = false;
	} else if (name_is(name, namelen, "Host")) {
		f->host++;
	}
	/* "Name: value\r\n", as every client writes it. */
	f->parsed += namelen + 2 + valuelen + 2;
}

static bool
has_escape(const char *raw, const char *hex)
{
	for (const char *p = raw; (p = strchr(p, '%')) != NULL; p++)
		if (strncasecmp(p + 1, hex, 2) == 0)
			return true;
	return false;
}

/* "http://" or "https://", then the authority up to the path. */
static void
target_absolute(struct http_target *t, const char *raw)
{
	size_t skip = strncasecmp(raw, "http://", 7) == 0 ? 7
		    : strncasecmp(raw, "https://", 8) == 0 ? 8 : 0;
	const char *a = raw + skip;
	size_t n = strcspn(a, "/?#");

	if (skip == 0)
		return;
	/* No userinfo (RFC 9110 4.2.4), and a host that fits. */
	if (n == 0 || n >= sizeof(t->authority) || memchr(a, '@', n) != NULL) {
		t->bad = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		t->authority[i] = (char)tolower((unsigned char)a[i]);
	t->authority[n] = '\0';
	t->absolute = true;
}

void
http_frame_target(struct http_target *t, const char *raw)
{
	memset(t, 0, sizeof(*t));
	t->len = strlen(raw);
	for (size_t i = 0; i < t->len; i++)
		if ((unsigned char)raw[i] <= 0x20 || raw[i] == 0x7f)
			t->bad = true;
	if (has_escape(raw, "00") || has_escape(raw, "2f"))
		t->bad = true;
	t->origin = raw[0] == '/';
	if (!t->origin)
		target_absolute(t, raw);
}

/* The first problem with the request's framing, or NULL. */
static const char *
framing_verdict(const struct http_frame *f, const char *version)
{
	bool http10 = strcmp(version, "HTTP/1.0") == 0;

	if (f->content_length > 1)
		return "more than one Content-Length";
	if (f->content_length == 1 && !f->cl_digits)
		return "Content-Length is not a number";
	if (f->transfer_encoding > 0 && f->content_length > 0)
		return "Content-Length and Transfer-Encoding together";
	if (f->transfer_encoding > 1 || !f->te_chunked)
		return "a transfer coding other than chunked";
	if (f->transfer_encoding > 0 && http10)
		return "Transfer-Encoding in an HTTP/1.0 request";
	if (f->host > 1)
		return "more than one Host";
	if (f->host == 0 && !http10)
		return "no Host (HTTP/1.1 requires one)";
	return NULL;
}

const char *
http_frame_verdict(const struct http_frame *f, const struct http_target *t, const char *method,
		   const char *version, size_t head_size)
{
	const char *why = framing_verdict(f, version);
	size_t parsed;

	if (why != NULL)
		return why;
	if (!is_token(method, strlen(method)))
		return "a method that is not a token";
	if (f->bad_name)
		return "a header name that is not a token";
	if (f->bad_value)
		return "a control character in a header";
	if (t->bad)
		return "the target holds %00, an encoded \"/\", a space or a control character";
	if (!t->origin && !t->absolute)
		return "the target is neither /PATH nor http://HOST/PATH";
	/* "METHOD TARGET VERSION\r\n", the headers, "\r\n". */
	parsed = strlen(method) + 1 + t->len + 1 + strlen(version) + 2 + f->parsed + 2;
	if (head_size > parsed)
		return "the head holds a NUL, or bytes the server did not read as headers";
	return NULL;
}

const char *
http_frame_path(const struct http_target *t, const char *url)
{
	const char *p;

	if (!t->absolute)
		return url;
	if ((p = strstr(url, "://")) == NULL || (p = strchr(p + 3, '/')) == NULL)
		return "/";
	return p;
}
