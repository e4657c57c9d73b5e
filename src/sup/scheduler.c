/* scheduler: batches for free worker slots. */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "msg.h"
#include "pace.h"
#include "project.h"
#include "run.h"
#include "slots.h"
#include "spawnmsg.h"
#include "spend.h"
#include "stage.h"
#include "store.h"

/* How many items the next batch of r for provider p takes: batch_size,
 * but no more than an even share of what is left among the provider's
 * workers.  At the end of a run, batch_size items given to one worker
 * while others have nothing left would make the run wait for its slowest
 * worker; shares of one or two let the last items spread out. */
static int
batch_target(const struct outcome_ctx *c, const struct run *r, int p)
{
	int limit = c->pace->prov[p].limit < c->w->max_busy ? c->pace->prov[p].limit
							    : c->w->max_busy;
	size_t lanes = (size_t)(limit > 0 ? limit : 1);
	/* A shared run's queue is the database: what was left when counted. */
	size_t left = r->shared ? (size_t)(r->pending_hint > 0 ? r->pending_hint : 1) : r->qlen;
	size_t share = (left + lanes - 1) / lanes;

	/* A provider that rate limits, or has a rate, is paced request by
	 * request: a batch would send its next ones whatever the pace says. */
	if (pace_single(c->pace, p))
		return 1;
	if (share < 1)
		share = 1;
	return share < (size_t)c->cfg->batch_size ? (int)share : c->cfg->batch_size;
}

/* How many items of r the next batch for p takes: batch_target(), within
 * what the provider's pace and the budgets allow now.  0 when none may go;
 * a budget reached fails the run's storyboards waiting for p. */
static int
batch_allowed(const struct outcome_ctx *c, struct run *r, int p)
{
	int want = pace_allow(c->pace, p, batch_target(c, r, p), clock_now_ms());
	struct spend_check chk;

	if (want == 0 || spend_check(c->st, c->cfg, r, p, want, &chk) < 0)
		return 0;
	if (chk.reached)
		outcome_budget_reached(c, r, p, chk.why);
	return chk.allow;
}

/* Pops up to want items of r for provider p, serving cache hits at once.
 * Items on another provider (after a failover) keep their place. */
static int
take_items(const struct outcome_ctx *c, struct run *r, int p, int want, int *items)
{
	int n = 0, nheld = 0, i;
	int *held = malloc((r->qlen + 1) * sizeof(*held));

	if (held == NULL)
		return 0;
	while (n < want && (i = run_queue_pop(r)) >= 0) {
		if (r->items[i].state != ITEM_QUEUED || !outcome_reroute(c, r, i))
			continue;	/* failed while it waited, or now */
		if (r->use_cache && outcome_serve_cached(c, r, i))
			continue;
		if (run_provider(r, i) != p) {
			held[nheld++] = i;
			continue;
		}
		r->items[i].state = ITEM_DISPATCHED;
		items[n++] = i;
	}
	while (nheld > 0)
		run_queue_push_front(r, held[--nheld]);
	free(held);
	return n;
}

/* What an attempt at item i resumes: the provider task an earlier attempt
 * with the same provider and parameters checkpointed (store_task.c), in
 * this run or another, and the key for a provider that takes a
 * client-chosen id.  -1 when the database cannot say: sending the item
 * anyway could pay for a task a second time. */
static int
fill_resume(const struct outcome_ctx *c, struct run *r, int i, struct msg_item *mi)
{
	struct run_item *it = &r->items[i];
	struct store_task_key k = { it->storyboard_id, r->chain_db_id[it->chain_pos],
				    it->cache_key };
	char *state;

	if (store_task_take(c->st, &k, it->image_id, &state) < 0) {
		log_errx("run %s: storyboard %d: cannot read its provider task: %s", r->id,
			 it->index, store_errmsg(c->st));
		return -1;
	}
	it->task_pending = it->resumed = state != NULL;
	mi->resume_json = state != NULL ? state : strdup("");
	stage_idempotency_key(c->cfg, r, i, mi->idempotency_key);
	mi->last_attempt = it->attempts + 1 >= c->cfg->retry_attempts;
	return mi->resume_json != NULL ? 0 : -1;
}

static char *
encode_batch(const struct outcome_ctx *c, struct run *r, int prov, const int *items, int n,
	     size_t *len)
{
	const struct config_provider *p = &c->cfg->providers[prov];
	struct msg_item *mi = calloc((size_t)n, sizeof(*mi));
	struct msg_batch b = {
		.plugin_path = p->plugin_path, .storage_dir = c->cfg->storage_dir,
		.thumbnails = c->cfg->thumbnails, .timeout = c->cfg->timeout,
		.connect_timeout = c->cfg->connect_timeout,
		.provider = p->name, .api_url = p->api_url, .api_key = p->api_key,
		.model = p->model, .nitems = (size_t)n, .items = mi,
	};
	char *line = NULL;
	int k;

	if (mi == NULL)
		return NULL;
	for (k = 0; k < n; k++) {
		const struct run_item *it = &r->items[items[k]];

		if (fill_resume(c, r, items[k], &mi[k]) < 0)
			goto out;
		memcpy(mi[k].image_id, it->image_id, sizeof(mi[k].image_id));
		memcpy(mi[k].storyboard_id, it->storyboard_id, sizeof(mi[k].storyboard_id));
		memcpy(mi[k].ratio, it->ratio, sizeof(mi[k].ratio));
		memcpy(mi[k].resolution, it->resolution, sizeof(mi[k].resolution));
		mi[k].index = it->index;
		mi[k].prompt = it->prompt;
		mi[k].negative_prompt = it->negative_prompt;
		mi[k].width = it->width;
		mi[k].height = it->height;
		mi[k].options_json = it->options_json;
	}
	line = msg_encode_batch(&b, len);
out:
	for (int f = 0; f < n; f++)
		free(mi[f].resume_json);
	free(mi);
	return line;
}

static void
put_back(const struct outcome_ctx *c, struct run *r, const int *items, int n)
{
	for (int k = n - 1; k >= 0; k--) {
		spend_release(c->st, r, items[k]);
		if (r->shared)	/* claimed: the database's again */
			store_image_reset(c->st, r->items[items[k]].image_id);
		run_queue_push_front(r, items[k]);
	}
}

/* Every request of the batch in the spend ledger before the worker can
 * send one.  When it may cost something the rows are committed now: a
 * kill -9 right after the fork must not lose the record of a request the
 * provider bills (the loop's commit would come too late). */
static int
reserve_batch(const struct outcome_ctx *c, struct run *r, int p, const int *items, int n)
{
	for (int k = 0; k < n; k++)
		if (spend_reserve(c->st, c->cfg, r, items[k]) < 0)
			return -1;
	if (c->cfg->providers[p].cost > 0 && (store_commit(c->st) < 0 || store_begin(c->st) < 0)) {
		log_errx("run %s: cannot record its requests to provider %s: %s", r->id,
			 c->cfg->providers[p].name, store_errmsg(c->st));
		for (int k = 0; k < n; k++)
			r->items[items[k]].ledger_id = 0;	/* rolled back with them */
		return -1;
	}
	return 0;
}

/* Forks a worker into slot for the n items of r on provider p, their
 * requests reserved first (items is taken over on success, freed on
 * failure, when the items are put back). */
static int
spawn_items(const struct outcome_ctx *c, struct slots *w, int slot, struct run *r, int p,
	    int *items, int n)
{
	size_t len;
	char *line = NULL;

	if (reserve_batch(c, r, p, items, n) < 0 ||
	    (line = encode_batch(c, r, p, items, n, &len)) == NULL ||
	    slots_spawn(w, slot, &(struct spawn_batch){
			.run = r, .provider = p, .plugin = c->cfg->providers[p].plugin_path,
			.flags = spawnmsg_flags(c->cfg->thumbnails), .items = items,
			.nitems = n, .line = line, .len = len,
			.deadline_ms = slots_deadline(c->cfg->timeout),
			.lease_token = r->shared ? r->items[items[0]].lease_token : NULL }) < 0) {
		put_back(c, r, items, n);
		free(items);
		free(line);
		return -1;
	}
	if (!r->shared)	/* a shared run took its tokens from the database's bucket */
		pace_take(c->pace, p, n, clock_now_ms());
	free(line);
	return 1;
}

/* One batch of run r for provider p into slot. */
static int
start_batch(const struct outcome_ctx *c, struct slots *w, int slot, struct run *r, int p)
{
	int *items = malloc((size_t)c->cfg->batch_size * sizeof(*items));
	int n, want;

	if (items == NULL)
		return -1;
	if ((want = batch_allowed(c, r, p)) == 0 || (n = take_items(c, r, p, want, items)) == 0) {
		free(items);
		return 0;
	}
	return spawn_items(c, w, slot, r, p, items, n);
}
#define CLAIM_IDLE_MS 250	/* a shared run with nothing to claim is asked again after */

/* Claimed item i of shared run r on chain position k, under token: what
 * the database says of it, then the checks of take_items(). */
static bool
claimed_item(const struct outcome_ctx *c, struct run *r, int i, int k, const char *token,
	     const struct store_claim *cl, int p)
{
	struct run_item *it = &r->items[i];

	snprintf(it->lease_token, sizeof(it->lease_token), "%s", token);
	it->attempts = cl->attempts;
	it->state = ITEM_QUEUED;
	if (it->chain_pos != k) {	/* another instance moved it on */
		it->chain_pos = k;
		stage_bind_provider(c->cfg, r, i);
	}
	if (!outcome_reroute(c, r, i) || run_provider(r, i) != p)
		return false;	/* failed, or now on another provider */
	if (r->use_cache && outcome_serve_cached(c, r, i))
		return false;
	it->state = ITEM_DISPATCHED;
	return true;
}

/* Under provider p's row lock (several instances): how many requests of
 * shared run r may go to it now, chain position k.  The batch's share,
 * within a pause the provider asked for, its rate bucket in the database
 * (when it has a rate; *wait_ms: until the next token) and its budgets,
 * whose spend every instance reserves under the same lock.  -1 when the
 * database cannot say. */
static int
shared_allowed(const struct outcome_ctx *c, struct run *r, int k, int p, int64_t *wait_ms)
{
	double per_ms = pace_per_ms(c->pace, p), tokens;
	int want = batch_target(c, r, p);
	struct spend_check chk;

	if (pace_paused(c->pace, p, clock_now_ms()))
		return 0;
	if (per_ms > 0) {
		if (store_rate_refill(c->st, r->chain_db_id[k], clock_wall_ms(), per_ms,
				      &tokens) < 0)
			return -1;
		if (tokens < 1.0) {
			*wait_ms = (int64_t)((1.0 - tokens) / per_ms) + 1;
			return 0;
		}
		want = want < (int)tokens ? want : (int)tokens;
	}
	if (spend_check(c->st, c->cfg, r, p, want, &chk) < 0)
		return -1;
	if (chk.reached) {
		outcome_budget_reached(c, r, p, chk.why);
		return 0;
	}
	return chk.allow;
}

/* Claims up to want generations of shared run r at chain position k and
 * spawns their batch: 1 spawned, 0 none claimed (*any: some were, but
 * none is to be sent), -1 error. */
static int
claim_at(const struct outcome_ctx *c, struct slots *w, int slot, struct run *r, int k,
	 int want, bool *any)
{
	int p = r->chain[k], n, got = 0;
	struct store_claim *cl = calloc((size_t)want, sizeof(*cl));
	int *items = malloc((size_t)want * sizeof(*items));
	char token[37];
	struct store_claim_req q = { r->id, r->chain_db_id[k], want, c->pace->prov[p].limit,
				     c->cluster_name, token, clock_wall_ms(), c->lease_ms,
				     r->use_cache };

	project_uuid(token);
	if (cl == NULL || items == NULL || (n = store_claim(c->st, &q, cl)) < 0) {
		free(cl);
		free(items);
		return -1;
	}
	*any = *any || n > 0;
	for (int j = 0; j < n; j++) {
		int i = run_item_of_image(r, cl[j].image_id);

		if (i >= 0 && claimed_item(c, r, i, k, token, &cl[j], p))
			items[got++] = i;
	}
	free(cl);
	if (got > 0 && pace_per_ms(c->pace, p) > 0 &&
	    store_rate_take(c->st, r->chain_db_id[k], got) < 0) {
		put_back(c, r, items, got);
		free(items);
		return -1;
	}
	if (got == 0) {
		free(items);
		return 0;
	}
	return spawn_items(c, w, slot, r, p, items, got);
}

/* Several instances: a batch of shared run r claimed from the database on
 * the first provider of its chain that can take one (sup/cluster.h), with
 * every limit of the provider checked under its row lock, which holds
 * until the claim and its reservations are committed.  Positions of
 * providers this run found unusable are claimed too, so that their
 * generations move on rather than wait for an instance that has not found
 * out. */
static int
claim_batch(const struct outcome_ctx *c, struct slots *w, int slot, struct run *r)
{
	int64_t now = clock_now_ms(), wait_ms = CLAIM_IDLE_MS;
	int rc = 0;
	bool any = false;

	if (now < r->claim_after_ms || r->finished || r->cancelled || r->halted)
		return 0;
	for (int k = 0; k < r->nchain && rc == 0; k++) {
		int p = r->chain[k], want, locked;

		if (!r->chain_dead[k] && !pace_has_room(c->pace, p, w->provider_busy[p]))
			continue;
		if ((locked = store_provider_lock(c->st, r->chain_db_id[k])) < 0)
			return -1;
		if (locked == 0)
			continue;	/* another instance is claiming */
		want = r->chain_dead[k] ? batch_target(c, r, p) : shared_allowed(c, r, k, p, &wait_ms);
		if (want < 0)
			return -1;
		if (want > 0)
			rc = claim_at(c, w, slot, r, k, want, &any);
	}
	if (rc == 0 && !any)
		r->claim_after_ms = now + wait_ms;
	return rc;
}

/* The provider of the run's next item, when that provider may take one
 * more worker; -1 otherwise. */
static int
next_provider(const struct outcome_ctx *c, const struct slots *w, struct run *r)
{
	int p;

	/* Drop from the head what failed while it waited, and move what
	 * waits for a provider that became unusable. */
	while (r->qlen > 0 && (r->items[r->queue[r->qhead]].state != ITEM_QUEUED ||
			       !outcome_reroute(c, r, r->queue[r->qhead])))
		run_queue_pop(r);
	if (r->qlen == 0 || r->finished || r->cancelled || r->halted)
		return -1;
	p = run_provider(r, r->queue[r->qhead]);
	if (!pace_has_room(c->pace, p, w->provider_busy[p]) ||
	    pace_allow(c->pace, p, 1, clock_now_ms()) == 0)
		return -1;
	return p;
}

int
scheduler_dispatch(struct scheduler *sch, const struct outcome_ctx *c, struct slots *w,
		   struct run **runs, size_t nruns)
{
	int started = 0, slot;
	size_t idle = 0;

	/* Each pass gives one run one batch; stop after a full round in which
	 * no run could start anything. */
	while (nruns > 0 && idle < nruns && clock_now_ms() <= sch->until_ms &&
	       (slot = slots_free_slot(w)) >= 0) {
		struct run *r = runs[sch->cursor % nruns];
		int rc = 0, p = r->shared ? -1 : next_provider(c, w, r);

		sch->cursor = (sch->cursor + 1) % nruns;
		if (r->shared)
			rc = claim_batch(c, w, slot, r);
		else if (p >= 0)
			rc = start_batch(c, w, slot, r, p);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			started++;
			idle = 0;
		} else {
			idle++;
		}
	}
	return started;
}
