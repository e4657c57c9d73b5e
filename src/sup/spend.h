/* spend: a run's requests in the spend ledger (store_spend.c), against the
 * providers' cost and budgets (budget = { per_run; per_day; }).
 *
 * Every request is reserved before it is handed out, checked against the
 * budgets in the same write transaction (so that two processes on one
 * database cannot pass a budget together), and settled on its answer.  A
 * budget is reached when even the requests still in flight, were they all
 * to cost nothing, leave no room for one more; until then a request that
 * does not fit waits for them. */
#ifndef T2I_SPEND_H
#define T2I_SPEND_H

#include <stdbool.h>

struct store;
struct config;
struct run;

struct spend_check {
	int allow;		/* requests the budgets allow now */
	bool reached;		/* none will fit in this run: the rest fail */
	char why[256];		/* when reached: which budget, for the errors */
};

/* How many of want requests of run r may go to provider p now.  -1 when the
 * database cannot say (then none may). */
int spend_check(struct store *st, const struct config *cfg, const struct run *r, int p,
		int want, struct spend_check *out);

/* Item i's request is about to be handed out: its ledger row.  0 or -1. */
int spend_reserve(struct store *st, const struct config *cfg, struct run *r, int i);

/* Its answer: cls -1 for an image, else the error class (msg.h's, with
 * MSG_ERR_LOCAL).  What it cost: nothing when the provider refused it
 * before any work (rate limited, auth, quota) or when the attempt only
 * polled a task paid for before; else the provider's cost. */
void spend_settle(struct store *st, struct run *r, int i, int cls);

/* It was never sent. */
void spend_release(struct store *st, struct run *r, int i);

#endif
