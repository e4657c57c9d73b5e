/* retry: what follows a failed attempt at a storyboard.  Transient
 * failures are retried on the same provider after an exponential backoff
 * with full jitter (never sooner than the provider's Retry-After), up to
 * retry.attempts; authentication and quota failures, and attempts used up,
 * move the storyboard to the next provider of the run's chain; a rejected
 * request, or the end of the chain, fails it.  Rate-limited answers use up
 * no attempt: the storyboard waits (the same backoff, at least the
 * Retry-After) for at most retry.rate_limit_wait in all, from its first
 * such answer on the provider, then moves on as when its attempts are
 * used up. */
#ifndef T2I_RETRY_H
#define T2I_RETRY_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct run;

enum retry_action { RETRY_LATER, RETRY_FAILOVER, RETRY_FAIL };

struct retry_decision {
	enum retry_action action;
	int64_t delay_ms;	/* RETRY_LATER */
	int next_pos;		/* RETRY_FAILOVER: chain position */
};

/* Delay before attempt number `attempt` + 1 (attempt >= 1 failed so far):
 * uniform in [0, min(backoff_max, backoff * 2^(attempt-1))), and at least
 * retry_after_ms.  u is a uniform random number in [0, 1). */
int64_t retry_backoff_ms(const struct config *cfg, int attempt, int64_t retry_after_ms,
			 double u);

/* Decides for item i of r, whose attempt (already counted in
 * r->items[i].attempts) failed with error_class. */
void retry_decide(const struct config *cfg, const struct run *r, int i, int error_class,
		  int64_t retry_after_ms, double u, struct retry_decision *d);

/* After a rate-limited answer at now (monotonic ms) to item i, counted in
 * r->items[i].limited, whose first was at limited_since_ms (set by the
 * caller): RETRY_LATER with the delay, never past the end of the wait; or,
 * once the wait is used up, as retry_decide for attempts used up. */
void retry_rate_limited(const struct config *cfg, const struct run *r, int i, int64_t now,
			int64_t retry_after_ms, double u, struct retry_decision *d);

/* Transient and rate-limited failures: the same request may succeed later. */
bool retry_transient(int error_class);

/* The next chain position after pos whose provider is not dead, or -1. */
int retry_next_provider(const struct run *r, int pos);

#endif
