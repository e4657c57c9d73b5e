/* outcome_hold: what holds storyboards back without being their fault: a
 * provider's rate limits (they wait, using up no attempt), a budget (they
 * fail, for `retry` once it allows), and a failure of our own storage or
 * database (the run stops dispatching; what is not done stays pending). */
#include "outcome_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "pace.h"
#include "project.h"
#include "retry.h"
#include "run.h"
#include "slots.h"
#include "store.h"
#include "t2istage/plugin.h"

/* A provider's Retry-After as we honour it: at most retry.backoff_max (a
 * huge one would park the run for hours), nothing for a negative one.
 * note says which, for the warning. */
static int64_t
bounded_retry_after(const struct config *cfg, int64_t ms, char *note, size_t notelen)
{
	int64_t max = (int64_t)(cfg->retry_backoff_max * 1000.0);

	note[0] = '\0';
	if (ms < 0) {
		snprintf(note, notelen, "; its Retry-After (%lld ms) is negative: ignored",
			 (long long)ms);
		return 0;
	}
	if (ms > max) {
		snprintf(note, notelen, "; its Retry-After of %g s is clamped to "
			 "retry.backoff_max (%g s)", (double)ms / 1000.0, cfg->retry_backoff_max);
		return max;
	}
	return ms;
}

void
outcome_check_rate_wait(const struct outcome_ctx *c, struct run *r, int pos)
{
	int p = r->chain[pos];
	int64_t wait = (int64_t)(c->cfg->retry_rate_limit_wait * 1000.0);
	int64_t for_ms = pace_limited_for(c->pace, p, clock_now_ms());
	char why[600];

	/* Nothing it keeps waiting on will come: given up, as one that
	 * refused its key. */
	if (r->chain_dead[pos] || for_ms == 0 || for_ms < wait)
		return;
	snprintf(why, sizeof(why),
		 "provider %s has answered only \"rate limited\" for %.0f s, the most "
		 "retry.rate_limit_wait allows (%g s); its last answer: %s",
		 c->cfg->providers[p].name, (double)for_ms / 1000.0,
		 c->cfg->retry_rate_limit_wait, c->pace->prov[p].cause);
	outcome_kill_provider(c, r, pos, why, why);
}

/* The provider's limit, shared by every run on it (pace.h), learns from
 * the answer. */
static void
tell_pace(const struct outcome_ctx *c, struct slot *s, int i, int64_t ra, const char *cause,
	  int64_t now)
{
	const char *name = c->cfg->providers[s->provider].name;
	struct pace_verdict v;

	pace_limited(c->pace, s->provider, s->run->items[i].epoch,
		     slots_in_flight(c->w, s->provider, s), ra, cause, now, &v);
	metrics_rate_limited(c->m, name);
	if (v.cut)
		log_info("provider %s rate limited: at most %d workers at once%s", name, v.limit,
			 v.paused_until_ms > 0 ? ", paused as it asked" : "");
}

void
outcome_rate_limited(const struct outcome_ctx *c, struct slot *s, int i, int64_t retry_after_ms,
		     const char *cause)
{
	struct run *r = s->run;
	struct run_item *it = &r->items[i];
	const char *name = c->cfg->providers[s->provider].name;
	int64_t now = clock_now_ms(), ra;
	struct retry_decision d;
	char note[160], why[900];

	ra = bounded_retry_after(c->cfg, retry_after_ms, note, sizeof(note));
	tell_pace(c, s, i, ra, cause, now);
	/* Waiting is not failing: no attempt is used up. */
	it->limited++;
	if (it->limited_since_ms == 0)
		it->limited_since_ms = now;
	outcome_check_rate_wait(c, r, it->chain_pos);
	retry_rate_limited(c->cfg, r, i, now, ra, drand48(), &d);
	if (d.action == RETRY_LATER) {
		outcome_delay(c, r, i, d.delay_ms);
		events_info(r, "warning", "storyboard %d: rate limited by provider %s (%s%s); "
			    "waiting %.1f s, %.0f s of retry.rate_limit_wait (%g s) used",
			    it->index, name, cause, note, (double)d.delay_ms / 1000.0,
			    (double)(now - it->limited_since_ms) / 1000.0,
			    c->cfg->retry_rate_limit_wait);
		return;
	}
	if (r->chain_dead[it->chain_pos])
		snprintf(why, sizeof(why), "%s", run_dead_why(r, it->chain_pos));
	else
		snprintf(why, sizeof(why), "rate limited by provider %s for %.0f s in all, the most "
			 "retry.rate_limit_wait allows (%g s): %s", name,
			 (double)(now - it->limited_since_ms) / 1000.0,
			 c->cfg->retry_rate_limit_wait, cause);
	if (d.action == RETRY_FAILOVER) {
		metrics_failover(c->m, name);
		outcome_failover(c, r, i, d.next_pos, why);
	} else {
		outcome_fail_item(c, r, i, why);
	}
}

/* The run's other workers finish the storyboard they are on and begin no
 * other (a polling plugin leaves its task, paid for, to a later attempt). */
static void
stop_run_workers(const struct outcome_ctx *c, struct run *r)
{
	for (int k = 0; k < c->w->nslots; k++) {
		struct slot *sl = &c->w->slots[k];

		if (sl->pid > 0 && sl->run == r && !sl->reaped && !sl->done)
			slots_stop(sl, T2I_STOP_SHUTDOWN, -1, "run stopped");
	}
}

void
outcome_halt(const struct outcome_ctx *c, struct run *r, const char *why)
{
	if (r->halted)
		return;
	run_halt(r, why);
	stop_run_workers(c, r);
}

void
outcome_local_failure(const struct outcome_ctx *c, struct slot *s, int i, const char *why)
{
	struct run *r = s->run;
	struct run_item *it = &r->items[i];

	if (r->halted) {
		/* Told once already: this one stays pending, for `retry`. */
		log_warnx("run %s: storyboard %d: %s", r->id, it->index, why);
		store_image_reset(c->st, it->image_id);
		run_queue_push_front(r, i);
		return;
	}
	/* Every later storyboard would be paid for and lost the same way. */
	log_errx("run %s: storyboard %d: %s; the run stops, what is not done stays pending",
		 r->id, it->index, why);
	outcome_fail_item(c, r, i, why);
	outcome_halt(c, r, why);
}

/* Several instances: the generations of shared run r waiting for provider
 * p are in the database.  They are claimed, so that they are this
 * instance's to fail (none is failed over another's lease); a retry not
 * yet due fails when it is.  How many failed. */
static int
fail_shared(const struct outcome_ctx *c, struct run *r, int p, const char *why)
{
	struct store_claim cl[16];
	char token[37];
	int n, failed = 0;

	for (int pos = 0; pos < r->nchain; pos++) {
		struct store_claim_req q = { r->id, r->chain_db_id[pos], 16, INT_MAX,
					     c->cluster_name, token, clock_wall_ms(), c->lease_ms,
					     false };

		if (r->chain[pos] != p)
			continue;
		project_uuid(token);
		while ((n = store_claim(c->st, &q, cl)) > 0)
			for (int j = 0; j < n; j++) {
				int i = run_item_of_image(r, cl[j].image_id);

				if (i < 0)
					continue;
				snprintf(r->items[i].lease_token, sizeof(r->items[i].lease_token),
					 "%s", token);
				outcome_fail_item(c, r, i, why);
				failed++;
			}
	}
	return failed;
}

void
outcome_budget_reached(const struct outcome_ctx *c, struct run *r, int p, const char *why)
{
	int n = r->shared ? fail_shared(c, r, p, why) : 0;

	for (size_t k = 0; !r->shared && k < r->nitems; k++) {
		struct run_item *it = &r->items[k];

		if (run_provider(r, (int)k) != p ||
		    (it->state != ITEM_QUEUED && it->state != ITEM_DELAYED))
			continue;
		if (it->state == ITEM_DELAYED)
			r->ndelayed--;
		outcome_fail_item(c, r, (int)k, why);
		n++;
	}
	for (int pos = 0; pos < r->nchain; pos++) {
		if (r->chain[pos] != p || r->budget_told[pos])
			continue;
		r->budget_told[pos] = true;
		events_info(r, "warning", "%s; %d storyboards not sent: `t2istage retry` sends them "
			    "once the budget allows", why, n);
	}
}
