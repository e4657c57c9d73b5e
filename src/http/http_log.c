/* http_log: the access log, escaped and throttled (see http_log.h). */
#include "http_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define PATH_TEXT 1024	/* bytes of an escaped path written (4 per byte at worst) */

/* Bytes of the UTF-8 sequence at s (left bytes), 0 when it is not one: an
 * overlong form, a surrogate, past U+10FFFF, cut short, or a C1 control
 * (U+0080 to U+009F, which terminals obey). */
static size_t
utf8_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
		 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	unsigned char lo = 0x80, hi = 0xbf;

	if (n == 0 || n > left)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi || (c == 0xc2 && s[1] <= 0x9f))
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

void
http_log_escape(char *dst, size_t dstlen, const char *src, size_t srclen, bool space)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, i = 0;

	if (dstlen == 0)
		return;
	while (i < srclen) {
		unsigned char c = s[i];
		size_t n = c >= 0x80 ? utf8_len(s + i, srclen - i) : 1;
		bool esc = n == 0 || c < 0x20 || c == 0x7f || c == '\\' || (space && c == ' ');
		size_t need = esc ? 4 : n;

		if (o + need + 4 > dstlen) {	/* room for "..." and the NUL */
			snprintf(dst + o, dstlen - o, "...");
			return;
		}
		if (esc) {
			snprintf(dst + o, dstlen - o, "\\x%02x", c);
			n = 1;
		} else {
			memcpy(dst + o, s + i, n);
		}
		o += need;
		i += n;
	}
	dst[o] = '\0';
}

enum http_throttle_say
http_throttle_hit(struct http_throttle *t, int64_t now, uint64_t *count)
{
	if (t->active && now - t->since_ms < HTTP_LOG_INTERVAL_MS) {
		t->held++;
		return HTTP_THROTTLE_QUIET;
	}
	*count = t->held + 1;
	t->since_ms = now;
	t->held = 0;
	/* The first, or the first after a quiet interval: its own line. */
	if (!t->active || *count == 1) {
		t->active = true;
		return HTTP_THROTTLE_LINE;
	}
	return HTTP_THROTTLE_SUMMARY;
}

bool
http_throttle_due(struct http_throttle *t, int64_t now, uint64_t *count)
{
	if (!t->active || (now != INT64_MAX && now - t->since_ms < HTTP_LOG_INTERVAL_MS))
		return false;
	if (t->held == 0) {
		t->active = false;	/* quiet: the next one gets its line */
		return false;
	}
	*count = t->held;
	t->held = 0;
	t->since_ms = now;
	return true;
}

int
http_log_init(struct http_log *l, size_t addresses)
{
	memset(l, 0, sizeof(*l));
	return addrmap_init(&l->denied, addresses);
}

void
http_log_free(struct http_log *l)
{
	addrmap_free(&l->denied);
}

static void
write_line(const struct http_logline *ln)
{
	char method[64], path[PATH_TEXT];

	http_log_escape(method, sizeof(method), ln->method, strlen(ln->method), true);
	http_log_escape(path, sizeof(path), ln->path, ln->pathlen, true);
	/* The path only: MHD keeps the query string apart, and headers
	 * (Authorization) are never logged.  A token given in the query is
	 * marked, never written. */
	log_info("http: %s %s%s %u %" PRIu64 " %" PRId64 "ms%s", method, path,
		 ln->query_token ? "?access_token=[redacted]" : "", ln->status, ln->bytes, ln->ms,
		 ln->note);
}

static void
say_denied(const struct addrkey *k, uint64_t count)
{
	char a[ADDRKEY_TEXT];

	if (k != NULL)
		addrkey_text(k, a);
	log_info("http: %s: %" PRIu64 " more requests answered 401 in the last %d s"
		 " (one line per address a minute)", k != NULL ? a : "other addresses", count,
		 HTTP_LOG_INTERVAL_MS / 1000);
}

/* A 401: the address's first in an interval is written, the rest counted
 * and summed up once an interval. */
static void
log_denied(struct http_log *l, const struct http_logline *ln, int64_t now)
{
	struct addrmap_entry *e = ln->peer != NULL ? addrmap_add(&l->denied, ln->peer) : NULL;
	struct http_throttle t = { 0 }, *tp = &l->denied_more;
	uint64_t count = 0;
	enum http_throttle_say say;

	if (e != NULL) {
		t = (struct http_throttle){ e->since_ms, e->held, e->n != 0 };
		tp = &t;
	}
	say = http_throttle_hit(tp, now, &count);
	if (e != NULL) {
		e->since_ms = t.since_ms;
		e->held = t.held;
		e->n = t.active;
	}
	if (say == HTTP_THROTTLE_LINE)
		write_line(ln);
	else if (say == HTTP_THROTTLE_SUMMARY)
		say_denied(e != NULL ? &e->key : NULL, count);
}

void
http_log_access(struct http_log *l, const struct http_logline *ln, int64_t now)
{
	if (ln->status == 401)
		log_denied(l, ln, now);
	else
		write_line(ln);
}

void
http_log_tick(struct http_log *l, int64_t now)
{
	uint64_t count;

	if (now != INT64_MAX && now < l->next_tick_ms)
		return;
	l->next_tick_ms = now != INT64_MAX ? now + 1000 : INT64_MAX;
	/* Backwards: a quiet address is removed as it is met. */
	for (size_t i = l->denied.n; i-- > 0;) {
		struct addrmap_entry *e = &l->denied.e[i];
		struct http_throttle t = { e->since_ms, e->held, e->n != 0 };

		if (http_throttle_due(&t, now, &count))
			say_denied(&e->key, count);
		e->since_ms = t.since_ms;
		e->held = t.held;
		if (!t.active)
			addrmap_del(&l->denied, e);
	}
	if (http_throttle_due(&l->denied_more, now, &count))
		say_denied(NULL, count);
}
