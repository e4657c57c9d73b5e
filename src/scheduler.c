/* scheduler: batches for free worker slots. */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "config.h"
#include "log.h"
#include "msg.h"
#include "run.h"
#include "workers.h"

/* Pops up to batch_size items of r, serving cache hits at once. */
static int
take_items(const struct batch_ctx *c, struct run *r, int *items)
{
	int n = 0, i;

	while (n < c->cfg->batch_size && (i = run_queue_pop(r)) >= 0) {
		if (r->use_cache && batch_serve_cached(c, r, i))
			continue;
		r->items[i].state = ITEM_DISPATCHED;
		items[n++] = i;
	}
	return n;
}

static char *
encode_batch(const struct batch_ctx *c, struct run *r, const int *items, int n, size_t *len)
{
	const struct config_provider *p = &c->cfg->providers[r->provider];
	struct msg_item *mi = calloc((size_t)n, sizeof(*mi));
	struct msg_batch b = {
		.plugin_path = p->plugin_path, .storage_dir = c->cfg->storage_dir,
		.thumbnails = c->cfg->thumbnails, .timeout = c->cfg->timeout,
		.connect_timeout = c->cfg->connect_timeout,
		.provider = p->name, .api_url = p->api_url, .api_key = p->api_key,
		.model = p->model, .nitems = (size_t)n, .items = mi,
	};
	char *line;

	if (mi == NULL)
		return NULL;
	for (int k = 0; k < n; k++) {
		const struct run_item *it = &r->items[items[k]];

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
	free(mi);
	return line;
}

static void
put_back(struct run *r, const int *items, int n)
{
	for (int k = n - 1; k >= 0; k--)
		run_queue_push_front(r, items[k]);
}

/* One batch of run r into slot. */
static int
start_batch(const struct batch_ctx *c, struct workers *w, int slot, struct run *r)
{
	int *items = malloc((size_t)c->cfg->batch_size * sizeof(*items));
	int n;
	size_t len;
	char *line;

	if (items == NULL)
		return -1;
	if ((n = take_items(c, r, items)) == 0) {
		free(items);
		return 0;
	}
	line = encode_batch(c, r, items, n, &len);
	if (line == NULL || workers_spawn(w, slot, r, r->provider, items, n, line, len,
					  workers_now_ms() +
						  (int64_t)(c->cfg->timeout * 1000)) < 0) {
		put_back(r, items, n);
		free(items);
		free(line);
		return -1;
	}
	free(line);
	return 1;
}

static int
provider_free(const struct batch_ctx *c, const struct workers *w, const struct run *r)
{
	return w->provider_busy[r->provider] < c->cfg->providers[r->provider].concurrency;
}

int
scheduler_dispatch(struct scheduler *sch, const struct batch_ctx *c, struct workers *w,
		   struct run **runs, size_t nruns)
{
	int started = 0, slot;
	size_t idle = 0;

	/* Each pass gives one run one batch; stop after a full round in which
	 * no run could start anything. */
	while (nruns > 0 && idle < nruns && (slot = workers_free_slot(w)) >= 0) {
		struct run *r = runs[sch->cursor % nruns];
		int rc = 0;

		sch->cursor = (sch->cursor + 1) % nruns;
		if (r->qlen > 0 && !r->finished && provider_free(c, w, r))
			rc = start_batch(c, w, slot, r);
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
