/* run: the in-memory run and its queue. */
#include "run.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct run *
run_new(size_t nitems)
{
	struct run *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->items = calloc(nitems ? nitems : 1, sizeof(*r->items));
	r->queue = calloc(nitems ? nitems : 1, sizeof(*r->queue));
	r->image_ids = json_array();
	r->plugin_warnings = json_object();
	if (r->items == NULL || r->queue == NULL || r->image_ids == NULL ||
	    r->plugin_warnings == NULL) {
		run_free(r);
		return NULL;
	}
	r->nitems = nitems;
	for (size_t i = 0; i < nitems; i++) {
		r->items[i].leader = -1;
		r->items[i].next_follower = -1;
	}
	return r;
}

void
run_free(struct run *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; r->items != NULL && i < r->nitems; i++) {
		free(r->items[i].prompt);
		free(r->items[i].negative_prompt);
		free(r->items[i].options_json);
		free(r->items[i].user_options_json);
	}
	for (int k = 0; k < RUN_CHAIN_MAX; k++)
		free(r->chain_why[k]);
	free(r->halt_why);
	free(r->items);
	free(r->queue);
	json_decref(r->image_ids);
	json_decref(r->plugin_warnings);
	json_decref(r->by_image);
	free(r);
}

/* Each item is in the queue at most once, so nitems slots always suffice.
 * A shared run's queue is the database (see run.h). */
void
run_queue_push_back(struct run *r, int item)
{
	r->items[item].state = ITEM_QUEUED;
	if (r->shared)
		return;
	r->queue[(r->qhead + r->qlen) % r->nitems] = item;
	r->qlen++;
	r->items[item].state = ITEM_QUEUED;
}

void
run_queue_push_front(struct run *r, int item)
{
	r->items[item].state = ITEM_QUEUED;
	r->items[item].lease_token[0] = '\0';
	if (r->shared) {
		r->claim_after_ms = 0;	/* it may be ours again at once */
		return;
	}
	r->qhead = (r->qhead + r->nitems - 1) % r->nitems;
	r->queue[r->qhead] = item;
	r->qlen++;
	r->items[item].state = ITEM_QUEUED;
}

int
run_queue_pop(struct run *r)
{
	int item;

	if (r->qlen == 0)
		return -1;
	item = r->queue[r->qhead];
	r->qhead = (r->qhead + 1) % r->nitems;
	r->qlen--;
	return item;
}

int
run_provider(const struct run *r, int i)
{
	return r->chain[r->items[i].chain_pos];
}

int64_t
run_release_due(struct run *r, int64_t now_ms)
{
	int64_t next = INT64_MAX;

	if (r->ndelayed == 0)
		return next;
	for (size_t i = 0; i < r->nitems; i++) {
		struct run_item *it = &r->items[i];

		if (it->state != ITEM_DELAYED)
			continue;
		if (it->ready_ms <= now_ms) {
			r->ndelayed--;
			run_queue_push_front(r, (int)i);
		} else if (it->ready_ms < next) {
			next = it->ready_ms;
		}
	}
	return next;
}

bool
run_complete(const struct run *r)
{
	return (size_t)r->succeeded + (size_t)r->failed == r->nitems;
}

static int
by_key(const void *a, const void *b, void *arg)
{
	const struct run *r = arg;
	const struct run_item *x = &r->items[*(const int *)a];
	const struct run_item *y = &r->items[*(const int *)b];
	int c = strcmp(x->cache_key, y->cache_key);

	return c != 0 ? c : *(const int *)a - *(const int *)b;
}

void
run_group_duplicates(struct run *r)
{
	int *order = malloc((r->nitems ? r->nitems : 1) * sizeof(*order));
	int tail = -1;

	if (order == NULL)
		return;	/* no grouping: duplicates are generated twice, still correct */
	for (size_t i = 0; i < r->nitems; i++)
		order[i] = (int)i;
	qsort_r(order, r->nitems, sizeof(*order), by_key, r);
	for (size_t i = 1; i < r->nitems; i++) {
		struct run_item *prev = &r->items[order[i - 1]];
		struct run_item *it = &r->items[order[i]];
		int leader = prev->leader >= 0 ? prev->leader : order[i - 1];

		/* An empty key (cache_key() out of memory) matches nothing. */
		if (it->cache_key[0] == '\0' || strcmp(prev->cache_key, it->cache_key) != 0)
			continue;
		it->leader = leader;
		it->state = ITEM_WAITING;
		if (prev->leader < 0)
			tail = leader;
		r->items[tail].next_follower = order[i];
		tail = order[i];
	}
	free(order);
}

int
run_take_followers(struct run *r, int leader)
{
	int first = r->items[leader].next_follower;

	r->items[leader].next_follower = -1;
	return first;
}

int
run_item_of_image(struct run *r, const char *image_id)
{
	json_t *v;

	if (r->by_image == NULL) {
		if ((r->by_image = json_object()) == NULL)
			return -1;
		for (size_t i = 0; i < r->nitems; i++)
			json_object_set_new(r->by_image, r->items[i].image_id, json_integer((json_int_t)i));
	}
	v = json_object_get(r->by_image, image_id);
	return v != NULL ? (int)json_integer_value(v) : -1;
}

bool
run_kill_provider(struct run *r, int pos, const char *why)
{
	if (r->chain_dead[pos])
		return false;
	r->chain_dead[pos] = true;
	free(r->chain_why[pos]);
	r->chain_why[pos] = strdup(why);
	return true;
}

const char *
run_dead_why(const struct run *r, int pos)
{
	return r->chain_why[pos] != NULL ? r->chain_why[pos] : "provider unusable";
}

void
run_halt(struct run *r, const char *why)
{
	if (r->halted)
		return;
	r->halted = true;
	r->halt_why = strdup(why);
}

const char *
run_halt_why(const struct run *r)
{
	return r->halt_why != NULL ? r->halt_why : "stopped";
}
