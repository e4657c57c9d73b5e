/* http_log: what the HTTP server writes about its clients, made safe and
 * proportionate.  Every field a client chose (the method, the path, what
 * libmicrohttpd reports of a bad request) is escaped, so that no control
 * character or invalid UTF-8 reaches the log, and a line cannot be split or
 * forged.  Events a client can repeat at will (401 answers, connections
 * turned away) are throttled: a line for the first, then at most one line
 * per interval with the count. */
#ifndef T2I_HTTP_LOG_H
#define T2I_HTTP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addrmap.h"

#define HTTP_LOG_INTERVAL_MS 60000	/* of a throttled event's summaries */

/* src (srclen bytes, NULs included) into dst, always terminated: control
 * characters, backslash, bytes of invalid UTF-8 and the C1 controls as \xHH,
 * and spaces too when space is set (a field of the access line); cut with
 * "..." when dst is too small. */
void http_log_escape(char *dst, size_t dstlen, const char *src, size_t srclen, bool space);

/* One repeated event. */
struct http_throttle {
	int64_t since_ms;	/* the interval's start */
	uint64_t held;		/* events not written in it */
	bool active;
};

enum http_throttle_say {
	HTTP_THROTTLE_QUIET,	/* counted, nothing to write */
	HTTP_THROTTLE_LINE,	/* write the event's own line */
	HTTP_THROTTLE_SUMMARY,	/* write a summary of *count events */
};

enum http_throttle_say http_throttle_hit(struct http_throttle *t, int64_t now_ms,
					 uint64_t *count);
/* At the end of an interval: true with *count when a summary is due.  With
 * now_ms INT64_MAX (stopping), any held event is due. */
bool http_throttle_due(struct http_throttle *t, int64_t now_ms, uint64_t *count);

/* One line of the access log. */
struct http_logline {
	const char *method;
	const char *path;	/* decoded, as routed */
	size_t pathlen;		/* it may hold a NUL */
	bool query_token;	/* ?access_token= given: written [redacted] */
	unsigned status;
	uint64_t bytes;
	int64_t ms;
	const char *note;	/* " (timed out)", or "" */
	const struct addrkey *peer;
};

struct http_log {
	struct addrmap denied;		/* per address: its 401s' throttle */
	struct http_throttle denied_more; /* addresses beyond the map's room */
	int64_t next_tick_ms;
};

int http_log_init(struct http_log *l, size_t addresses);
void http_log_free(struct http_log *l);
/* Writes the line, or counts it (a 401 from an address that had one in
 * this interval). */
void http_log_access(struct http_log *l, const struct http_logline *ln, int64_t now_ms);
/* Summaries that are due (at most one scan a second); INT64_MAX: all. */
void http_log_tick(struct http_log *l, int64_t now_ms);

#endif
