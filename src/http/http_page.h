/* http_page: a page of a long list answered in pieces.
 *
 * The answer is a JSON object: the members of head, then the list under
 * its name, then "next" (the cursor of the following page, or null):
 * {"project_id": "...", "images": [...], "next": "..."}.  It goes out
 * through a libmicrohttpd callback response, chunked: the first piece is
 * read in the handler (so that a bad cursor is a 400 and a failed read a
 * 500), each later one when MHD has sent the previous, so that no request
 * holds the loop for more than one piece of HTTP_PAGE_PIECE items, however
 * large its page.  A read that fails after the first piece ends the
 * answer short (the connection closes without the final chunk). */
#ifndef T2I_HTTP_PAGE_H
#define T2I_HTTP_PAGE_H

#include <stdbool.h>

#include <jansson.h>
#include "http.h"

#define HTTP_PAGE_PIECE 20		/* items read and written at a time */
#define HTTP_PAGE_CURSOR_MAX 128	/* bytes of a cursor, NUL included */

struct http_page {
	/* At most limit items after the cursor after (NULL: the first), with
	 * next the cursor of the last when more follow, else ""; NULL on
	 * error, *bad_cursor set when after is no cursor of the list. */
	json_t *(*fetch)(void *arg, const char *after, int limit,
			 char next[HTTP_PAGE_CURSOR_MAX], bool *bad_cursor);
	/* Called on each item before it goes out (NULL: none). */
	void (*decorate)(void *arg, json_t *item);
	void *arg;
	void (*free)(void *arg);	/* the end of arg (NULL: none) */
};

/* Answers 200 with head's members (its reference is taken), the list of
 * at most limit items after the cursor after under list, and next.  p is
 * copied; p->arg is the answer's from then on, even on error. */
enum MHD_Result http_reply_page(struct http_req *rq, json_t *head, const char *list,
				const char *after, int limit, const struct http_page *p);

#endif
