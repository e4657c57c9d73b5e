/* pace: per-provider concurrency, pauses and request rate. */
#include "pace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void
fresh(struct pace_provider *pp, const struct config_provider *p)
{
	memset(pp, 0, sizeof(*pp));
	pp->max = pp->limit = p->concurrency;
	pp->per_ms = p->rate / 60000.0;
	pp->tokens = 1.0;
}

int
pace_init(struct pace *pc, const struct config *cfg)
{
	pc->n = (int)cfg->nproviders;
	pc->prov = calloc(cfg->nproviders + 1, sizeof(*pc->prov));
	if (pc->prov == NULL)
		return -1;
	for (int p = 0; p < pc->n; p++)
		fresh(&pc->prov[p], &cfg->providers[p]);
	return 0;
}

int
pace_reconfigure(const struct pace *pc, const struct config *cfg, const int *map,
		 struct pace *out)
{
	struct pace_provider *np = calloc(cfg->nproviders + 1, sizeof(*np));

	if (np == NULL)
		return -1;
	for (size_t p = 0; p < cfg->nproviders; p++)
		fresh(&np[p], &cfg->providers[p]);
	for (int o = 0; o < pc->n; o++) {
		struct pace_provider *d;

		if (map[o] < 0)
			continue;
		/* What the provider said about itself still holds; the new
		 * concurrency and rate are the new bounds. */
		d = &np[map[o]];
		d->limit = pc->prov[o].limit < d->max ? pc->prov[o].limit : d->max;
		d->ceiling = pc->prov[o].ceiling;
		d->epoch = pc->prov[o].epoch;
		d->cut_ms = pc->prov[o].cut_ms;
		d->next_probe_ms = pc->prov[o].next_probe_ms;
		d->paused_until_ms = pc->prov[o].paused_until_ms;
		d->limited_since_ms = pc->prov[o].limited_since_ms;
		if (d->per_ms > 0 && pc->prov[o].per_ms > 0) {
			d->tokens = pc->prov[o].tokens;
			d->filled_ms = pc->prov[o].filled_ms;
		}
	}
	out->prov = np;
	out->n = (int)cfg->nproviders;
	return 0;
}

void
pace_free(struct pace *pc)
{
	free(pc->prov);
	memset(pc, 0, sizeof(*pc));
}

bool
pace_has_room(const struct pace *pc, int p, int busy)
{
	return busy < pc->prov[p].limit;
}

static void
refill(struct pace_provider *pp, int64_t now)
{
	if (pp->per_ms <= 0)
		return;
	if (pp->filled_ms > 0 && now > pp->filled_ms)
		pp->tokens += (double)(now - pp->filled_ms) * pp->per_ms;
	if (pp->tokens > 1.0)
		pp->tokens = 1.0;
	pp->filled_ms = now;
}

int
pace_allow(struct pace *pc, int p, int want, int64_t now)
{
	struct pace_provider *pp = &pc->prov[p];
	int n = want;

	if (pp->paused_until_ms > now)
		return 0;
	refill(pp, now);
	/* A bucket of one token: requests go out evenly spaced, never in a
	 * burst that a provider measuring over a short interval refuses. */
	if (pp->per_ms > 0 && n > (int)pp->tokens)
		n = (int)pp->tokens;
	return n;
}

bool
pace_paused(const struct pace *pc, int p, int64_t now)
{
	return pc->prov[p].paused_until_ms > now;
}

double
pace_per_ms(const struct pace *pc, int p)
{
	return pc->prov[p].per_ms;
}

void
pace_take(struct pace *pc, int p, int n, int64_t now)
{
	struct pace_provider *pp = &pc->prov[p];

	if (pp->per_ms <= 0)
		return;
	refill(pp, now);
	pp->tokens -= n;
}

void
pace_refund(struct pace *pc, int p, int n)
{
	struct pace_provider *pp = &pc->prov[p];

	if (pp->per_ms <= 0)
		return;
	pp->tokens += n;
	if (pp->tokens > 1.0)
		pp->tokens = 1.0;
}

bool
pace_single(const struct pace *pc, int p)
{
	return pc->prov[p].ceiling > 0 || pc->prov[p].per_ms > 0;
}

uint64_t
pace_epoch(const struct pace *pc, int p, int64_t sent_ms)
{
	const struct pace_provider *pp = &pc->prov[p];

	return sent_ms < pp->cut_ms ? pp->epoch - 1 : pp->epoch;
}

int
pace_ok(struct pace *pc, int p, uint64_t sent, int64_t now)
{
	struct pace_provider *pp = &pc->prov[p];
	bool probe;

	pp->limited_since_ms = 0;
	if (sent != pp->epoch || pp->limit >= pp->max)
		return 0;	/* news from before the cut says nothing of now */
	if (++pp->oks < pp->limit)
		return 0;
	probe = pp->ceiling > 0 && pp->limit + 1 >= pp->ceiling;
	if (probe && now < pp->next_probe_ms)
		return 0;	/* the window stays full until the probe is due */
	pp->limit++;
	pp->oks = 0;
	if (probe)
		pp->next_probe_ms = now + PACE_PROBE_MS;
	return pp->limit;
}

void
pace_limited(struct pace *pc, int p, uint64_t sent, int others, int64_t retry_after_ms,
	     const char *cause, int64_t now, struct pace_verdict *v)
{
	struct pace_provider *pp = &pc->prov[p];
	int proven = others > 1 ? others : 1;

	v->cut = sent == pp->epoch;
	if (v->cut) {
		/* Refused with others + 1 in flight: that is where the provider
		 * stops, whatever the limit was (a batch's worker may have had
		 * its next request out over it). */
		pp->ceiling = others + 1;
		pp->limit = pp->limit < proven ? pp->limit : proven;
		pp->epoch++;
		pp->cut_ms = now;
		pp->oks = 0;
		pp->next_probe_ms = now + PACE_PROBE_MS;
	} else if (proven < pp->limit) {
		pp->limit = proven;	/* the same round trip: no new cut */
	}
	if (pp->limit < 1)
		pp->limit = 1;
	if (pp->limited_since_ms == 0)
		pp->limited_since_ms = now;
	snprintf(pp->cause, sizeof(pp->cause), "%s", cause);
	if (retry_after_ms > 0 && now + retry_after_ms > pp->paused_until_ms)
		pp->paused_until_ms = now + retry_after_ms;
	v->limit = pp->limit;
	v->paused_until_ms = pp->paused_until_ms > now ? pp->paused_until_ms : 0;
}

void
pace_answered(struct pace *pc, int p)
{
	pc->prov[p].limited_since_ms = 0;
}

int64_t
pace_limited_for(const struct pace *pc, int p, int64_t now)
{
	int64_t since = pc->prov[p].limited_since_ms;

	return since > 0 && now > since ? now - since : 0;
}

int64_t
pace_wake_at(const struct pace *pc, int64_t now, int64_t wait_ms)
{
	int64_t next = INT64_MAX;

	for (int p = 0; p < pc->n; p++) {
		const struct pace_provider *pp = &pc->prov[p];
		int64_t t;

		if (pp->paused_until_ms > now && pp->paused_until_ms < next)
			next = pp->paused_until_ms;
		/* Only what is still ahead: a moment passed has been acted on
		 * (or nothing waits for it), and waking for it again would spin. */
		if (pp->per_ms > 0 && pp->tokens < 1.0) {
			t = pp->filled_ms + (int64_t)((1.0 - pp->tokens) / pp->per_ms) + 1;
			if (t > now && t < next)
				next = t;
		}
		t = pp->limited_since_ms + wait_ms;
		if (pp->limited_since_ms > 0 && t > now && t < next)
			next = t;
	}
	return next;
}
