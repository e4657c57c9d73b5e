/* webhooks: the supervisor's side of webhook delivery, over the outbox in
 * the store and the sender process (hooksend.h).
 *
 * An event of a subscribed type is queued, one outbox row per endpoint, by
 * webhooks_sink(), an events sink: it runs inside events_emit(), in the
 * transaction that appends the event.  The loop claims due rows in its
 * first transaction (webhooks_claim: each claimed row is leased for its
 * timeout and a margin, so that no other process on the database sends it
 * too and a crash mid-delivery makes it due again), and sends them only
 * once that transaction is committed (webhooks_committed): a receiver never
 * hears of an event that a crash could take back.  Answers come back on the
 * sender's socket, polled by the loop like any fd, and are recorded in the
 * loop's second transaction: 2xx is delivered; anything else is retried
 * after about 1 s, doubling, at most 5 minutes apart, with jitter, until
 * webhook_retry_for has passed since the event; then it is given up.
 *
 * `serve` delivers the whole outbox.  `run` delivers its own run's rows
 * (webhooks_only_run), and once its run has ended waits up to
 * WEBHOOKS_DRAIN_MS for those due in that time (webhooks_settled);
 * whatever is left stays queued for the next `serve`. */
#ifndef T2I_WEBHOOKS_H
#define T2I_WEBHOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct config;
struct metrics;
struct run;
struct store;
struct webhooks;

#define WEBHOOKS_INFLIGHT_MAX 16	/* deliveries in the sender at once */
#define WEBHOOKS_PER_ENDPOINT 4		/* of those, to one endpoint */
#define WEBHOOKS_DRAIN_MS 10000		/* `run`, after its run ended */

/* Starts the sender when cfg has webhooks. */
struct webhooks *webhooks_new(const struct config *cfg, struct store *st);
/* Releases the leases of deliveries in flight (the next start sends them
 * at once) and stops the sender. */
void webhooks_free(struct webhooks *wh);
void webhooks_reconfigure(struct webhooks *wh, const struct config *cfg);
void webhooks_set_metrics(struct webhooks *wh, struct metrics *m);
/* The command line: only this run's deliveries, waited for at the end. */
void webhooks_only_run(struct webhooks *wh, const char *run_id);

/* An events sink (see events.h); arg is the struct webhooks. */
void webhooks_sink(void *arg, const struct run *r, json_t *ev, const char *line);

/* In the loop's first transaction: (re)starts the sender and claims due
 * rows.  now is monotonic, as everywhere in the loop. */
void webhooks_claim(struct webhooks *wh, int64_t now);
/* After that transaction: sends what was claimed, or forgets it when the
 * commit failed. */
void webhooks_committed(struct webhooks *wh, bool ok);

/* The sender's fd and the events to poll for, or -1. */
int webhooks_poll_fd(const struct webhooks *wh, short *events);
/* Monotonic time the loop must wake at for webhooks, INT64_MAX for none. */
int64_t webhooks_wake_at(const struct webhooks *wh, int64_t now);
/* After poll(), in the loop's second transaction. */
void webhooks_ready(struct webhooks *wh, short revents, int64_t now);

/* `run`: true once nothing of its run is left to deliver in the drain
 * time (or it is over). */
bool webhooks_settled(struct webhooks *wh, int64_t now);

#endif
