/* sse: Server-Sent Events streams of runs, read from run_events.
 *
 * A client's reader (MHD's content reader callback) hands MHD its pending
 * text; when that is used up it reads the next rows after its cursor.  With
 * no row left and the run live it suspends its connection and returns 0;
 * sse_sink() resumes it when the run emits an event.  MHD only processes a
 * resumed connection in its next MHD_run, so several events emitted in one
 * loop iteration cost one read per client. */
#include "sse.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "run.h"
#include "sse_feed.h"
#include "store.h"
#include "urlsig.h"

struct sse_client {
	struct sse_client *prev, *next;
	struct sse *s;			/* NULL once sse_free detached it */
	struct sse_client **link;	/* the request's pointer to us, or NULL */
	struct sse_feed *feed;		/* its run's latest events, or NULL */
	struct sse_client *wake_prev, *wake_next; /* queued to be resumed */
	bool wake_pending;
	struct MHD_Connection *conn;
	char run_id[37];
	char project_id[37];
	int64_t next_seq;		/* the seq the client needs next */
	int64_t base_seq;		/* the run's last seq when it connected */
	char *buf;			/* text not yet handed to MHD */
	size_t len, off, cap;
	uint64_t bytes;
	bool suspended;
	bool keepalive;			/* send a comment at the next chance */
	bool done_sent;			/* the `done` event is out: end after it */
	bool drop;			/* too far behind: close the connection */
	int64_t behind_since;		/* when it fell SSE_BACKLOG_MAX behind, or 0 */
	bool closing;			/* the server is stopping: end the stream */
};

/* An image_generated event signed for the clients reading it within the
 * same 16th of url_ttl: they all get the same text, so a thousand clients
 * cost one decode and signing of each event, not a thousand. */
struct signed_event {
	char run_id[37];
	int64_t seq;
	int64_t exp;		/* urlsig_expiry when it was signed */
	unsigned gen;		/* the key's */
	char *text;
};

#define SSE_SIGNED_SLOTS 64

struct sse {
	struct store *st;
	const struct urlsig *urlsig;
	struct signed_event signed_events[SSE_SIGNED_SLOTS];
	sse_live_fn *live;
	void *live_arg;
	struct sse_client *head;
	struct sse_feeds feeds;		/* the latest events of the runs followed */
	struct sse_client *wake_head, *wake_tail; /* suspended, to be resumed */
	unsigned nclients;
	int64_t next_keepalive;
	uint64_t resumes;
	int poll_ms;			/* several instances: look at the database this often */
	int64_t next_poll;
};


struct sse *
sse_new(struct store *st, const struct urlsig *urlsig, sse_live_fn *live, void *arg)
{
	struct sse *s = calloc(1, sizeof(*s));

	if (s != NULL) {
		s->st = st;
		s->urlsig = urlsig;
		s->live = live;
		s->live_arg = arg;
	}
	return s;
}

void
sse_free(struct sse *s)
{
	if (s == NULL)
		return;
	/* Responses still alive free their clients later; they must not
	 * reach back into us, nor into each other. */
	for (struct sse_client *c = s->head, *next; c != NULL; c = next) {
		next = c->next;
		c->s = NULL;
		c->feed = NULL;
		c->prev = c->next = NULL;
		c->wake_pending = false;
	}
	sse_feed_free_all(&s->feeds);
	for (int i = 0; i < SSE_SIGNED_SLOTS; i++)
		free(s->signed_events[i].text);
	free(s);
}

uint64_t
sse_resumes(const struct sse *s)
{
	return s->resumes;
}

static void
client_resume(struct sse_client *c)
{
	/* Resuming a connection that is not suspended is undefined in MHD:
	 * our flag is the only authority. */
	if (!c->suspended)
		return;
	c->suspended = false;
	if (c->s != NULL)
		c->s->resumes++;
	MHD_resume_connection(c->conn);
}

/* --- waking suspended clients, a batch per loop iteration --- */

/* Queued to be resumed: a resumed client costs MHD a read and a write, and
 * 500 of them at once held the loop for 10 ms and more per event. */
static void
wake_later(struct sse *s, struct sse_client *c)
{
	if (!c->suspended || c->wake_pending)
		return;
	c->wake_pending = true;
	c->wake_next = NULL;
	c->wake_prev = s->wake_tail;
	if (s->wake_tail != NULL)
		s->wake_tail->wake_next = c;
	else
		s->wake_head = c;
	s->wake_tail = c;
}

static void
wake_cancel(struct sse *s, struct sse_client *c)
{
	if (!c->wake_pending)
		return;
	if (c->wake_prev != NULL)
		c->wake_prev->wake_next = c->wake_next;
	else
		s->wake_head = c->wake_next;
	if (c->wake_next != NULL)
		c->wake_next->wake_prev = c->wake_prev;
	else
		s->wake_tail = c->wake_prev;
	c->wake_pending = false;
	c->wake_prev = c->wake_next = NULL;
}

/* --- the pending text --- */

static int
buf_append(struct sse_client *c, const char *text, size_t n)
{
	if (c->len + n > c->cap) {
		size_t cap = c->cap != 0 ? c->cap : 1024;
		char *p;

		while (cap < c->len + n)
			cap *= 2;
		if ((p = realloc(c->buf, cap)) == NULL)
			return -1;
		c->buf = p;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, text, n);
	c->len += n;
	return 0;
}

static int
buf_event(struct sse_client *c, int64_t seq, const char *body)
{
	char head[40];
	int n = snprintf(head, sizeof(head), "id: %" PRId64 "\ndata: ", seq);

	if (buf_append(c, head, (size_t)n) < 0 || buf_append(c, body, strlen(body)) < 0)
		return -1;
	return buf_append(c, "\n\n", 2);
}

/* A big buffer from a burst of long events is not kept for the life of
 * an idle stream. */
static void
buf_reset(struct sse_client *c)
{
	c->len = c->off = 0;
	if (c->cap > 4 * SSE_BUF_SOFT) {
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
}

/* A stored event as it goes out: its image URLs are signed now, so that a
 * replay long after the run still loads its images (urlsig.h).  The body
 * itself when it has no image, or when it cannot be signed (out of memory:
 * the event still goes, with file_path). */
static const char *
signed_body(struct sse *s, const char *run_id, int64_t seq, const char *type,
	    const char *body)
{
	int64_t now = (int64_t)time(NULL), exp;
	struct signed_event *e;
	uint64_t h = (uint64_t)seq * 0x9e3779b97f4a7c15u;
	char *text;

	if (s->urlsig == NULL || type == NULL || strcmp(type, "image_generated") != 0)
		return body;
	exp = urlsig_expiry(s->urlsig, now);
	for (const char *p = run_id; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3u;
	e = &s->signed_events[h % SSE_SIGNED_SLOTS];
	if (e->text != NULL && e->seq == seq && e->exp == exp && e->gen == s->urlsig->gen &&
	    strcmp(e->run_id, run_id) == 0)
		return e->text;
	if ((text = urlsig_event(s->urlsig, type, body, now)) == NULL)
		return body;
	free(e->text);
	*e = (struct signed_event){ .seq = seq, .exp = exp, .gen = s->urlsig->gen, .text = text };
	snprintf(e->run_id, sizeof(e->run_id), "%s", run_id);
	return text;
}

static unsigned
key_gen(const struct sse *s)
{
	return s->urlsig != NULL ? s->urlsig->gen : 0;
}

/* An event read from the database, for this client and, through the feed,
 * for the others of its run. */
static int
add_event(struct sse_client *c, int64_t seq, const char *type, const char *body)
{
	size_t start = c->len;

	body = signed_body(c->s, c->run_id, seq, type, body);
	/* The body is compact JSON: its newlines are escaped, so it is one
	 * data: line. */
	if (strchr(body, '\n') != NULL || buf_event(c, seq, body) < 0)
		return -1;
	/* Out of memory there costs the others a read of their own. */
	sse_feed_put(c->feed, seq, key_gen(c->s), c->buf + start, c->len - start,
		     type != NULL && strcmp(type, "done") == 0);
	return 0;
}

/* The events after the cursor that another client of the run has read
 * already.  Returns how many were added, -1 on error. */
static int
fill_from_feed(struct sse_client *c)
{
	const char *text;
	size_t len;
	bool done;
	int added = 0;

	while (c->len < SSE_BUF_SOFT &&
	       (text = sse_feed_get(c->feed, c->next_seq, key_gen(c->s), &len, &done)) != NULL) {
		if (buf_append(c, text, len) < 0)
			return -1;
		c->next_seq++;
		added++;
		if (done) {
			c->done_sent = true;
			break;
		}
	}
	return added;
}

/* Appends the rows after the cursor, up to about SSE_BUF_SOFT bytes.
 * Returns how many events were added, -1 on error. */
static int
fill_events(struct sse_client *c, struct store *st)
{
	json_t *rows = store_events_after(st, c->run_id, c->next_seq - 1, SSE_FETCH);
	size_t i;
	json_t *row;
	int added = 0;

	if (rows == NULL)
		return -1;
	json_array_foreach(rows, i, row) {
		int64_t seq = json_integer_value(json_object_get(row, "seq"));
		const char *type = json_string_value(json_object_get(row, "type"));
		const char *body = json_string_value(json_object_get(row, "body"));

		if (body == NULL || add_event(c, seq, type, body) < 0) {
			json_decref(rows);
			return -1;
		}
		c->next_seq = seq + 1;
		added++;
		if (type != NULL && strcmp(type, "done") == 0) {
			c->done_sent = true;
			break;
		}
		if (c->len >= SSE_BUF_SOFT)
			break;
	}
	json_decref(rows);
	return added;
}

enum refill { REFILL_DATA, REFILL_WAIT, REFILL_END, REFILL_ERROR };

static enum refill
refill(struct sse_client *c)
{
	struct sse *s = c->s;
	int n;

	buf_reset(c);
	if (c->done_sent || c->closing)
		return REFILL_END;
	if ((n = fill_from_feed(c)) == 0)
		n = fill_events(c, s->st);
	if (n < 0) {
		log_warnx("sse: run %s: cannot read events after %" PRId64, c->run_id,
			  c->next_seq - 1);
		return REFILL_ERROR;
	}
	if (n == 0 && c->keepalive && buf_append(c, ":\n\n", 3) < 0)
		return REFILL_ERROR;
	/* Any text sent is as good as a keepalive. */
	c->keepalive = false;
	if (c->len > 0)
		return REFILL_DATA;
	/* Nothing more in the database: wait while the run goes on; a run
	 * that is over without a `done` row (it should not happen) ends the
	 * stream rather than leave it hanging. */
	return s->live(s->live_arg, c->run_id) ? REFILL_WAIT : REFILL_END;
}

static ssize_t
client_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sse_client *c = cls;
	size_t n;

	(void)pos;
	if (c->drop || c->s == NULL)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (c->off == c->len) {
		switch (refill(c)) {
		case REFILL_DATA:
			break;
		case REFILL_WAIT:
			c->suspended = true;
			MHD_suspend_connection(c->conn);
			return 0;
		case REFILL_END:
			return MHD_CONTENT_READER_END_OF_STREAM;
		default:
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	n = c->len - c->off < max ? c->len - c->off : max;
	memcpy(out, c->buf + c->off, n);
	c->off += n;
	c->bytes += n;
	return (ssize_t)n;
}

static void
client_free(void *cls)
{
	struct sse_client *c = cls;
	struct sse *s = c->s;

	if (c->link != NULL)
		*c->link = NULL;
	if (s != NULL) {
		wake_cancel(s, c);
		sse_feed_leave(&s->feeds, c->feed);
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			s->head = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		s->nclients--;
	}
	free(c->buf);
	free(c);
}

uint64_t
sse_client_bytes(const struct sse_client *c)
{
	return c->bytes;
}

void
sse_client_unlink(struct sse_client *c)
{
	c->link = NULL;
}

/* The run's last seq now: lag is counted from here, so a client replaying
 * a long run from the start is not taken for a slow one. */
static int64_t
run_last_seq(struct store *st, const char *run_id)
{
	json_t *row = store_query_run(st, run_id);
	int64_t seq = json_integer_value(json_object_get(row, "last_seq"));

	json_decref(row);
	return seq;
}

static struct sse_client *
client_new(struct sse *s, struct MHD_Connection *conn, const char *run_id,
	   const char *project_id, int64_t after_seq)
{
	struct sse_client *c = calloc(1, sizeof(*c));
	char hello[192];
	int n;

	if (c == NULL)
		return NULL;
	c->s = s;
	c->conn = conn;
	snprintf(c->run_id, sizeof(c->run_id), "%s", run_id);
	snprintf(c->project_id, sizeof(c->project_id), "%s", project_id);
	c->next_seq = after_seq + 1;
	c->base_seq = run_last_seq(s->st, run_id);
	/* retry: an EventSource waits 3 s before it reconnects after the
	 * stream ends (a reconnect past `done` is then told 204, and stops).
	 * The first message has no id: a reconnecting EventSource then sends
	 * the seq of the last real event in Last-Event-ID. */
	n = snprintf(hello, sizeof(hello),
		     "retry: %d\n\ndata: {\"type\":\"connected\",\"project_id\":\"%s\","
		     "\"run_id\":\"%s\"}\n\n", SSE_RETRY_MS, c->project_id, c->run_id);
	if (buf_append(c, hello, (size_t)n) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

static bool
add_header(struct MHD_Response *resp, const char *name, const char *value)
{
	return MHD_add_response_header(resp, name, value) == MHD_YES;
}

struct MHD_Response *
sse_response(struct sse *s, struct MHD_Connection *conn, const char *run_id,
	     const char *project_id, int64_t after_seq, struct sse_client **link)
{
	struct sse_client *c = client_new(s, conn, run_id, project_id, after_seq);
	struct MHD_Response *resp;

	if (c == NULL)
		return NULL;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, client_read, c,
						 client_free);
	if (resp == NULL) {
		free(c->buf);
		free(c);
		return NULL;
	}
	if (s->head == NULL)
		s->next_keepalive = clock_now_ms() + SSE_KEEPALIVE_MS;
	c->next = s->head;
	if (s->head != NULL)
		s->head->prev = c;
	s->head = c;
	s->nclients++;
	c->feed = sse_feed_follow(&s->feeds, run_id);
	c->link = link;
	*link = c;
	/* X-Accel-Buffering: a proxy such as nginx would otherwise hold the
	 * events back in its buffer.  No "Connection: keep-alive": MHD owns
	 * that header and refuses the token (HTTP/1.1 is persistent anyway,
	 * and MHD answers an HTTP/1.0 client's keep-alive itself). */
	if (!add_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream") ||
	    !add_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") ||
	    !add_header(resp, "X-Accel-Buffering", "no")) {
		MHD_destroy_response(resp);	/* frees c through client_free */
		return NULL;
	}
	return resp;
}

/* Events it has not read among those emitted since it connected. */
static int64_t
client_lag(const struct sse_client *c, int64_t last_seq)
{
	int64_t read = c->next_seq - 1 > c->base_seq ? c->next_seq - 1 : c->base_seq;

	return last_seq - read;
}

/* A client that stays too far behind is dropped: it reconnects with
 * Last-Event-ID.  The grace period spares a fast client a burst (a run
 * served from the cache emits its events in one loop iteration, before any
 * reader could run); a client whose socket does not drain at all is closed
 * by MHD's connection timeout first. */
static void
check_lag(struct sse_client *c, int64_t last_seq)
{
	int64_t lag = client_lag(c, last_seq);
	int64_t now;

	if (c->drop || lag <= SSE_BACKLOG_MAX) {
		c->behind_since = 0;
		return;
	}
	now = clock_now_ms();
	if (c->behind_since == 0) {
		c->behind_since = now;
	} else if (now - c->behind_since > SSE_BACKLOG_GRACE_MS) {
		c->drop = true;
		log_warnx("sse: run %s: dropping a client %" PRId64 " events behind for %d s"
			  " (cap %d)", c->run_id, lag, SSE_BACKLOG_GRACE_MS / 1000, SSE_BACKLOG_MAX);
	}
}

void
sse_sink(void *arg, const struct run *r, json_t *ev, const char *line)
{
	struct sse *s = arg;

	(void)ev;
	(void)line;
	/* One list for every run: a strcmp per client and event is cheap
	 * next to the read each resumed client then makes. */
	for (struct sse_client *c = s->head; c != NULL; c = c->next) {
		if (strcmp(c->run_id, r->id) != 0)
			continue;
		check_lag(c, r->seq);
		wake_later(s, c);
	}
}

/* Several instances: every suspended client reads again now and then, in
 * case a notification was lost with the listening connection. */
static void
poll_clients(struct sse *s, int64_t now)
{
	if (s->poll_ms <= 0 || now < s->next_poll)
		return;
	s->next_poll = now + s->poll_ms;
	for (struct sse_client *c = s->head; c != NULL; c = c->next)
		wake_later(s, c);
}

void
sse_tick(struct sse *s, int64_t now)
{
	if (s->head != NULL)
		poll_clients(s, now);
	if (s->head != NULL && now >= s->next_keepalive) {
		s->next_keepalive = now + SSE_KEEPALIVE_MS;
		/* A client busy writing sends its comment when its text runs
		 * out; any event it sends first does as well. */
		for (struct sse_client *c = s->head; c != NULL; c = c->next) {
			c->keepalive = true;
			wake_later(s, c);
		}
	}
	for (int i = 0; i < SSE_WAKE_BATCH && s->wake_head != NULL; i++) {
		struct sse_client *c = s->wake_head;

		wake_cancel(s, c);
		client_resume(c);
	}
}

int
sse_timeout_ms(struct sse *s, int64_t now)
{
	int64_t t;

	if (s->head == NULL)
		return -1;
	if (s->wake_head != NULL)
		return 0;	/* the next batch */
	t = s->next_keepalive - now;
	if (s->poll_ms > 0 && s->next_poll - now < t)
		t = s->next_poll - now;
	return t <= 0 ? 0 : t > INT32_MAX ? INT32_MAX : (int)t;
}

void
sse_shutdown(struct sse *s)
{
	for (struct sse_client *c = s->head; c != NULL; c = c->next) {
		c->closing = true;
		wake_cancel(s, c);
		client_resume(c);
	}
}

void
sse_wake(struct sse *s, const char *run_id)
{
	for (struct sse_client *c = s->head; c != NULL; c = c->next)
		if (run_id == NULL || strcmp(c->run_id, run_id) == 0)
			wake_later(s, c);
}

void
sse_set_poll(struct sse *s, int poll_ms)
{
	s->poll_ms = poll_ms;
}
