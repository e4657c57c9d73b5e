/* http_page: a page of a long list answered in pieces (see http_page.h). */
#include "http_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"

#define BLOCK 32768	/* bytes MHD asks of the reader at most */

struct page {
	struct http_page p;
	char after[HTTP_PAGE_CURSOR_MAX];	/* where the next piece starts */
	int left;				/* items still to give */
	bool more;				/* the list goes on after what was read */
	bool started;				/* an item went out: the next has a comma */
	bool ended;				/* the tail went out */
	char *text;				/* not yet handed to MHD */
	size_t len, off, cap;
	uint64_t *bytes;			/* the request's, for the access log */
};

static int
put(struct page *pg, const char *s, size_t n)
{
	if (pg->len + n + 1 > pg->cap) {
		size_t cap = pg->cap != 0 ? pg->cap : 4096;
		char *t;

		while (cap < pg->len + n + 1)
			cap *= 2;
		if ((t = realloc(pg->text, cap)) == NULL)
			return -1;
		pg->text = t;
		pg->cap = cap;
	}
	memcpy(pg->text + pg->len, s, n);
	pg->len += n;
	pg->text[pg->len] = '\0';
	return 0;
}

/* The next piece of the list into the text; -1 when it cannot be read. */
static int
piece(struct page *pg, const char *after, bool *bad_cursor)
{
	char next[HTTP_PAGE_CURSOR_MAX];
	int n = pg->left < HTTP_PAGE_PIECE ? pg->left : HTTP_PAGE_PIECE;
	json_t *items = pg->p.fetch(pg->p.arg, after, n, next, bad_cursor), *item;
	size_t i;
	int rc = 0;

	if (items == NULL)
		return -1;
	json_array_foreach(items, i, item) {
		char *t;

		if (pg->p.decorate != NULL)
			pg->p.decorate(pg->p.arg, item);
		if ((t = jsontext_dumps(item, JSON_COMPACT)) == NULL ||
		    (pg->started && put(pg, ",", 1) < 0) || put(pg, t, strlen(t)) < 0)
			rc = -1;
		free(t);
		pg->started = true;
	}
	pg->left -= (int)json_array_size(items);
	json_decref(items);
	pg->more = next[0] != '\0';
	snprintf(pg->after, sizeof(pg->after), "%s", next);
	return rc;
}

/* The end: "],"next":CURSOR}" (null when the list ends here). */
static int
tail(struct page *pg)
{
	pg->ended = true;
	if (put(pg, "],\"next\":", 9) < 0)
		return -1;
	if (!pg->more)
		return put(pg, "null}\n", 6);
	if (put(pg, "\"", 1) < 0 || put(pg, pg->after, strlen(pg->after)) < 0)
		return -1;
	return put(pg, "\"}\n", 3);
}

static ssize_t
page_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct page *pg = cls;
	bool bad;
	size_t n;

	(void)pos;
	while (pg->off == pg->len) {
		pg->off = pg->len = 0;
		if (pg->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (pg->left > 0 && pg->more ? piece(pg, pg->after, &bad) < 0 : tail(pg) < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	n = pg->len - pg->off < max ? pg->len - pg->off : max;
	memcpy(out, pg->text + pg->off, n);
	pg->off += n;
	*pg->bytes += n;	/* MHD reads only while the request lives */
	return (ssize_t)n;
}

static void
page_free(void *cls)
{
	struct page *pg = cls;

	if (pg->p.free != NULL)
		pg->p.free(pg->p.arg);
	free(pg->text);
	free(pg);
}

/* head's members and the list's opening: {"a":1,"list":[ */
static int
opening(struct page *pg, json_t *head, const char *list)
{
	char *t = jsontext_dumps(head, JSON_COMPACT);
	size_t n = t != NULL ? strlen(t) : 0;
	int rc;

	if (n < 2) {
		free(t);
		return -1;
	}
	rc = put(pg, t, n - 1);	/* without its closing brace */
	free(t);
	if (rc < 0 || (n > 2 && put(pg, ",", 1) < 0) || put(pg, "\"", 1) < 0 ||
	    put(pg, list, strlen(list)) < 0)
		return -1;
	return put(pg, "\":[", 3);
}

/* The whole answer fits in the first piece: sent with its length. */
static struct MHD_Response *
page_response(struct page *pg)
{
	struct MHD_Response *resp;

	if (pg->ended) {
		resp = MHD_create_response_from_buffer(pg->len, pg->text, MHD_RESPMEM_MUST_FREE);
		if (resp != NULL)
			pg->text = NULL;
		page_free(pg);
	} else if ((resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK, page_read,
							     pg, page_free)) == NULL) {
		page_free(pg);
	}
	if (resp != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return resp;
}

enum MHD_Result
http_reply_page(struct http_req *rq, json_t *head, const char *list, const char *after,
		int limit, const struct http_page *p)
{
	struct page *pg = calloc(1, sizeof(*pg));
	struct MHD_Response *resp;
	bool bad = false, whole;
	size_t len;
	int rc = -1;

	if (pg == NULL) {
		if (p->free != NULL)
			p->free(p->arg);
		json_decref(head);
		return http_reply(rq, 500, NULL, 0);
	}
	pg->p = *p;
	pg->left = limit;
	if (head != NULL && opening(pg, head, list) == 0 && piece(pg, after, &bad) == 0)
		rc = pg->left > 0 && pg->more ? 0 : tail(pg);
	json_decref(head);
	if (rc < 0) {
		page_free(pg);
		if (bad)
			return http_reply_error(rq, MHD_HTTP_BAD_REQUEST,
						"after: not a cursor of this list (pass the \"next\""
						" of the previous page)");
		return http_reply_error(rq, 500, "internal error: cannot read the database");
	}
	whole = pg->ended;
	len = pg->len;
	pg->bytes = &rq->bytes;
	resp = page_response(pg);
	rc = http_reply(rq, MHD_HTTP_OK, resp, whole ? len : 0);
	return rc;
}
