/* sse_feed: the latest events of a followed run, shared by its streams
 * (see sse_feed.h). */
#include "sse_feed.h"

#include <stdlib.h>
#include <string.h>

struct slot {
	char *text;
	size_t len;
	bool done;
};

struct sse_feed {
	struct sse_feed *next;
	char run_id[37];
	unsigned followers;
	unsigned gen;			/* the URL key's, when the texts were signed */
	int64_t first, end;		/* the seqs held: [first, end) */
	struct slot slots[SSE_FEED_SLOTS];	/* seq at seq % SSE_FEED_SLOTS */
};

struct sse_feed *
sse_feed_follow(struct sse_feeds *fs, const char *run_id)
{
	struct sse_feed *f;

	for (f = fs->head; f != NULL; f = f->next)
		if (strcmp(f->run_id, run_id) == 0)
			break;
	if (f == NULL) {
		if ((f = calloc(1, sizeof(*f))) == NULL)
			return NULL;
		memcpy(f->run_id, run_id, strnlen(run_id, sizeof(f->run_id) - 1));
		f->next = fs->head;
		fs->head = f;
	}
	f->followers++;
	return f;
}

static void
feed_clear(struct sse_feed *f)
{
	for (int i = 0; i < SSE_FEED_SLOTS; i++) {
		free(f->slots[i].text);
		f->slots[i].text = NULL;
	}
	f->first = f->end = 0;
}

void
sse_feed_leave(struct sse_feeds *fs, struct sse_feed *f)
{
	struct sse_feed **p;

	if (f == NULL || --f->followers > 0)
		return;
	for (p = &fs->head; *p != NULL && *p != f; p = &(*p)->next)
		;
	if (*p != NULL)
		*p = f->next;
	feed_clear(f);
	free(f);
}

void
sse_feed_free_all(struct sse_feeds *fs)
{
	while (fs->head != NULL) {
		struct sse_feed *f = fs->head;

		fs->head = f->next;
		feed_clear(f);
		free(f);
	}
}

const char *
sse_feed_get(const struct sse_feed *f, int64_t seq, unsigned gen, size_t *len, bool *done)
{
	const struct slot *s;

	if (f == NULL || seq < f->first || seq >= f->end || gen != f->gen)
		return NULL;
	s = &f->slots[seq % SSE_FEED_SLOTS];
	*len = s->len;
	*done = s->done;
	return s->text;
}

int
sse_feed_put(struct sse_feed *f, int64_t seq, unsigned gen, const char *text, size_t len,
	     bool done)
{
	struct slot *s;
	char *copy;

	if (f == NULL || seq < 1)
		return 0;
	/* Held already, or older than the window: a replay is no live
	 * client's need, and must not push the live events out. */
	if (gen == f->gen && f->end != 0 && seq < f->end)
		return 0;
	if (gen != f->gen || f->end == 0 || seq > f->end) {
		feed_clear(f);	/* a gap, or another key: anew from seq */
		f->gen = gen;
		f->first = f->end = seq;
	}
	if ((copy = malloc(len + 1)) == NULL)
		return -1;
	memcpy(copy, text, len);
	copy[len] = '\0';
	s = &f->slots[seq % SSE_FEED_SLOTS];
	free(s->text);
	s->text = copy;
	s->len = len;
	s->done = done;
	f->end = seq + 1;
	if (f->end - f->first > SSE_FEED_SLOTS)
		f->first = f->end - SSE_FEED_SLOTS;
	return 0;
}
