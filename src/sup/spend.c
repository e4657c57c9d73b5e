/* spend: reservations, settlements and budget checks of a run's requests. */
#include "spend.h"

#include <math.h>
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "run.h"
#include "store.h"
#include "t2istage/plugin.h"

/* Rounding of sums of prices: a budget of 0.3 holds three requests at 0.1. */
#define SPEND_EPSILON 1e-9

/* Requests of price cost that fit in budget with spent already counted. */
static int
fit(double budget, double spent, double cost, int want)
{
	double n;

	if (cost <= 0)
		return spent <= budget + SPEND_EPSILON ? want : 0;
	n = floor((budget - spent) / cost + SPEND_EPSILON);
	if (n <= 0)
		return 0;
	return n < want ? (int)n : want;
}

/* One budget (per run or per day) against its sums. */
static void
check_one(const struct config_provider *p, const char *which, double budget,
	  const struct store_spend_sums *sums, struct spend_check *out)
{
	int now = fit(budget, sums->total, p->cost, out->allow);

	if (now < out->allow)
		out->allow = now;
	if (now == 0 && fit(budget, sums->total - sums->reserved, p->cost, 1) == 0 &&
	    !out->reached) {
		out->reached = true;
		snprintf(out->why, sizeof(out->why),
			 "budget reached: provider %s: its %s budget of %g is spent (%g, at %g a "
			 "request)", p->name, which, budget, sums->total, p->cost);
	}
}

int
spend_check(struct store *st, const struct config *cfg, const struct run *r, int p, int want,
	    struct spend_check *out)
{
	const struct config_provider *cp = &cfg->providers[p];
	struct store_spend_sums sums;
	char day[STORE_DAY_MAX];

	out->allow = want;
	out->reached = false;
	out->why[0] = '\0';
	if (cp->budget_run >= 0) {
		if (store_spend_sum(st, cp->name, r->id, NULL, &sums) < 0)
			goto fail;
		check_one(cp, "per_run", cp->budget_run, &sums, out);
	}
	if (cp->budget_day >= 0) {
		store_spend_today(day);
		if (store_spend_sum(st, cp->name, NULL, day, &sums) < 0)
			goto fail;
		check_one(cp, "per_day", cp->budget_day, &sums, out);
	}
	return 0;
fail:
	log_errx("run %s: provider %s: cannot read its spend: %s", r->id, cp->name,
		 store_errmsg(st));
	out->allow = 0;
	return -1;
}

int
spend_reserve(struct store *st, const struct config *cfg, struct run *r, int i)
{
	struct run_item *it = &r->items[i];
	const struct config_provider *p = &cfg->providers[run_provider(r, i)];
	char day[STORE_DAY_MAX];
	int64_t id;

	store_spend_today(day);
	id = store_spend_reserve(st, &(struct store_spend_req){
		.provider = p->name, .run_id = r->id, .image_id = it->image_id, .day = day,
		.cost = p->cost });
	if (id < 0) {
		log_errx("run %s: storyboard %d: cannot record its request: %s", r->id, it->index,
			 store_errmsg(st));
		return -1;
	}
	it->ledger_id = id;
	return 0;
}

static bool
refused(int cls)
{
	return cls == T2I_ERR_RATE_LIMITED || cls == T2I_ERR_AUTH || cls == T2I_ERR_QUOTA;
}

void
spend_settle(struct store *st, struct run *r, int i, int cls)
{
	struct run_item *it = &r->items[i];
	const char *outcome = cls < 0 ? "completed" : cls == MSG_ERR_LOCAL ? "local"
						    : refused(cls) ? "refused" : "failed";
	/* A checkpoint is a paid submission, whatever became of it after. */
	bool charged = it->checkpointed || (!it->resumed && !refused(cls));

	if (it->ledger_id <= 0)
		return;
	if (store_spend_settle(st, it->ledger_id, outcome, cls < 0 ? NULL : msg_class_name(cls),
			       charged) < 0)
		log_errx("run %s: storyboard %d: cannot record what its request cost: %s", r->id,
			 it->index, store_errmsg(st));
	it->ledger_id = 0;
}

void
spend_release(struct store *st, struct run *r, int i)
{
	struct run_item *it = &r->items[i];

	if (it->ledger_id <= 0)
		return;
	if (store_spend_release(st, it->ledger_id) < 0)
		log_errx("run %s: storyboard %d: cannot release its request: %s", r->id, it->index,
			 store_errmsg(st));
	it->ledger_id = 0;
}
