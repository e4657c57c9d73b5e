/* store: the database, SQLite (a file, the embedded default) or
 * PostgreSQL (a postgresql:// URI, for several instances).  Only the
 * supervisor (and the read-only CLI commands) open it; workers never do.
 * Schema changes are migrations keyed on PRAGMA user_version (SQLite) or
 * the schema_version table (PostgreSQL), the same numbers on both.  Writes
 * happen inside store_begin()/store_commit(), which issue BEGIN IMMEDIATE
 * on SQLite so that a writer never deadlocks on upgrade.  Every function
 * here works on both engines (store_internal.h says how); the few that
 * only several instances need say so. */
#ifndef T2I_STORE_H
#define T2I_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct store;
struct project;
struct project_params;
struct config;

#define STORE_SCHEMA_VERSION 7

/* Opens (creating the file and its directory when create is set) and
 * migrates.  readonly opens an existing database without writing. */
struct store *store_open(const char *path, bool readonly, char *err, size_t errlen);
void store_close(struct store *st);
/* The database the configuration names: cfg->database, a path or a
 * PostgreSQL URI (with cfg->database_password).  Errors name the key and
 * the database (its URI without a password). */
struct store *store_open_config(const struct config *cfg, bool readonly, char *err,
				size_t errlen);

/* PostgreSQL's: what the engine measured of its round trips. */
struct store_stats {
	uint64_t round_trips;	/* answers waited for */
	double wait_total_s;	/* time spent waiting for them */
	double wait_max_s;	/* the longest wait */
	uint64_t reconnects;	/* connections made again after a loss */
	unsigned epoch;		/* connections made: a change means one was lost */
	bool connected;
};
void store_stats(const struct store *st, struct store_stats *out);
bool store_is_pg(const struct store *st);
/* True when the database can be used now; a lost PostgreSQL connection is
 * tried again first (with backoff: at most one bounded attempt per call). */
bool store_connected(struct store *st);
/* The transaction in progress, a number no other has had; 0 outside one. */
uint64_t store_tx_serial(const struct store *st);
/* Commits that failed so far (their writes are lost). */
uint64_t store_failed_commits(const struct store *st);

int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);
bool store_in_tx(const struct store *st);
int store_savepoint(struct store *st);
int store_savepoint_release(struct store *st);
void store_savepoint_rollback(struct store *st);

/* The last database error, for messages: on SQLite the first cause of a
 * transaction's failure with its code, "database or disk is full
 * (SQLITE_FULL)". */
const char *store_errmsg(struct store *st);
/* When writes were lost since the last call (a failed COMMIT, or SQLite
 * rolling back by itself after SQLITE_FULL or SQLITE_IOERR): their cause;
 * else NULL. */
const char *store_lost(struct store *st);

/* "2026-11-29T03:54:51.123Z" */
void store_now(char out[32]);

/* --- projects (store_project.c) --- */

bool store_project_exists(struct store *st, const char *project_id);
/* params as JSON object text (malloc'd): only the members that were given. */
char *store_params_json(const struct project_params *pp);
int store_project_import(struct store *st, const struct project *p);
/* Stage status ("completed", ...) into out, or "" when the stage has no row. */
int store_stage_status(struct store *st, const char *project_id, const char *stage_type,
		       char *out, size_t outlen);
/* Sets a stage's status; started_at is set when status is "processing" or
 * "queued" (a run waiting for the service to have room). */
int store_stage_set(struct store *st, const char *project_id, const char *stage_type,
		    const char *status, char stage_id_out[37], char started_at_out[32]);
/* Number of storyboards, and of those with a completed primary image. */
int store_stage_counts(struct store *st, const char *project_id, int *total, int *completed);

/* Mirrors the configured providers into model_providers (no secrets). */
int store_providers_sync(struct store *st, const struct config *cfg);
/* The model_providers row id of a provider name into out[37]. */
int store_provider_id(struct store *st, const char *name, char out[37]);

/* --- runs and images (store_run.c) --- */

struct store_image_meta {
	const char *file_path;
	const char *thumbnail_path;	/* may be NULL */
	const char *sha256;
	const char *mime;
	const char *url;		/* provider URL, may be NULL */
	int width, height;
	int64_t file_size;
};

int store_run_create(struct store *st, const char *run_id, const char *project_id,
		     json_t *storyboard_ids, bool no_cache, int total);
int store_run_finish(struct store *st, const char *run_id, const char *status,
		     int success, int failed);
/* A project's run in status 'processing' or 'queued' into out (""), with
 * its pid. */
int store_run_active(struct store *st, const char *project_id, char out[37], long *pid);
int store_run_set_status(struct store *st, const char *run_id, const char *status);
/* The process now supervising the run (after a restart). */
int store_run_set_pid(struct store *st, const char *run_id, long pid);
int store_event_append(struct store *st, const char *run_id, int64_t seq,
		       const char *type, const char *body);

int store_image_insert(struct store *st, const char *image_id, const char *storyboard_id,
		       const char *run_id, const char *provider_id, const char *params_json,
		       const char *cache_key);
int store_image_processing(struct store *st, const char *image_id);
int store_image_complete(struct store *st, const char *image_id,
			 const struct store_image_meta *m, bool cached);
int store_image_variant(struct store *st, const char *variant_id, const char *primary_id,
			const struct store_image_meta *m);
int store_image_fail(struct store *st, const char *image_id, const char *error);
int store_image_reset(struct store *st, const char *image_id);
/* After a failover: the image row now belongs to another provider. */
int store_image_rebind(struct store *st, const char *image_id, const char *provider_id,
		       const char *params_json, const char *cache_key);

/* A completed image for cache_key: returns 1 and fills the strings (each
 * allocated, free with store_image_meta_free) when found, 0 when not. */
int store_cache_lookup(struct store *st, const char *cache_key, struct store_image_meta *m);
void store_image_meta_free(struct store_image_meta *m);

/* --- provider tasks (store_task.c) --- */

/* A pending provider task is kept per storyboard, provider and generation
 * parameters. */
struct store_task_key {
	const char *storyboard_id;
	const char *provider_id;	/* model_providers.id */
	const char *cache_key;		/* the image's cache key: the parameters */
};

/* Records (or replaces) the state a plugin checkpointed, a JSON object
 * text, for the attempt of image_id. */
int store_task_save(struct store *st, const struct store_task_key *k, const char *image_id,
		    const char *state);
/* The state for k into *state (allocated), the task now held by image_id:
 * 1 found, 0 none (*state NULL), -1 error. */
int store_task_take(struct store *st, const struct store_task_key *k, const char *image_id,
		    char **state);
int store_task_clear(struct store *st, const struct store_task_key *k);
/* Every task of the storyboard: its image is complete. */
int store_task_clear_storyboard(struct store *st, const char *storyboard_id);

/* --- read-only views as JSON (store_query.c), for the CLI and HTTP --- */

/* Project with stages, storyboard counts and pending provider tasks
 * (store_query_tasks); NULL when missing. */
json_t *store_query_project(struct store *st, const char *project_id);
/* Every project with its stages and counts. */
json_t *store_query_projects(struct store *st);
/* The pending provider tasks of a project's storyboards, in storyboard
 * order: [{storyboard_id, storyboard_index, image_id, provider, state,
 * checkpoints, created_at, updated_at}]. */
json_t *store_query_tasks(struct store *st, const char *project_id);
/* Generated images of a project, ordered by storyboard position.  Every
 * image view (this, store_query_image, store_query_current_images) gives
 * each image its provider_task: {provider, state, checkpoints, created_at,
 * updated_at} while a plugin polls one for it, else null. */
json_t *store_query_images(struct store *st, const char *project_id);
/* Storyboards of a project (id, index, prompt, negative, params) in order;
 * only ids when want_ids is given (JSON array of strings) and in it; and only
 * those without a completed primary image when missing_only. */
json_t *store_query_storyboards(struct store *st, const char *project_id,
				json_t *want_ids, bool missing_only);
/* Runs left 'processing', oldest first, then those 'queued' in their
 * order: [{id, project_id, status}]. */
json_t *store_query_runs_processing(struct store *st);
/* A run with its last event seq and its project's image_generation stage. */
json_t *store_query_run(struct store *st, const char *run_id);
/* A run's primary images with their storyboards and providers. */
json_t *store_query_run_items(struct store *st, const char *run_id);
/* {"pending": n, "completed": n, ...} over every generated image. */
json_t *store_query_image_counts(struct store *st);
/* Project row: {id, name, params, image_providers} or NULL. */
json_t *store_query_project_row(struct store *st, const char *project_id);

/* --- for the HTTP API (store_query.c) --- */

/* One generated image with its storyboard's project_id; NULL when missing. */
json_t *store_query_image(struct store *st, const char *image_id);
/* The project's latest run id into out: 1 found, 0 none, -1 error. */
int store_run_latest(struct store *st, const char *project_id, char out[37]);
/* The seq of the run's `done` event, 0 when it has none, -1 on error. */
int64_t store_run_done_seq(struct store *st, const char *run_id);
/* Up to limit events of a run after after_seq, in seq order:
 * [{seq, type, body}] with body the event's JSON text; NULL on error. */
json_t *store_events_after(struct store *st, const char *run_id, int64_t after_seq,
			   int limit);

/* --- the spend ledger (store_spend.c) --- */

#define STORE_DAY_MAX 16	/* "2026-11-29", NUL included */

/* Today in the service's time zone: TZ when set, else UTC. */
void store_spend_today(char out[STORE_DAY_MAX]);

struct store_spend_req {
	const char *provider;	/* its name */
	const char *run_id;
	const char *image_id;
	const char *day;	/* store_spend_today() at the reservation */
	double cost;		/* reserved until the answer settles it */
};

/* A request about to be handed out: its row id, or -1. */
int64_t store_spend_reserve(struct store *st, const struct store_spend_req *q);
/* The answer: outcome completed, failed, refused or local; charged keeps
 * the cost reserved, else the request cost nothing.  error_class may be
 * NULL. */
int store_spend_settle(struct store *st, int64_t id, const char *outcome,
		       const char *error_class, bool charged);
/* The request was never sent: its row goes. */
int store_spend_release(struct store *st, int64_t id);
/* A run resumed after a crash: its requests still reserved may have been
 * sent; they stay counted, as 'unknown'. */
int store_spend_lost(struct store *st, const char *run_id);

struct store_spend_sums {
	double total;		/* spent and reserved */
	double reserved;	/* of which not yet answered */
};

/* A provider's spend in a run (run_id given) or on a day. */
int store_spend_sum(struct store *st, const char *provider, const char *run_id,
		    const char *day, struct store_spend_sums *out);
/* {"run_id", "run": {provider: {requests, spent}}, "day", "today": {...}}
 * (run_id may be NULL: "run" is then empty). */
json_t *store_query_spend(struct store *st, const char *run_id, const char *day);
/* [{provider, requests, spent, images}] over the whole ledger, images
 * counting the requests that delivered one. */
json_t *store_spend_totals(struct store *st);

/* --- the webhook outbox (store_webhook.c) --- */

/* Times are Unix milliseconds (wall clock): they must mean the same after
 * a restart. */

/* Queues the event (run_id, seq), already appended, for endpoint. */
int store_webhook_queue(struct store *st, const char *webhook_id, const char *endpoint,
			const char *run_id, int64_t seq, int64_t now_ms);

struct store_webhook_row {
	char webhook_id[48];
	char *endpoint;		/* malloc'd */
	char *body;		/* malloc'd: the event JSON exactly as stored */
	size_t body_len;
	int attempts;		/* made so far */
	int64_t queued_ms;
};

/* Up to max pending rows due at now_ms, earliest first (only run_id's
 * when it is not NULL): the number filled, or -1. */
int store_webhook_due(struct store *st, int64_t now_ms, const char *run_id,
		      struct store_webhook_row *rows, int max);
void store_webhook_row_free(struct store_webhook_row *r);
/* Leaves a pending row alone until until_ms: it is being sent (a crash
 * before the answer makes it due again then). */
int store_webhook_lease(struct store *st, const char *webhook_id, int64_t until_ms);
/* One attempt's outcome: delivered (2xx), failed with the next attempt at
 * next_ms, or failed and given up (next_ms < 0).  error may be NULL. */
int store_webhook_delivered(struct store *st, const char *webhook_id, long http_status,
			    int64_t now_ms);
int store_webhook_failed(struct store *st, const char *webhook_id, long http_status,
			 const char *error, int64_t now_ms, int64_t next_ms);
/* The earliest next attempt after after_ms of any pending row, INT64_MAX
 * when none. */
int64_t store_webhook_next_due(struct store *st, int64_t after_ms);
/* Pending rows (only run_id's when not NULL) due at or before before_ms;
 * -1 on error. */
long store_webhook_pending(struct store *st, const char *run_id, int64_t before_ms);

/* --- version 2 of the HTTP API --- */

#define STORE_CURSOR_MAX 128	/* bytes of a page cursor, NUL included */

/* At most limit (>= 1) projects, newest first, after the cursor after (NULL:
 * from the newest), each as store_query_project.  next gets the cursor of
 * the page's last project when more follow, else "".  NULL on error, with
 * *bad_cursor set when after is no cursor of ours. */
json_t *store_query_project_page(struct store *st, const char *after, int limit,
				 char next[STORE_CURSOR_MAX], bool *bad_cursor);
/* A run as the API shows it: {id, project_id, status, storyboard_ids,
 * no_cache, total, success_count, failed_count, last_seq, started_at,
 * finished_at}; NULL when missing. */
json_t *store_query_run_view(struct store *st, const char *run_id);
/* --- pages of the long lists (store_page.c, store_query.c) ---
 *
 * Each gives at most limit (>= 1) items after the cursor after (NULL: from
 * the first), and next gets the cursor of the page's last item when more
 * follow, else "".  NULL on error, with *bad_cursor set when after is no
 * cursor of that list (one of another list included). */

/* A project's storyboards in order, each {id, index, image_prompt,
 * negative_prompt, params, image}: image is its current image (its latest
 * completed primary one, else its latest primary one) or null. */
json_t *store_page_storyboards(struct store *st, const char *project_id, const char *after,
			       int limit, char next[STORE_CURSOR_MAX], bool *bad_cursor);
/* Every image row of a project, by storyboard, each as store_query_images. */
json_t *store_page_images(struct store *st, const char *project_id, const char *after,
			  int limit, char next[STORE_CURSOR_MAX], bool *bad_cursor);
/* A project's runs, newest first, each as store_query_run_view. */
json_t *store_page_runs(struct store *st, const char *project_id, const char *after, int limit,
			char next[STORE_CURSOR_MAX], bool *bad_cursor);
/* A run's events in seq order: [{seq, type, body}], body the event's JSON
 * text. */
json_t *store_page_events(struct store *st, const char *run_id, const char *after, int limit,
			  char next[STORE_CURSOR_MAX], bool *bad_cursor);
/* A storyboard of the project {id, index, image_prompt, negative_prompt,
 * params}, or NULL. */
json_t *store_query_storyboard(struct store *st, const char *project_id,
			       const char *storyboard_id);

/* (store_edit.c) The given columns of a storyboard; NULL leaves one as it
 * is.  params_json is an object's text. */
int store_storyboard_update(struct store *st, const char *storyboard_id,
			    const char *image_prompt, const char *negative_prompt,
			    const char *params_json);
/* The image files (and thumbnails) of the project that no other project's
 * image uses: a JSON array of paths; NULL on error. */
json_t *store_project_files(struct store *st, const char *project_id);
/* The project and every row that belongs to it. */
int store_project_delete(struct store *st, const char *project_id);

/* --- several instances on one PostgreSQL (store_cluster.c, store_listen.c) ---
 * PostgreSQL only (-1 or NULL on SQLite); times are wall-clock Unix ms
 * passed in as "now".  sup/cluster.h says how they fit together. */

struct store_instance {
	const char *name, *host;
	long pid;
	const char *providers;	/* the configured providers' names, sorted, comma-separated */
	const char *marker;	/* the token of its marker file in storage.dir */
};

int store_instance_upsert(struct store *st, const struct store_instance *in, int64_t now_ms);
/* Rows changed: 0 when the instance's row is gone. */
int store_instance_heartbeat(struct store *st, const char *name, int64_t now_ms);
int store_instance_remove(struct store *st, const char *name);
/* Every instance row: [{name, host, pid, started_ms, heartbeat_ms,
 * providers, storage_marker}]. */
json_t *store_instances(struct store *st);

struct store_claim_req {
	const char *run_id;
	const char *provider_id;	/* model_providers.id */
	int max;			/* generations to claim at most */
	int batches_max;		/* the provider's concurrency: batches in flight everywhere */
	const char *owner;		/* the instance */
	const char *token;		/* this batch's lease token */
	int64_t now_ms, lease_ms;
	bool first_of_duplicates;	/* identical requests wait for the first (the cache) */
};
struct store_claim {
	char image_id[37];
	int attempts;			/* on its current provider so far */
};
/* Takes the provider's row lock for this transaction, without waiting: 1
 * held, 0 another instance holds it (it is claiming; try again soon), -1
 * error.  What limits the provider across instances is read and written
 * under it: its batches with live leases (store_claim), its spend
 * (store_spend_sum, store_spend_reserve) and its rate bucket. */
int store_provider_lock(struct store *st, const char *provider_id);
/* Claims up to q->max runnable generations of the run on the provider
 * (pending, primary, ready), oldest first, skipping rows another instance
 * holds, and only while the provider has fewer than q->batches_max
 * batches with live leases; under the provider's lock (taken first).
 * Returns how many, -1 on error. */
int store_claim(struct store *st, const struct store_claim_req *q, struct store_claim *out);
/* The provider's rate bucket (one token at most, per_ms tokens a
 * millisecond of the wall clock) brought up to now_ms: its tokens. */
int store_rate_refill(struct store *st, const char *provider_id, int64_t now_ms, double per_ms,
		      double *tokens);
/* n tokens of it taken, for the requests of a batch claimed. */
int store_rate_take(struct store *st, const char *provider_id, int n);
/* Extends the leases of the batches whose tokens are listed (an array
 * literal, "{t1,t2}"): those whose workers are alive; the rows renewed. */
int store_lease_renew(struct store *st, const char *tokens, int64_t now_ms, int64_t lease_ms);
/* Locks the row for this transaction if it is still leased under token:
 * 1 held, 0 the lease is lost, -1 error.  Every write of a result first. */
int store_lease_hold(struct store *st, const char *image_id, const char *token);
/* Expired leases back to pending: the rows taken over. */
int store_rescue(struct store *st, int64_t now_ms);
/* Every lease of owner back to pending (its claims were lost with a
 * transaction, or it is a dead instance of this host). */
int store_release_owner(struct store *st, const char *owner);
/* A retry waits: no instance claims the row before ready_ms. */
int store_image_ready_at(struct store *st, const char *image_id, int64_t ready_ms);

/* The run's next event seq from its counter row (locked until commit) and
 * the event itself, in one round trip: body's envelope begins
 * {"type":"TYPE","seq":0, and its 0 becomes the seq handed out, which is
 * returned (-1 on error). */
int64_t store_event_append_next(struct store *st, const char *run_id, const char *type,
				const char *body);
/* Counts the storyboard of image_id as begun (once): the run's storyboards
 * begun so far, -1 on error. */
int store_run_begun(struct store *st, const char *run_id, const char *image_id);

struct store_tally {
	int completed, failed, pending, processing;	/* the run's primary images */
	bool cancel_requested;
};
int store_run_tally(struct store *st, const char *run_id, struct store_tally *t);
/* The run's completed primary images, as done.data lists them. */
json_t *store_run_completed_ids(struct store *st, const char *run_id);
/* 1 when this transaction is the one that ends the run, 0 another did. */
int store_run_end_claim(struct store *st, const char *run_id);
/* Several instances: the oldest queued run becomes processing, unless
 * another instance is starting it: 1 with its id, 0 none, -1 error. */
int store_run_activate_next(struct store *st, char id[37]);
/* Asks every instance to cancel the run (NOTIFY run:cancel at commit). */
int store_run_cancel_request(struct store *st, const char *run_id);

/* A connection of its own that LISTENs for the instances' notifications:
 * "RUN_ID:SEQ" for each event committed, "RUN_ID:cancel". */
struct store_listen;
struct store_listen *store_listen_open(const struct config *cfg, char *err, size_t errlen);
void store_listen_close(struct store_listen *l);
/* Its socket, -1 while it is not connected. */
int store_listen_fd(const struct store_listen *l);
/* Reconnects when lost and due (backoff): returns 1 when it has just
 * (re)connected, so that the caller looks at what it may have missed. */
int store_listen_tick(struct store_listen *l);
/* Hands each notification received to fn; -1 when the connection was lost. */
int store_listen_read(struct store_listen *l, void (*fn)(void *arg, const char *payload),
		      void *arg);

#endif
