/* pace: how many requests a provider gets at once, and how fast, shared by
 * every run on it.
 *
 * Concurrency adapts the way TCP's window does, with the provider's
 * rate-limited answers as the losses:
 *   - a rate-limited answer to a request sent since the last cut (its epoch
 *     is the current one) cuts the limit, once per round trip: down to the
 *     requests the provider was still serving for us when it refused (at
 *     least by one when no more than the limit were out).  The answers of that round trip that follow (sent
 *     before the cut) cut nothing: they only hold the limit to what they
 *     prove in turn, the requests still in flight when each came back;
 *   - a window of successes (of requests sent since the cut) as large as
 *     the limit grows it by one, up to the configured concurrency; growing
 *     to the limit at which it was last cut, or above, is a probe, allowed
 *     once every PACE_PROBE_MS;
 *   - a Retry-After pauses the whole provider: nothing is dispatched to it
 *     before then.
 * rate (requests a minute) is a token bucket of one token, checked before
 * a batch is handed out: a request waits for its token in the queue,
 * never in a worker holding a slot. */
#ifndef T2I_PACE_H
#define T2I_PACE_H

#include <stdbool.h>
#include <stdint.h>

struct config;

#define PACE_PROBE_MS 60000	/* growth at or above the last cut: once a minute */

struct pace_provider {
	int max;		/* configured concurrency */
	int limit;		/* workers it may have now, 1..max */
	int ceiling;		/* the limit when it was last cut, 0 before any cut */
	uint64_t epoch;		/* cuts so far */
	int64_t cut_ms;		/* monotonic: the last cut, 0 before any */
	int oks;		/* successes in this epoch since the limit changed */
	int64_t next_probe_ms;	/* monotonic: no growth to ceiling or above before */
	int64_t paused_until_ms; /* monotonic: Retry-After, 0 none */
	int64_t limited_since_ms; /* first rate-limited answer since another answer, 0 */
	char cause[256];	/* the last rate-limited answer's words */
	double per_ms;		/* tokens a millisecond, 0: no rate */
	double tokens;		/* 0..1 */
	int64_t filled_ms;	/* when tokens was last brought up to date */
};

struct pace {
	struct pace_provider *prov;
	int n;
};

/* One state per provider of cfg, fresh: the full concurrency, no pause, a
 * full bucket. */
int pace_init(struct pace *pc, const struct config *cfg);
/* The state for a new configuration into out (pc is left as it is):
 * providers are matched by name (map: old index to new, -1 gone); one
 * that stays keeps its limit (within its new concurrency), pause and
 * bucket. */
int pace_reconfigure(const struct pace *pc, const struct config *cfg, const int *map,
		     struct pace *out);
void pace_free(struct pace *pc);

/* True when provider p may have one more worker besides busy ones. */
bool pace_has_room(const struct pace *pc, int p, int busy);
/* How many of want requests provider p may be handed now: 0 while it is
 * paused or its bucket is empty. */
int pace_allow(struct pace *pc, int p, int want, int64_t now);
/* Several instances take their tokens from a bucket in the database
 * instead (store_rate_refill): whether p is paused (Retry-After), and its
 * rate in tokens a millisecond (0: none). */
bool pace_paused(const struct pace *pc, int p, int64_t now);
double pace_per_ms(const struct pace *pc, int p);
/* n requests handed out (their tokens taken), or put back unsent. */
void pace_take(struct pace *pc, int p, int n, int64_t now);
void pace_refund(struct pace *pc, int p, int n);
/* Whether batches for p are one storyboard each: once it was cut, or with
 * a rate, so that every request is paced on its own. */
bool pace_single(const struct pace *pc, int p);

/* The epoch of a request that went out at sent_ms (the worker's clock, the
 * same monotonic clock): the current one, or one before it when the
 * request left before the last cut.  The time is the worker's, not the
 * moment its begin is read: the supervisor may read one worker's answer,
 * and cut, before it reads the begin of another worker's request that had
 * left long before, whose refusal must not cut again. */
uint64_t pace_epoch(const struct pace *pc, int p, int64_t sent_ms);

/* A success of a request sent in epoch sent.  Returns the new limit when
 * it grew, else 0. */
int pace_ok(struct pace *pc, int p, uint64_t sent, int64_t now);

struct pace_verdict {
	bool cut;		/* this answer cut the limit */
	int limit;		/* the limit now */
	int64_t paused_until_ms; /* 0: not paused */
};

/* A rate-limited answer (cause: its words) to a request sent in epoch
 * sent, with others of ours still in flight at p, and the provider's
 * Retry-After (already bounded by the caller; 0 for none). */
void pace_limited(struct pace *pc, int p, uint64_t sent, int others, int64_t retry_after_ms,
		  const char *cause, int64_t now, struct pace_verdict *v);

/* Any other answer than "rate limited" (an error, a crash): p answers. */
void pace_answered(struct pace *pc, int p);

/* How long p has answered nothing but "rate limited", in ms (0: it has not). */
int64_t pace_limited_for(const struct pace *pc, int p, int64_t now);

/* The next moment something changes without an answer: a pause ends, a
 * token comes, a provider has answered "rate limited" for wait_ms;
 * INT64_MAX for none. */
int64_t pace_wake_at(const struct pace *pc, int64_t now, int64_t wait_ms);

#endif
