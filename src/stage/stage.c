/* stage: validation, planning and outcome of the image_generation stage. */
#include "stage.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "events.h"
#include "hash.h"
#include "imgsize.h"
#include "jsontext.h"
#include "log.h"
#include "project.h"
#include "run.h"
#include "store.h"

const char *
stage_outcome(int ok, int total)
{
	if (ok == total)
		return "completed";
	return ok == 0 ? "failed" : "partial";
}

static const char *
param_str(json_t *sb_params, json_t *pr_params, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(sb_params, key));

	if (v == NULL)
		v = json_string_value(json_object_get(pr_params, key));
	return v != NULL ? v : dflt;
}

/* The project's options, overridden by the storyboard's: what the user
 * asked for, before any provider's own options. */
static char *
user_options(json_t *sb_params, json_t *pr_params)
{
	json_t *o = json_object();
	char *text;

	json_object_update(o, json_object_get(pr_params, "options"));
	json_object_update(o, json_object_get(sb_params, "options"));
	text = jsontext_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return text;
}

/* The provider's options with the user's on top; canonical text (sorted
 * keys), as it feeds the cache key. */
static char *
provider_options(const struct config_provider *p, const char *user)
{
	json_t *o = json_loads(p->options_json, 0, NULL);
	json_t *u = json_loads(user, 0, NULL);
	char *text;

	if (o == NULL)
		o = json_object();
	json_object_update(o, u);
	text = jsontext_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	json_decref(u);
	return text;
}

/* The options as the cache key hashes them: jansson's own text, with 17
 * digits per real, which is what keys were made of before the options kept
 * their shortest text (jsontext.h).  Equal doubles give equal text either
 * way; this one keeps the images stored by earlier versions reachable. */
static char *
cache_options(const char *options_json)
{
	json_t *o = json_loads(options_json, 0, NULL);
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(o);
	return text;
}

static void
cache_key(const struct config_provider *p, const struct run_item *it, char out[65])
{
	char *opts = cache_options(it->options_json);
	json_t *a = opts != NULL ? json_pack("[ss ss ii s]", p->name, p->model, it->prompt,
					     it->negative_prompt, it->width, it->height, opts)
				 : NULL;
	char *text = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;

	free(opts);
	json_decref(a);
	/* Only out of memory gets here; an empty key then matches nothing. */
	if (text == NULL) {
		memset(out, 0, 65);
		return;
	}
	hash_sha256_hex(text, strlen(text), out);
	free(text);
}

void
stage_idempotency_key(const struct config *cfg, const struct run *r, int i, char out[37])
{
	const struct run_item *it = &r->items[i];
	char text[37 + 1 + 256 + 1 + 65];

	/* Newlines cannot occur in a UUID, a provider name or a hex key: the
	 * three parts cannot run into each other. */
	snprintf(text, sizeof(text), "%s\n%s\n%s", it->image_id,
		 cfg->providers[run_provider(r, i)].name, it->cache_key);
	hash_uuid(text, strlen(text), out);
}

char *
stage_generation_params(const struct config *cfg, const struct run *r, int i)
{
	const struct config_provider *p = &cfg->providers[run_provider(r, i)];
	const struct run_item *it = &r->items[i];
	json_t *o = json_pack("{ss ss ss ss si si so ss}", "provider", p->name, "model", p->model,
			      "ratio", it->ratio, "resolution", it->resolution, "width",
			      it->width, "height", it->height, "options",
			      json_loads(it->options_json, 0, NULL), "negative_prompt",
			      it->negative_prompt);
	char *text = o != NULL ? jsontext_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return text;
}

int
stage_bind_provider(const struct config *cfg, struct run *r, int i)
{
	const struct config_provider *p = &cfg->providers[run_provider(r, i)];
	struct run_item *it = &r->items[i];
	char *opts = provider_options(p, it->user_options_json);

	if (opts == NULL)
		return -1;
	free(it->options_json);
	it->options_json = opts;
	cache_key(p, it, it->cache_key);
	return 0;
}

/* Fills item i of r from a storyboard row. */
int
stage_fill_item(struct run *r, int i, json_t *sb, json_t *pr_params, const struct config *cfg)
{
	struct run_item *it = &r->items[i];
	json_t *sp = json_object_get(sb, "params");
	const char *ratio = param_str(sp, pr_params, "ratio", cfg->ratio);
	const char *res = param_str(sp, pr_params, "resolution", cfg->resolution);

	snprintf(it->storyboard_id, sizeof(it->storyboard_id), "%s",
		 json_string_value(json_object_get(sb, "id")));
	if (it->image_id[0] == '\0')
		project_uuid(it->image_id);
	it->index = (int)json_integer_value(json_object_get(sb, "index"));
	it->prompt = strdup(json_string_value(json_object_get(sb, "image_prompt")));
	it->negative_prompt = strdup(json_string_value(json_object_get(sb, "negative_prompt")));
	it->user_options_json = user_options(sp, pr_params);
	snprintf(it->ratio, sizeof(it->ratio), "%s", ratio);
	snprintf(it->resolution, sizeof(it->resolution), "%s", res);
	if (it->prompt == NULL || it->negative_prompt == NULL || it->user_options_json == NULL ||
	    !imgsize_lookup(it->ratio, it->resolution, &it->width, &it->height))
		return -1;
	return stage_bind_provider(cfg, r, i);
}

/* The original's choice, in order: the project's image_providers that are
 * configured, then the provider marked default.  The run tries them in
 * that order when one fails for good. */
int
stage_provider_chain(const struct config *cfg, json_t *project, int *chain)
{
	json_t *list = json_object_get(project, "image_providers");
	const struct config_provider *d = config_default_provider(cfg);
	int n = 0;
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		const struct config_provider *p = config_provider(cfg, json_string_value(v));

		if (p != NULL && n < RUN_CHAIN_MAX - 1)
			chain[n++] = (int)(p - cfg->providers);
	}
	if (d != NULL) {
		int di = (int)(d - cfg->providers);
		bool seen = false;

		for (int k = 0; k < n; k++)
			seen = seen || chain[k] == di;
		if (!seen)
			chain[n++] = di;
	}
	return n;
}

/* Every requested id must be a storyboard of the project. */
static int
check_requested(struct store *st, const struct stage_request *req, char *err, size_t errlen)
{
	json_t *all = store_query_storyboards(st, req->project_id, NULL, false);
	size_t i, j;
	json_t *want, *sb;
	int rc = 0;

	json_array_foreach(req->storyboard_ids, i, want) {
		const char *id = json_string_value(want);
		bool found = false;

		json_array_foreach(all, j, sb)
			if (id != NULL && strcmp(json_string_value(json_object_get(sb, "id")), id) == 0)
				found = true;
		if (!found) {
			snprintf(err, errlen, "storyboard %s is not in project %s",
				 id != NULL ? id : "(not a string)", req->project_id);
			rc = -1;
			break;
		}
	}
	json_decref(all);
	return rc;
}

/* A run left 'processing' by a process that no longer exists is marked
 * interrupted; a live one makes this request wait its turn. */
bool
stage_project_busy(struct store *st, const char *project_id)
{
	char run_id[37];
	long pid;

	if (store_run_active(st, project_id, run_id, &pid) < 0 || run_id[0] == '\0')
		return false;
	/* Several instances: a pid of another host says nothing; a run whose
	 * instances died is taken up by the others. */
	if (store_is_pg(st))
		return true;
	if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		return true;
	store_run_set_status(st, run_id, "interrupted");
	return false;
}

static enum stage_refusal
validate(struct store *st, const struct config *cfg, const struct stage_request *req,
	 json_t *project, struct run *chain, char *err, size_t errlen)
{
	char status[32];

	if (project == NULL) {
		snprintf(err, errlen, "project %s not found", req->project_id);
		return STAGE_NOT_FOUND;
	}
	store_stage_status(st, req->project_id, "storyboard", status, sizeof(status));
	if (strcmp(status, "completed") != 0) {
		snprintf(err, errlen, "project %s: storyboard stage is %s, not completed",
			 req->project_id, status[0] ? status : "missing");
		return STAGE_NOT_READY;
	}
	if (req->storyboard_ids != NULL && check_requested(st, req, err, errlen) < 0)
		return STAGE_BAD_INPUT;
	if ((chain->nchain = stage_provider_chain(cfg, project, chain->chain)) == 0) {
		snprintf(err, errlen, "project %s: no image provider configured", req->project_id);
		return STAGE_NO_PROVIDER;
	}
	if (stage_project_busy(st, req->project_id)) {
		snprintf(err, errlen, "project %s: a run is already processing", req->project_id);
		return STAGE_BUSY;
	}
	return STAGE_OK;
}

/* Builds the run's items and their pending image rows. */
static struct run *
plan(struct store *st, const struct config *cfg, const struct run *chain, json_t *project,
     json_t *sbs, const struct stage_request *req)
{
	struct run *r = run_new(json_array_size(sbs));
	json_t *pp = json_object_get(project, "params");
	char *gp;

	if (r == NULL)
		return NULL;
	project_uuid(r->id);
	snprintf(r->project_id, sizeof(r->project_id), "%s", req->project_id);
	memcpy(r->chain, chain->chain, sizeof(r->chain));
	r->nchain = chain->nchain;
	r->no_cache = req->no_cache;
	r->use_cache = cfg->cache_enabled && !req->no_cache;
	r->shared = cfg->database_pg;
	r->pending_hint = (int)r->nitems;
	for (int k = 0; k < r->nchain; k++)
		if (store_provider_id(st, cfg->providers[r->chain[k]].name, r->chain_db_id[k]) < 0)
			goto fail;
	if (store_run_create(st, r->id, r->project_id, req->storyboard_ids, req->no_cache,
			     (int)r->nitems) < 0)
		goto fail;
	for (size_t i = 0; i < r->nitems; i++) {
		if (stage_fill_item(r, (int)i, json_array_get(sbs, i), pp, cfg) < 0)
			goto fail;
		gp = stage_generation_params(cfg, r, (int)i);
		if (store_image_insert(st, r->items[i].image_id, r->items[i].storyboard_id, r->id,
				       r->chain_db_id[0], gp, r->items[i].cache_key) < 0) {
			free(gp);
			goto fail;
		}
		free(gp);
	}
	/* Duplicates in one run: a shared run's go to any instance, which
	 * claims only the first of them until it is done (store_claim), and
	 * then serves the others from it. */
	if (r->use_cache && !r->shared)
		run_group_duplicates(r);
	for (size_t i = 0; i < r->nitems; i++)
		if (r->items[i].state != ITEM_WAITING)
			run_queue_push_back(r, (int)i);
	return r;
fail:
	run_free(r);
	return NULL;
}

/* The first events of a run that starts. */
static void
announce(const struct config *cfg, struct run *r)
{
	events_emit(r, "stage_update", json_pack("{so}", "stage",
						 events_stage_object(r, "processing")));
	events_info(r, "info", "generating images for %zu storyboards with provider %s",
		    r->nitems, cfg->providers[r->chain[0]].name);
}

static void
announce_queued(struct run *r, size_t ahead)
{
	events_emit(r, "stage_update", json_pack("{so}", "stage",
						 events_stage_object(r, "queued")));
	events_info(r, "info", "queued: the service processes as many runs as it can at once; "
		    "this one starts when there is room (%zu queued before it)", ahead);
}

int
stage_activate(struct store *st, const struct config *cfg, struct run *r)
{
	int rc = 0;

	if (store_run_set_status(st, r->id, "processing") < 0 ||
	    store_stage_set(st, r->project_id, "image_generation", "processing", r->stage_id,
			    r->stage_started_at) < 0)
		rc = -1;
	announce(cfg, r);
	return rc;
}

struct run *
stage_start(struct store *st, const struct config *cfg, struct events *ev,
	    const struct stage_request *req, enum stage_refusal *why, char *err, size_t errlen)
{
	json_t *project = store_query_project_row(st, req->project_id);
	struct run chain = { .nchain = 0 };
	json_t *sbs = NULL;
	struct run *r = NULL;
	const char *status;

	*why = validate(st, cfg, req, project, &chain, err, errlen);
	if (*why != STAGE_OK)
		goto out;
	sbs = store_query_storyboards(st, req->project_id, req->storyboard_ids, req->missing_only);
	if (sbs == NULL || json_array_size(sbs) == 0) {
		*why = STAGE_NO_STORYBOARDS;
		snprintf(err, errlen, "project %s: no storyboards%s", req->project_id,
			 req->missing_only ? " without a completed image" : "");
		goto out;
	}
	status = req->queued ? "queued" : "processing";
	if ((r = plan(st, cfg, &chain, project, sbs, req)) == NULL ||
	    (req->queued && store_run_set_status(st, r->id, status) < 0) ||
	    store_stage_set(st, req->project_id, "image_generation", status, r->stage_id,
			    r->stage_started_at) < 0) {
		*why = STAGE_INTERNAL;
		snprintf(err, errlen, "project %s: cannot plan the run: %s", req->project_id,
			 store_errmsg(st));
		run_free(r);
		r = NULL;
		goto out;
	}
	r->events = ev;
	r->queued = req->queued;
	if (req->queued)
		announce_queued(r, req->ahead);
	else
		announce(cfg, r);
out:
	json_decref(project);
	json_decref(sbs);
	return r;
}

/* done.data, the original's StageResult.data. */
static json_t *
result_data(const struct run *r)
{
	return json_pack("{si si si sO}", "total_storyboards", (int)r->nitems, "success_count",
			 r->succeeded, "failed_count", r->failed, "generated_image_ids",
			 r->image_ids);
}

/* Records the stage and run statuses, then stage_update and done, which go
 * to the sinks (the terminal, SSE) even when the database cannot take
 * them: a run that cannot be recorded still ends, and says so. */
static int
conclude(struct store *st, struct run *r, const char *stage_status, const char *message,
	 bool success)
{
	int rc = 0;

	if (store_stage_set(st, r->project_id, "image_generation", stage_status, NULL, NULL) < 0 ||
	    store_run_finish(st, r->id, r->status, r->succeeded, r->failed) < 0)
		rc = -1;
	events_emit(r, "stage_update", json_pack("{so}", "stage",
						 events_stage_object(r, stage_status)));
	events_emit(r, "done", json_pack("{ss sb so so}", "message", message, "success", success,
					 "data", result_data(r), "stage",
					 events_stage_object(r, stage_status)));
	r->finished = true;
	return rc;
}

/* A shared run's counts are the database's: every instance's work. */
static int
shared_tally(struct store *st, struct run *r)
{
	struct store_tally t;
	json_t *ids;

	if (!r->shared)
		return 0;
	if (store_run_tally(st, r->id, &t) < 0 || (ids = store_run_completed_ids(st, r->id)) == NULL)
		return -1;
	r->succeeded = t.completed;
	r->failed = t.failed;
	json_decref(r->image_ids);
	r->image_ids = ids;
	return 0;
}

int
stage_finish(struct store *st, struct run *r)
{
	int total = 0, completed = 0;

	if (shared_tally(st, r) < 0)
		return -1;
	snprintf(r->status, sizeof(r->status), "%s",
		 stage_outcome(r->succeeded, r->succeeded + r->failed));
	if (store_stage_counts(st, r->project_id, &total, &completed) < 0) {
		/* The database cannot say: the run's own counts, for the events. */
		total = (int)r->nitems;
		completed = r->succeeded;
	}
	return conclude(st, r, stage_outcome(completed, total),
			r->failed == 0 ? "all images generated"
			: r->succeeded == 0 ? "no image was generated"
					    : "some images failed",
			r->succeeded > 0);
}

int
stage_cancelled(struct store *st, struct run *r)
{
	char msg[96];

	if (shared_tally(st, r) < 0)
		return -1;
	snprintf(r->status, sizeof(r->status), "cancelled");
	snprintf(msg, sizeof(msg), "run cancelled: %d storyboards left pending",
		 (int)r->nitems - r->succeeded - r->failed);
	return conclude(st, r, "cancelled", msg, false);
}

int
stage_halted(struct store *st, struct run *r, const char *why)
{
	int total = 0, completed = 0, left = (int)r->nitems - r->succeeded - r->failed;
	char msg[1200];
	int rc;

	snprintf(r->status, sizeof(r->status), "%s", r->succeeded > 0 ? "partial" : "failed");
	if (store_stage_counts(st, r->project_id, &total, &completed) < 0) {
		total = (int)r->nitems;
		completed = r->succeeded;
	}
	snprintf(msg, sizeof(msg), "run stopped: %s; %d storyboards left pending for "
		 "`t2istage retry`", why, left);
	/* A run some of whose writes were lost is not on record as it went:
	 * failed, whatever it made. */
	if (r->unrecorded)
		snprintf(r->status, sizeof(r->status), "failed");
	rc = conclude(st, r, stage_outcome(completed, total), msg, false);
	if (rc < 0)
		snprintf(r->status, sizeof(r->status), "failed");
	return rc;
}
