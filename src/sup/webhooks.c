/* webhooks: queueing, claiming, signing and recording webhook deliveries
 * (see webhooks.h). */
#include "webhooks.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "clock.h"
#include "config.h"
#include "hash.h"
#include "hooksend.h"
#include "log.h"
#include "metrics.h"
#include "project.h"
#include "run.h"
#include "store.h"

#define WEBHOOKS_CLAIM_BATCH 64		/* due rows looked at per claim */
#define WEBHOOKS_LEASE_MARGIN_MS 5000	/* past the attempt's timeout */
#define WEBHOOKS_BACKOFF_MS 1000
#define WEBHOOKS_BACKOFF_MAX_MS (5 * 60 * 1000)
#define WEBHOOKS_CONNECT_TIMEOUT 10.0	/* seconds, or the timeout if shorter */
#define WEBHOOKS_RESTART_MAX_MS 60000

/* A delivery claimed from the outbox: staged until the claim is committed,
 * then in the sender until it answers. */
struct flight {
	bool used;
	bool staged;
	char webhook_id[48];
	char *endpoint;
	char *body;		/* staged only */
	size_t body_len;
	int attempts;		/* before this one */
	int64_t queued_ms;
};

struct webhooks {
	const struct config *cfg;
	struct store *st;
	struct metrics *m;
	struct hooksend snd;
	int64_t restart_at;	/* monotonic: the sender may be started again */
	int crashes;		/* in a row, for the restart delay */
	struct flight flight[WEBHOOKS_INFLIGHT_MAX];
	int nflight;
	int64_t next_due_ms;	/* wall: the earliest pending row; 0 look now */
	char only_run[37];
	int64_t drain_end;	/* monotonic, 0 until the run has ended */
};

static void
ensure_sender(struct webhooks *wh, int64_t now)
{
	const char *conf = wh->cfg->path[0] == '/' ? wh->cfg->path : NULL;

	if (wh->snd.pid > 0 || wh->cfg->nwebhooks == 0 || now < wh->restart_at)
		return;
	if (hooksend_start(&wh->snd, conf) < 0) {
		log_warn("cannot start the webhook sender");
		wh->restart_at = now + WEBHOOKS_RESTART_MAX_MS;
		return;
	}
	log_debug("webhook sender started, pid %ld", (long)wh->snd.pid);
	wh->next_due_ms = 0;	/* what waited for it */
}

struct webhooks *
webhooks_new(const struct config *cfg, struct store *st)
{
	struct webhooks *wh = calloc(1, sizeof(*wh));

	if (wh == NULL)
		return NULL;
	wh->cfg = cfg;
	wh->st = st;
	wh->snd.fd = -1;
	/* Now: its exec and libcurl's loading (~9 ms) overlap the planning. */
	ensure_sender(wh, clock_now_ms());
	return wh;
}

void
webhooks_reconfigure(struct webhooks *wh, const struct config *cfg)
{
	wh->cfg = cfg;
	wh->next_due_ms = 0;
}

void
webhooks_set_metrics(struct webhooks *wh, struct metrics *m)
{
	wh->m = m;
}

void
webhooks_only_run(struct webhooks *wh, const char *run_id)
{
	snprintf(wh->only_run, sizeof(wh->only_run), "%s", run_id);
}

void
webhooks_sink(void *arg, const struct run *r, json_t *ev, const char *line)
{
	struct webhooks *wh = arg;
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_int_t seq = json_integer_value(json_object_get(ev, "seq"));
	char id[48], uuid[37];

	(void)line;
	for (size_t i = 0; type != NULL && i < wh->cfg->nwebhooks; i++) {
		const struct config_webhook *w = &wh->cfg->webhooks[i];

		if (!config_webhook_wants(w, type))
			continue;
		project_uuid(uuid);
		snprintf(id, sizeof(id), "msg_%s", uuid);
		if (store_webhook_queue(wh->st, id, w->url, r->id, seq, clock_wall_ms()) < 0)
			log_errx("run %s: cannot queue event %lld for webhook %s: %s", r->id,
				 (long long)seq, w->url, store_errmsg(wh->st));
		wh->next_due_ms = 0;
	}
}

static void
flight_free(struct webhooks *wh, struct flight *f)
{
	free(f->endpoint);
	free(f->body);
	memset(f, 0, sizeof(*f));
	wh->nflight--;
}

/* ---- recording answers ---- */

/* About 1 s after the first failure, doubling, at most 5 minutes, with
 * jitter so that the deliveries that failed together do not retry
 * together. */
static int64_t
backoff_ms(int attempts)
{
	double d = WEBHOOKS_BACKOFF_MS;

	for (int i = 1; i < attempts && d < WEBHOOKS_BACKOFF_MAX_MS; i++)
		d *= 2;
	d *= 0.75 + 0.5 * drand48();
	return d > WEBHOOKS_BACKOFF_MAX_MS ? WEBHOOKS_BACKOFF_MAX_MS : (int64_t)d;
}

static void
gave_up(struct webhooks *wh, const char *id, const char *url, int attempts, long status,
	const char *error, int64_t wall)
{
	if (store_webhook_failed(wh->st, id, status, error, wall, -1) < 0)
		return;
	metrics_webhook_gave_up(wh->m);
	log_errx("webhook %s to %s: gave up after %d attempts: %s", id, url, attempts, error);
}

static void
failed(struct webhooks *wh, const struct flight *f, long status, const char *kind,
       const char *error, int64_t wall)
{
	int attempts = f->attempts + 1;
	int64_t deadline = f->queued_ms + (int64_t)(wh->cfg->webhook_retry_for * 1000);
	int64_t next = wall + backoff_ms(attempts);

	metrics_webhook_failed(wh->m, kind);
	if (wall >= deadline) {
		gave_up(wh, f->webhook_id, f->endpoint, attempts, status, error, wall);
		return;
	}
	if (next > deadline)
		next = deadline;	/* one last attempt when the time is up */
	if (store_webhook_failed(wh->st, f->webhook_id, status, error, wall, next) < 0)
		return;
	log_msg(attempts == 1 ? LOG_LVL_WARNING : LOG_LVL_DEBUG,
		"webhook %s to %s: attempt %d failed: %s; next in %.1f s", f->webhook_id,
		f->endpoint, attempts, error, (double)(next - wall) / 1000);
}

static void
answered(struct webhooks *wh, const struct hooksend_answer *a)
{
	struct flight *f = a->tag < WEBHOOKS_INFLIGHT_MAX ? &wh->flight[a->tag] : NULL;
	int64_t wall = clock_wall_ms();

	if (f == NULL || !f->used || f->staged) {
		log_errx("webhook sender answered for no delivery (%llu)", a->tag);
		return;
	}
	if (a->kind[0] != '\0') {
		failed(wh, f, a->status, a->kind, a->error, wall);
	} else if (store_webhook_delivered(wh->st, f->webhook_id, a->status, wall) == 0) {
		metrics_webhook_delivered(wh->m);
		if (f->attempts > 0)
			log_info("webhook %s to %s: delivered at attempt %d", f->webhook_id,
				 f->endpoint, f->attempts + 1);
	}
	flight_free(wh, f);
	wh->crashes = 0;
	wh->next_due_ms = 0;	/* room for another */
}

/* The sender died or talked nonsense: what it held failed, and it is
 * started again after a delay that grows while it keeps dying. */
static void
sender_lost(struct webhooks *wh, const char *why, int64_t now)
{
	int status, delay = WEBHOOKS_BACKOFF_MS << (wh->crashes < 6 ? wh->crashes : 6);
	int64_t wall = clock_wall_ms();

	hooksend_stop(&wh->snd, &status);
	if (delay > WEBHOOKS_RESTART_MAX_MS)
		delay = WEBHOOKS_RESTART_MAX_MS;
	log_errx("webhook sender %s (%s %d); restarting it in %d ms", why,
		 WIFSIGNALED(status) ? "signal" : "status",
		 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), delay);
	for (int i = 0; i < WEBHOOKS_INFLIGHT_MAX; i++) {
		struct flight *f = &wh->flight[i];

		if (!f->used)
			continue;
		if (!f->staged)
			failed(wh, f, 0, "sender", "the webhook sender exited during the delivery",
			       wall);
		flight_free(wh, f);
	}
	wh->crashes++;
	wh->restart_at = now + delay;
	wh->next_due_ms = 0;
}

void
webhooks_ready(struct webhooks *wh, short revents, int64_t now)
{
	struct hooksend_answer a;
	int rc, k;

	if (wh->snd.pid <= 0)
		return;
	if (revents & POLLOUT)
		(void)hooksend_flush(&wh->snd);	/* a dead sender shows as EOF */
	if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0)
		return;
	rc = hooksend_read(&wh->snd);
	while ((k = hooksend_next(&wh->snd, &a)) == 1)
		answered(wh, &a);
	if (k < 0)
		sender_lost(wh, "sent a line that does not decode", now);
	else if (rc == IPC_EOF || rc == IPC_ERROR)
		sender_lost(wh, "exited", now);
}

/* ---- claiming and sending ---- */

static bool
in_flight(const struct webhooks *wh, const char *id, const char *endpoint, int *to_endpoint)
{
	*to_endpoint = 0;
	for (int i = 0; i < WEBHOOKS_INFLIGHT_MAX; i++) {
		const struct flight *f = &wh->flight[i];

		if (!f->used)
			continue;
		if (strcmp(f->webhook_id, id) == 0)
			return true;
		*to_endpoint += strcmp(f->endpoint, endpoint) == 0;
	}
	return false;
}

/* Takes the row's strings into a free flight. */
static void
stage(struct webhooks *wh, struct store_webhook_row *row)
{
	struct flight *f = wh->flight;

	while (f->used)
		f++;
	*f = (struct flight){ .used = true, .staged = true, .endpoint = row->endpoint,
			      .body = row->body, .body_len = row->body_len,
			      .attempts = row->attempts, .queued_ms = row->queued_ms };
	memcpy(f->webhook_id, row->webhook_id, sizeof(f->webhook_id));
	row->endpoint = row->body = NULL;
	wh->nflight++;
}

/* One due row: given up when `serve` no longer has its endpoint (the
 * configuration is the list of where events go), claimed when the sender
 * is running and has room for it. */
static void
claim_row(struct webhooks *wh, struct store_webhook_row *row, int64_t wall)
{
	const struct config_webhook *w = config_webhook(wh->cfg, row->endpoint);
	int to_endpoint;

	if (in_flight(wh, row->webhook_id, row->endpoint, &to_endpoint))
		return;
	if (w == NULL) {
		if (wh->only_run[0] == '\0')
			gave_up(wh, row->webhook_id, row->endpoint, row->attempts, 0,
				"the endpoint is no longer configured", wall);
		return;
	}
	if (wh->snd.pid <= 0 || wh->nflight >= WEBHOOKS_INFLIGHT_MAX ||
	    to_endpoint >= WEBHOOKS_PER_ENDPOINT)
		return;
	if (store_webhook_lease(wh->st, row->webhook_id,
				wall + (int64_t)(w->timeout * 1000) + WEBHOOKS_LEASE_MARGIN_MS) == 0)
		stage(wh, row);
}

void
webhooks_claim(struct webhooks *wh, int64_t now)
{
	struct store_webhook_row rows[WEBHOOKS_CLAIM_BATCH];
	int64_t wall = clock_wall_ms();
	int n;

	ensure_sender(wh, now);
	/* Without a sender only `serve`'s give-ups can be done. */
	if (wall < wh->next_due_ms || (wh->snd.pid <= 0 && wh->only_run[0] != '\0'))
		return;
	if (wh->nflight >= WEBHOOKS_INFLIGHT_MAX) {
		wh->next_due_ms = INT64_MAX;	/* until an answer makes room */
		return;
	}
	n = store_webhook_due(wh->st, wall, wh->only_run[0] != '\0' ? wh->only_run : NULL, rows,
			      WEBHOOKS_CLAIM_BATCH);
	for (int i = 0; i < n; i++) {
		claim_row(wh, &rows[i], wall);
		store_webhook_row_free(&rows[i]);
	}
	/* Rows due now but left for want of room wait for an answer. */
	wh->next_due_ms = store_webhook_next_due(wh->st, wall);
}

/* Signed now, as this attempt's timestamp says.  A request that cannot be
 * queued (out of memory) is dropped: its lease makes it due again. */
static void
send_flight(struct webhooks *wh, int tag, struct flight *f)
{
	const struct config_webhook *w = config_webhook(wh->cfg, f->endpoint);
	char ts[24], sig[HASH_WEBHOOK_SIG_LEN + 1], h_id[64], h_ts[48], h_sig[80];
	struct hooksend_request rq = { .tag = (unsigned long long)tag, .url = f->endpoint,
				       .body = f->body, .body_len = f->body_len,
				       .headers = { h_id, h_ts, h_sig, "Content-Type: application/json" },
				       .nheaders = 4 };

	if (w == NULL) {	/* claimed in this iteration: cannot happen */
		flight_free(wh, f);
		return;
	}
	snprintf(ts, sizeof(ts), "%lld", (long long)(clock_wall_ms() / 1000));
	hash_webhook_signature(w->key, w->key_len, f->webhook_id, ts, f->body, f->body_len, sig);
	snprintf(h_id, sizeof(h_id), "webhook-id: %s", f->webhook_id);
	snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %s", ts);
	snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", sig);
	rq.timeout = w->timeout;
	rq.connect_timeout = w->timeout < WEBHOOKS_CONNECT_TIMEOUT ? w->timeout
								  : WEBHOOKS_CONNECT_TIMEOUT;
	if (hooksend_queue(&wh->snd, &rq) < 0) {
		log_errx("webhook %s: cannot queue it for the sender", f->webhook_id);
		flight_free(wh, f);
		return;
	}
	free(f->body);
	f->body = NULL;
	f->staged = false;
}

void
webhooks_committed(struct webhooks *wh, bool ok)
{
	bool any = false;

	for (int i = 0; i < WEBHOOKS_INFLIGHT_MAX; i++) {
		struct flight *f = &wh->flight[i];

		if (!f->used || !f->staged)
			continue;
		if (ok && wh->snd.pid > 0) {
			send_flight(wh, i, f);
			any = true;
		} else {
			flight_free(wh, f);	/* the lease went with the rollback */
		}
	}
	if (any)
		(void)hooksend_flush(&wh->snd);
}

/* ---- the loop's view ---- */

int
webhooks_poll_fd(const struct webhooks *wh, short *events)
{
	if (wh == NULL || wh->snd.pid <= 0)
		return -1;
	*events = POLLIN | (ipc_pending(&wh->snd.wr) ? POLLOUT : 0);
	return wh->snd.fd;
}

int64_t
webhooks_wake_at(const struct webhooks *wh, int64_t now)
{
	int64_t at = INT64_MAX, wall;

	if (wh == NULL)
		return INT64_MAX;
	if (wh->snd.pid <= 0 && wh->cfg->nwebhooks > 0)
		at = wh->restart_at;
	if (wh->snd.pid > 0 && wh->next_due_ms != INT64_MAX) {
		wall = clock_wall_ms();
		at = wh->next_due_ms <= wall ? now : now + (wh->next_due_ms - wall);
	}
	if (wh->drain_end > 0 && wh->drain_end < at)
		at = wh->drain_end;
	return at;
}

bool
webhooks_settled(struct webhooks *wh, int64_t now)
{
	long left;

	if (wh == NULL || wh->only_run[0] == '\0' || wh->cfg->nwebhooks == 0)
		return true;
	if (wh->drain_end == 0)
		wh->drain_end = now + WEBHOOKS_DRAIN_MS;
	if (now < wh->drain_end &&
	    (wh->nflight > 0 || store_webhook_pending(wh->st, wh->only_run,
						      clock_wall_ms() + (wh->drain_end - now)) > 0))
		return false;
	left = store_webhook_pending(wh->st, wh->only_run, INT64_MAX);
	if (left > 0)
		log_warnx("%ld webhook deliveries of run %s stay queued: `serve` sends them", left,
			  wh->only_run);
	return true;
}

void
webhooks_free(struct webhooks *wh)
{
	int64_t wall = clock_wall_ms();
	int status;

	if (wh == NULL)
		return;
	if (wh->nflight > 0 && store_begin(wh->st) == 0) {
		for (int i = 0; i < WEBHOOKS_INFLIGHT_MAX; i++) {
			struct flight *f = &wh->flight[i];

			if (f->used && !f->staged)
				store_webhook_lease(wh->st, f->webhook_id, wall);
			if (f->used)
				flight_free(wh, f);
		}
		store_commit(wh->st);
	}
	if (wh->snd.pid > 0)
		hooksend_stop(&wh->snd, &status);
	free(wh);
}
