/* run: one execution of the image_generation stage, in memory in the
 * supervisor.  Items are the storyboards of the run; a ring queue holds the
 * items waiting for a worker (a crashed worker's untouched items go back to
 * its front). */
#ifndef T2I_RUN_H
#define T2I_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct events;
struct config;

#define RUN_CHAIN_MAX 17	/* 16 project providers and the default */

enum item_state {
	ITEM_QUEUED = 0,	/* waiting in the queue */
	ITEM_WAITING,		/* same request as another item in flight: served from it */
	ITEM_DISPATCHED,	/* in a worker's batch, not begun */
	ITEM_RUNNING,		/* the worker has begun it */
	ITEM_DELAYED,		/* waiting for its retry time (ready_ms) */
	ITEM_DONE,
	ITEM_FAILED
};

struct run_item {
	char storyboard_id[37];
	char image_id[37];	/* the primary generated_images row of this run */
	int index;		/* 1-based storyboard position in the project */
	char *prompt;
	char *negative_prompt;
	char *user_options_json; /* project's then storyboard's options, merged */
	char *options_json;	/* the current provider's options with those on top */
	char ratio[8];
	char resolution[8];
	int width, height;
	char cache_key[65];
	enum item_state state;
	bool begun;		/* a worker began it at least once */
	int chain_pos;		/* which provider of the run's chain it is on */
	int attempts;		/* attempts on that provider */
	int64_t ready_ms;	/* ITEM_DELAYED: monotonic time of the next attempt */
	int64_t begin_ms;	/* when the current attempt began, for latency */
	int leader;		/* ITEM_WAITING: the item whose image it reuses */
	int next_follower;	/* chain of items waiting on this one, -1 at the end */
	bool task_pending;	/* a provider task is recorded for it (store_task) */
	bool resumed;		/* this attempt was handed a task to poll */
	bool checkpointed;	/* this attempt checkpointed a task: it submitted (paid) */
	int limited;		/* rate-limited answers on this provider */
	int64_t limited_since_ms; /* monotonic: the first of them, 0 none */
	uint64_t epoch;		/* the provider's pace epoch when the attempt began */
	int64_t ledger_id;	/* its request's spend row, 0 none (store_spend) */
	bool progressed;	/* a plugin's progress was told ... */
	int64_t progress_ms;	/* ... at this monotonic time */
	char lease_token[37];	/* shared runs: the lease it is claimed under, "" none */
	uint64_t held_tx;	/* the transaction that holds its row locked, 0 none */
};

struct run {
	/* Fields by size, largest first: the struct holds no padding. */
	size_t nitems;
	struct run_item *items;
	int *queue;		/* ring of item indices, capacity nitems */
	size_t qhead, qlen;
	size_t ndelayed;	/* items in ITEM_DELAYED */
	int64_t seq;		/* last event seq */
	json_t *image_ids;	/* generated_image_ids of done.data */
	char *halt_why;		/* why it halted (malloc'd, NULL out of memory) */
	struct events *events;
	json_t *plugin_warnings; /* the plugins' warnings told so far, as keys */
	/* Several instances on PostgreSQL (sup/cluster.h): the run is shared.
	 * Its generations are claimed from the database, not taken from the
	 * queue (which stays empty: an item put back is the database's
	 * again); its counts and seqs are the database's. */
	int64_t claim_after_ms;	/* monotonic: nothing to claim before this */
	json_t *by_image;	/* image id -> item index, built on first use */
	char *chain_why[RUN_CHAIN_MAX];	/* why it is dead, for the errors (malloc'd) */
	int nchain;
	int started, succeeded, failed;
	int pending_hint;	/* shared: generations left, as last counted */
	/* Providers in the order the run tries them: the project's
	 * image_providers that are configured, then the default. */
	int chain[RUN_CHAIN_MAX];	/* indices into config providers */
	bool no_cache;
	bool use_cache;		/* cache enabled and not no_cache */
	bool finished;
	bool cancelled;		/* asked to stop: ends once its workers are gone */
	bool queued;		/* accepted, waiting for the service to have room */
	bool unrecorded;	/* writes of the run were lost (the database failed) */
	bool halted;		/* dispatches nothing more (a local failure) */
	bool shared;		/* several instances (above) */
	bool check_end;		/* shared: look whether the run is over */
	char status[16];	/* completed / partial / failed, once finished */
	bool chain_dead[RUN_CHAIN_MAX];	/* failed with auth: not asked again */
	bool budget_told[RUN_CHAIN_MAX]; /* the warning that its budget is reached went */
	char stage_started_at[32];
	char id[37];
	char project_id[37];
	char stage_id[37];
	char chain_db_id[RUN_CHAIN_MAX][37];
};

struct run *run_new(size_t nitems);
void run_free(struct run *r);

/* Provider chain position pos is not asked again in this run, because of
 * why (copied).  False when it already was. */
bool run_kill_provider(struct run *r, int pos, const char *why);
/* Why chain position pos is dead, for the errors. */
const char *run_dead_why(const struct run *r, int pos);
/* The run dispatches nothing more, because of why (copied); the first
 * cause stays. */
void run_halt(struct run *r, const char *why);
const char *run_halt_why(const struct run *r);

void run_queue_push_back(struct run *r, int item);
void run_queue_push_front(struct run *r, int item);
int run_queue_pop(struct run *r);	/* -1 when empty */

/* The config provider index item i is on. */
int run_provider(const struct run *r, int i);

/* Moves delayed items whose time has come to the front of the queue;
 * returns the earliest time still pending (INT64_MAX for none). */
int64_t run_release_due(struct run *r, int64_t now_ms);

/* True when every item is done or failed. */
bool run_complete(const struct run *r);

/* Groups items with the same cache key: the first stays queued as leader,
 * the others wait for it instead of spending a second provider call. */
void run_group_duplicates(struct run *r);

/* The items waiting on leader, detached; -1 ends the chain. */
int run_take_followers(struct run *r, int leader);

/* The item whose primary image row is image_id, or -1. */
int run_item_of_image(struct run *r, const char *image_id);

#endif
