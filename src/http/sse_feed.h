/* sse_feed: the latest events of a run as their streams send them ("id:
 * SEQ\ndata: EVENT\n\n", image URLs signed), kept while clients follow it.
 *
 * Every client of a run needs the same new events.  Each reading them from
 * the database, decoding the rows and formatting the text cost 500 clients
 * of one run 25 ms of the loop per event (measured with make bench), and
 * /healthz waited behind it.  The first client that reads an event from
 * the database leaves its text here, and the others copy it: the database
 * stays the only source (nothing reaches a client before it is committed
 * and read back), and a client that replays old events reads them as
 * before.  A window of SSE_FEED_SLOTS events per run; an event after a gap
 * starts it anew. */
#ifndef T2I_SSE_FEED_H
#define T2I_SSE_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSE_FEED_SLOTS 256

struct sse_feed;

/* The feeds of the runs followed; NULL head when none. */
struct sse_feeds {
	struct sse_feed *head;
};

/* The feed of run_id, made when missing, with one more follower; NULL out
 * of memory (the client then reads the database alone). */
struct sse_feed *sse_feed_follow(struct sse_feeds *fs, const char *run_id);
/* One follower fewer: the last takes the feed with it.  f may be NULL. */
void sse_feed_leave(struct sse_feeds *fs, struct sse_feed *f);
void sse_feed_free_all(struct sse_feeds *fs);

/* The text of event seq when the feed holds it (gen: the URL key's
 * generation it was signed with must still be the current), with whether
 * it is the run's `done`; else NULL. */
const char *sse_feed_get(const struct sse_feed *f, int64_t seq, unsigned gen, size_t *len,
			 bool *done);
/* Keeps the text of event seq (copied); -1 out of memory. */
int sse_feed_put(struct sse_feed *f, int64_t seq, unsigned gen, const char *text, size_t len,
		 bool done);

#endif
