/* sse: Server-Sent Events streams of runs.
 *
 * Events are read from the database (run_events), never buffered per
 * client: each client is a cursor (the next seq it needs) and a small text
 * buffer, so a slow client costs no memory and a stream resumes with
 * Last-Event-ID across restarts.  A client with nothing left to read while
 * its run is live is suspended (MHD_suspend_connection); every new event of
 * that run resumes it, and so does the 15 s keepalive. */
#ifndef T2I_SSE_H
#define T2I_SSE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include "mhd.h"

struct store;
struct run;
struct urlsig;
struct sse;
struct sse_client;

#define SSE_KEEPALIVE_MS 15000
#define SSE_RETRY_MS 3000	/* the retry: field each stream starts with */
#define SSE_BACKLOG_MAX 10000	/* live events a client may lag behind... */
#define SSE_BACKLOG_GRACE_MS 30000 /* ...for this long before it is dropped */
#define SSE_FETCH 64		/* rows per read of run_events */
#define SSE_BUF_SOFT 16384	/* refill stops adding events past this */
#define SSE_WAKE_BATCH 64	/* clients resumed per loop iteration at most */

/* True while the run with this id may still get events. */
typedef bool sse_live_fn(void *arg, const char *run_id);

/* urlsig signs the image URLs of the events sent (NULL: none). */
struct sse *sse_new(struct store *st, const struct urlsig *urlsig, sse_live_fn *live,
		    void *arg);
/* Detaches the clients still open (http_free ends them first). */
void sse_free(struct sse *s);

/* An events sink (events_add_sink): the run's suspended clients are to be
 * resumed. */
void sse_sink(void *arg, const struct run *r, json_t *ev, const char *line);
/* Several instances: another instance stored events of run_id (its
 * notification), or (NULL) look at every run. */
void sse_wake(struct sse *s, const char *run_id);
/* Several instances: suspended clients read again every poll_ms, the
 * backstop for notifications lost while the listening connection was. */
void sse_set_poll(struct sse *s, int poll_ms);
#define SSE_POLL_MS 1000
/* Resumes up to SSE_WAKE_BATCH clients that have something to send, and
 * sends keepalive comments every SSE_KEEPALIVE_MS; call each loop
 * iteration, before the HTTP server runs. */
void sse_tick(struct sse *s, int64_t now_ms);
/* Milliseconds until sse_tick has something to do (0: clients wait to be
 * resumed), -1 without clients. */
int sse_timeout_ms(struct sse *s, int64_t now_ms);

/* The response streaming run_id from the event after after_seq.  *link is
 * set to the client and cleared when the response is freed; NULL on error. */
struct MHD_Response *sse_response(struct sse *s, struct MHD_Connection *conn,
				  const char *run_id, const char *project_id, int64_t after_seq,
				  struct sse_client **link);
/* Body bytes sent so far, and the end of the link (the request is done). */
uint64_t sse_client_bytes(const struct sse_client *c);
void sse_client_unlink(struct sse_client *c);

/* Counts resumes: the HTTP loop must run MHD soon after one. */
uint64_t sse_resumes(const struct sse *s);
/* Ends every stream: each suspended client is resumed to finish. */
void sse_shutdown(struct sse *s);

#endif
