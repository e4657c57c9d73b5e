/* stage: the stage semantics of the original stage processor (doc/events.md,
 * "Outcome").  Validation (its four refusals plus our own), planning a run,
 * and the outcome over all the project's storyboards. */
#ifndef T2I_STAGE_H
#define T2I_STAGE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct store;
struct config;
struct events;
struct run;

enum stage_refusal {
	STAGE_OK = 0,
	STAGE_NOT_FOUND,	/* project missing (HTTP 404) */
	STAGE_NOT_READY,	/* storyboard stage not completed (409) */
	STAGE_NO_STORYBOARDS,	/* none, or none of the requested (422) */
	STAGE_NO_PROVIDER,	/* no provider configured (422) */
	STAGE_BUSY,		/* a run of the project is processing (409) */
	STAGE_BAD_INPUT,	/* a requested storyboard is not the project's (400) */
	STAGE_INTERNAL		/* the database failed (500) */
};

struct stage_request {
	const char *project_id;
	json_t *storyboard_ids;	/* array of strings, or NULL for all */
	bool missing_only;	/* retry: storyboards without a completed image */
	bool no_cache;
	bool queued;		/* the service has no room: the run waits, queued */
	size_t ahead;		/* queued: runs queued before it */
};

/* Validates the request and plans the run: run row, stage 'processing' (or
 * both 'queued' with r->queued set, for req->queued), one pending image per
 * storyboard, and the first events.  Must be called inside
 * a transaction that the caller rolls back on refusal, so that a refusal
 * writes nothing.  On refusal returns NULL, sets *why and one line in err. */
struct run *stage_start(struct store *st, const struct config *cfg, struct events *ev,
			const struct stage_request *req, enum stage_refusal *why, char *err,
			size_t errlen);

/* A queued run starts: run and stage 'processing', stage_update and info. */
int stage_activate(struct store *st, const struct config *cfg, struct run *r);

/* Once every item is done or failed: run status over the run's items, stage
 * status over all the project's storyboards, then stage_update and done.
 * The events go out even when the database cannot record them (-1): a run
 * always ends with `done`. */
int stage_finish(struct store *st, struct run *r);

/* A run that stopped dispatching (why: a local failure, the database) and
 * whose workers are gone: 'partial' or 'failed' over what it processed,
 * its unfinished storyboards pending, then stage_update and done. */
int stage_halted(struct store *st, struct run *r, const char *why);

/* A cancelled run whose workers are gone: run and stage 'cancelled', its
 * unfinished storyboards pending, then stage_update and done. */
int stage_cancelled(struct store *st, struct run *r);

/* Points item i at its current provider (r->items[i].chain_pos): that
 * provider's options under the user's, and the cache key. */
int stage_bind_provider(const struct config *cfg, struct run *r, int i);

/* The idempotency key of item i's attempts on its current provider: a
 * UUID (hash_uuid) of its image row id, the provider's name and the cache
 * key.  The same for every attempt at that image, after a crash and after
 * a restart (a resumed run keeps its image rows); another for another run,
 * another provider or other parameters. */
void stage_idempotency_key(const struct config *cfg, const struct run *r, int i,
			   char out[37]);

/* generation_params JSON of item i, for its image row. */
char *stage_generation_params(const struct config *cfg, const struct run *r, int i);

/* Fills item i from a storyboard row {id, index, image_prompt,
 * negative_prompt, params}; keeps an image_id already set. */
int stage_fill_item(struct run *r, int i, json_t *sb, json_t *pr_params,
		    const struct config *cfg);

/* The providers a run of project tries, in order (config indices); chain
 * holds RUN_CHAIN_MAX. */
int stage_provider_chain(const struct config *cfg, json_t *project, int *chain);

/* A run of the project is processing, in this process or another live
 * one (a `run` beside `serve`); one left by a dead process is marked
 * interrupted on the way. */
bool stage_project_busy(struct store *st, const char *project_id);

/* completed / partial / failed from counts. */
const char *stage_outcome(int ok, int total);

#endif
