/* retry: the retry and failover policy, free of side effects. */
#include "retry.h"

#include <math.h>

#include "config.h"
#include "run.h"
#include "t2istage/plugin.h"

int64_t
retry_backoff_ms(const struct config *cfg, int attempt, int64_t retry_after_ms, double u)
{
	double cap = cfg->retry_backoff * ldexp(1.0, attempt > 30 ? 30 : attempt - 1);
	int64_t ms;

	if (cap > cfg->retry_backoff_max)
		cap = cfg->retry_backoff_max;
	/* Full jitter: clients that failed together do not retry together. */
	ms = (int64_t)(u * cap * 1000.0);
	return ms < retry_after_ms ? retry_after_ms : ms;
}

int
retry_next_provider(const struct run *r, int pos)
{
	for (int k = pos + 1; k < r->nchain; k++)
		if (!r->chain_dead[k])
			return k;
	return -1;
}

bool
retry_transient(int error_class)
{
	return error_class == T2I_ERR_TRANSIENT || error_class == T2I_ERR_RATE_LIMITED;
}

void
retry_decide(const struct config *cfg, const struct run *r, int i, int error_class,
	     int64_t retry_after_ms, double u, struct retry_decision *d)
{
	const struct run_item *it = &r->items[i];

	d->delay_ms = 0;
	d->next_pos = -1;
	if (retry_transient(error_class) && it->attempts < cfg->retry_attempts &&
	    !r->chain_dead[it->chain_pos]) {
		d->action = RETRY_LATER;
		d->delay_ms = retry_backoff_ms(cfg, it->attempts, retry_after_ms, u);
		return;
	}
	if (error_class == T2I_ERR_REJECTED) {
		d->action = RETRY_FAIL;
		return;
	}
	d->next_pos = retry_next_provider(r, it->chain_pos);
	d->action = d->next_pos >= 0 ? RETRY_FAILOVER : RETRY_FAIL;
}

void
retry_rate_limited(const struct config *cfg, const struct run *r, int i, int64_t now,
		   int64_t retry_after_ms, double u, struct retry_decision *d)
{
	const struct run_item *it = &r->items[i];
	int64_t end = it->limited_since_ms + (int64_t)(cfg->retry_rate_limit_wait * 1000.0);

	d->delay_ms = 0;
	d->next_pos = -1;
	if (now < end && !r->chain_dead[it->chain_pos]) {
		d->action = RETRY_LATER;
		d->delay_ms = retry_backoff_ms(cfg, it->limited, retry_after_ms, u);
		if (now + d->delay_ms > end)
			d->delay_ms = end - now;	/* one more try as the wait ends */
		return;
	}
	d->next_pos = retry_next_provider(r, it->chain_pos);
	d->action = d->next_pos >= 0 ? RETRY_FAILOVER : RETRY_FAIL;
}
