/* scheduler: which storyboards go to the next worker.  Fills free slots
 * from the active runs in turn (round robin, so a large run does not starve
 * a small one), never past a provider's concurrency, serving cache hits on
 * the way without a worker. */
#ifndef T2I_SCHEDULER_H
#define T2I_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

struct outcome_ctx;
struct slots;
struct run;

struct scheduler {
	size_t cursor;		/* run to look at first */
	int64_t until_ms;	/* monotonic: start nothing more after this in one call */
};

/* Starts batches while slots are free and work is queued.  Returns the
 * number of workers started, or -1 when a fork failed (retry later). */
int scheduler_dispatch(struct scheduler *sch, const struct outcome_ctx *c, struct slots *w,
		       struct run **runs, size_t nruns);

#endif
