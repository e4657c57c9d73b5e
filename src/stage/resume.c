/* resume: rebuilding a run from the database after a restart. */
#include "resume.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "events.h"
#include "project.h"
#include "run.h"
#include "stage.h"
#include "store.h"

/* Which chain position the item's current provider is at (0 if gone). */
static int
chain_pos_of(const struct config *cfg, const struct run *r, const char *provider)
{
	for (int k = 0; k < r->nchain; k++)
		if (strcmp(cfg->providers[r->chain[k]].name, provider) == 0)
			return k;
	return 0;
}

/* Sets item i's state from its image row.  A shared run's pending and
 * processing rows are left as they are: the database's, or another
 * instance's. */
static void
restore_state(struct store *st, struct run *r, int i, const char *status)
{
	struct run_item *it = &r->items[i];

	if (r->shared && strcmp(status, "completed") != 0 && strcmp(status, "failed") != 0) {
		it->state = ITEM_QUEUED;
		return;
	}
	if (strcmp(status, "completed") == 0) {
		it->state = ITEM_DONE;
		it->begun = true;
		r->succeeded++;
		r->started++;
		json_array_append_new(r->image_ids, json_string(it->image_id));
	} else if (strcmp(status, "failed") == 0) {
		it->state = ITEM_FAILED;
		it->begun = true;
		r->failed++;
		r->started++;
	} else {
		/* pending, or processing when the process died: again. */
		store_image_reset(st, it->image_id);
		run_queue_push_back(r, i);
	}
}

static int
fill_items(struct store *st, const struct config *cfg, struct run *r, json_t *items,
	   json_t *project)
{
	json_t *pp = json_object_get(project, "params");
	size_t i;
	json_t *row;

	json_array_foreach(items, i, row) {
		struct run_item *it = &r->items[i];
		const char *img = json_string_value(json_object_get(row, "image_id"));

		snprintf(it->image_id, sizeof(it->image_id), "%s", img);
		it->chain_pos = chain_pos_of(cfg, r,
					     json_string_value(json_object_get(row, "provider")));
		if (stage_fill_item(r, (int)i, row, pp, cfg) < 0)
			return -1;
		restore_state(st, r, (int)i, json_string_value(json_object_get(row, "status")));
	}
	return 0;
}

static void
copy_header(struct run *r, json_t *row, const struct config *cfg)
{
	snprintf(r->id, sizeof(r->id), "%s", json_string_value(json_object_get(row, "id")));
	snprintf(r->project_id, sizeof(r->project_id), "%s",
		 json_string_value(json_object_get(row, "project_id")));
	snprintf(r->stage_id, sizeof(r->stage_id), "%s",
		 json_string_value(json_object_get(row, "stage_id")));
	snprintf(r->stage_started_at, sizeof(r->stage_started_at), "%s",
		 json_string_value(json_object_get(row, "stage_started_at")));
	r->seq = json_integer_value(json_object_get(row, "last_seq"));
	r->no_cache = json_integer_value(json_object_get(row, "no_cache")) != 0;
	r->use_cache = cfg->cache_enabled && !r->no_cache;
	r->queued = strcmp(json_string_value(json_object_get(row, "status")), "queued") == 0;
}

static struct run *
load(struct store *st, const struct config *cfg, struct events *ev, const char *run_id,
     bool shared, char *err, size_t errlen)
{
	json_t *row = store_query_run(st, run_id), *project = NULL, *items = NULL;
	struct run *r = NULL;

	if (row == NULL ||
	    (project = store_query_project_row(
		     st, json_string_value(json_object_get(row, "project_id")))) == NULL ||
	    (items = store_query_run_items(st, run_id)) == NULL) {
		snprintf(err, errlen, "run %s: its rows are missing", run_id);
		goto out;
	}
	if ((r = run_new(json_array_size(items))) == NULL)
		goto out;
	copy_header(r, row, cfg);
	r->shared = shared;
	if ((r->nchain = stage_provider_chain(cfg, project, r->chain)) == 0) {
		snprintf(err, errlen, "run %s: no provider configured for it", run_id);
		goto fail;
	}
	for (int k = 0; k < r->nchain; k++)
		if (store_provider_id(st, cfg->providers[r->chain[k]].name, r->chain_db_id[k]) < 0)
			goto fail;
	if (fill_items(st, cfg, r, items, project) < 0) {
		snprintf(err, errlen, "run %s: cannot rebuild its storyboards", run_id);
		goto fail;
	}
	r->events = ev;
	if (shared) {
		/* Its requests in flight may be another live instance's. */
		r->check_end = true;
		r->pending_hint = (int)r->nitems - r->succeeded - r->failed;
		goto out;
	}
	store_run_set_pid(st, run_id, (long)getpid());
	/* Requests handed out before the crash may have been sent and paid:
	 * they stay counted against the budgets. */
	store_spend_lost(st, run_id);
	if (r->queued)
		events_info(r, "info", "still queued after a restart: it starts when there is room");
	else
		events_info(r, "warning", "run resumed after a restart: %zu of %zu storyboards to go",
			    r->qlen, r->nitems);
	goto out;
fail:
	run_free(r);
	r = NULL;
out:
	json_decref(row);
	json_decref(project);
	json_decref(items);
	return r;
}

struct run *
resume_run(struct store *st, const struct config *cfg, struct events *ev, const char *run_id,
	   char *err, size_t errlen)
{
	return load(st, cfg, ev, run_id, false, err, errlen);
}

struct run *
resume_join(struct store *st, const struct config *cfg, struct events *ev, const char *run_id,
	    char *err, size_t errlen)
{
	return load(st, cfg, ev, run_id, true, err, errlen);
}
