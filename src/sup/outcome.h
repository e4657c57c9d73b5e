/* outcome: what a worker's messages and its exit mean for the run.  Applies
 * begin / image / result / fatal to the items, the database and the events,
 * and settles the items a dead worker left unfinished. */
#ifndef T2I_OUTCOME_H
#define T2I_OUTCOME_H

#include <stdbool.h>
#include <stdint.h>

struct slot;
struct store;
struct config;
struct run;
struct slots;
struct metrics;

struct pace;

struct outcome_ctx {
	struct store *st;
	const struct config *cfg;
	struct slots *w;	/* the workers, for what is in flight */
	struct pace *pace;	/* the providers' limits, pauses and rates */
	struct metrics *m;	/* NULL when nobody reads metrics */
	const char *cluster_name; /* several instances: this one's name (lease owner) */
	int64_t lease_ms;	/* and the lease of a claim */
};

/* Handles every complete line buffered for the slot, also those a worker
 * wrote before it was killed for its deadline or a stop.  A line that is
 * not a valid message, or is out of order, kills the worker ("bad message
 * from worker") and ends its say.  A checkpoint is committed at once and
 * acknowledged on the worker's batch pipe.  Returns the number of lines
 * handled. */
int outcome_handle_lines(const struct outcome_ctx *c, struct slot *s);

/* Once the worker is reaped and drained: the item it was working on fails
 * with the cause; items it never began go back to the front of the queue. */
void outcome_settle(const struct outcome_ctx *c, struct slot *s);

/* Completes item i from the cache (or from its in-run leader) without a
 * worker.  Returns 1 when served, 0 when there was nothing to serve from. */
int outcome_serve_cached(const struct outcome_ctx *c, struct run *r, int i);

/* Before item i is dispatched: when its provider became unusable in this
 * run (or has answered only "rate limited" for retry.rate_limit_wait),
 * moves it to the next one.  False when none is left (it failed). */
bool outcome_reroute(const struct outcome_ctx *c, struct run *r, int i);

/* A budget of provider p is reached for run r (why says which): its
 * storyboards waiting for p fail with why, and one warning says so. */
void outcome_budget_reached(const struct outcome_ctx *c, struct run *r, int p,
			    const char *why);

/* Run r dispatches nothing more (why: a local failure, the database): its
 * workers finish the storyboard they are on and begin no other; what they
 * leave stays pending.  The run ends once they are gone (stage_halted). */
void outcome_halt(const struct outcome_ctx *c, struct run *r, const char *why);

/* Item i, handed out but never sent (its worker did not begin it): back to
 * the front of the queue, its request's reservation and token returned. */
void outcome_unsent(const struct outcome_ctx *c, struct run *r, int i, int provider);

#endif
