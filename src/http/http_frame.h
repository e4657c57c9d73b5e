/* http_frame: the strict reading of a request's head, before any route.
 *
 * libmicrohttpd 0.9.75 (Debian 12) frames a body by the first Content-Length
 * even when there are two, or by Transfer-Encoding: chunked when
 * Content-Length is given too, and waits for ever on a transfer coding it
 * does not know; the bytes after such a body are then read as another
 * request (request smuggling, when a proxy in front frames it otherwise).
 * It decodes %00 and %2F in the path before the application sees it, and
 * cuts a header value or the target at a NUL byte.  None of that has an
 * option, so the head is checked here, and a request that fails is refused
 * with 400 and its connection closed before its body is read:
 *
 * - more than one Content-Length, one that is not digits, Content-Length
 *   with Transfer-Encoding, a transfer coding other than "chunked", or any
 *   Transfer-Encoding in HTTP/1.0;
 * - none or more than one Host in HTTP/1.1, or more than one in HTTP/1.0;
 * - a header name that is not an HTTP token, a control character in a value;
 * - a target with %00, an encoded "/" (%2F), a control character or a space,
 *   or neither "/PATH" nor "http(s)://AUTHORITY/PATH" (RFC 9112 3.2);
 * - a NUL anywhere in the head: MHD hides it, but reports how many bytes the
 *   head had, and a head longer than what MHD gave us (the request line, and
 *   each header as "Name: value", CRLF-ended) holds bytes MHD dropped.  A
 *   client that puts more than one space after a colon is refused too: no
 *   real client does, and the alternative is to let a NUL through.
 *
 * Plain strings in, a verdict out, so that the unit tests and fuzzers drive
 * it without MHD. */
#ifndef T2I_HTTP_FRAME_H
#define T2I_HTTP_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_FRAME_AUTHORITY 256	/* bytes of an absolute-form target's host[:port] */

/* What the request line's raw target says, read before MHD decodes it. */
struct http_target {
	size_t len;			/* bytes before the first NUL */
	bool bad;			/* %00, %2F, a control character or a space */
	bool absolute;			/* http://AUTHORITY/PATH */
	bool origin;			/* /PATH */
	char authority[HTTP_FRAME_AUTHORITY]; /* of an absolute target, lower case */
};

void http_frame_target(struct http_target *t, const char *raw);

/* The head, fed one header at a time. */
struct http_frame {
	unsigned content_length;	/* headers of each kind */
	unsigned transfer_encoding;
	unsigned host;
	bool cl_digits;			/* every Content-Length is digits */
	bool te_chunked;		/* the Transfer-Encoding is "chunked" */
	bool bad_name, bad_value;
	size_t parsed;			/* bytes of the headers as MHD gave them */
};

void http_frame_init(struct http_frame *f);
void http_frame_header(struct http_frame *f, const char *name, size_t namelen,
		       const char *value, size_t valuelen);
/* NULL when the head is sound, else why not (for the 400's message).
 * head_size is MHD's count of the head's bytes, 0 when unknown. */
const char *http_frame_verdict(const struct http_frame *f, const struct http_target *t,
			       const char *method, const char *version, size_t head_size);

/* The path of a target as MHD decoded it: after the authority of an
 * absolute-form one ("/" when it has none). */
const char *http_frame_path(const struct http_target *t, const char *url);

#endif
