/* outcome_internal: what outcome.c lends outcome_hold.c, and nothing else uses. */
#ifndef T2I_OUTCOME_INTERNAL_H
#define T2I_OUTCOME_INTERNAL_H

#include <stdint.h>

#include "outcome.h"

struct slot;

/* Records item i as failed with cause (an error event); a follower takes
 * over as the leader. */
void outcome_fail_item(const struct outcome_ctx *c, struct run *r, int i, const char *cause);
/* Moves item i to chain position next, with a warning saying why. */
void outcome_failover(const struct outcome_ctx *c, struct run *r, int i, int next,
		      const char *why);
/* Chain position pos of run r is not asked again (why, for the errors of
 * the storyboards it leaves; told is the warning's words): its waiting
 * storyboards move on, its workers of this run are stopped. */
void outcome_kill_provider(const struct outcome_ctx *c, struct run *r, int pos, const char *why,
			   const char *told);
/* Item i waits delay_ms before it is queued again; its row is pending. */
void outcome_delay(const struct outcome_ctx *c, struct run *r, int i, int64_t delay_ms);

/* (outcome_hold.c) A rate-limited answer to item i of slot s. */
void outcome_rate_limited(const struct outcome_ctx *c, struct slot *s, int i,
			  int64_t retry_after_ms, const char *cause);
/* (outcome_hold.c) Item i of slot s got an image that could not be stored. */
void outcome_local_failure(const struct outcome_ctx *c, struct slot *s, int i,
			   const char *why);
/* (outcome_hold.c) Gives chain position pos of r up when its provider has
 * answered only "rate limited" for retry.rate_limit_wait. */
void outcome_check_rate_wait(const struct outcome_ctx *c, struct run *r, int pos);

#endif
