/* outcome: applying worker messages and exits to runs. */
#include "outcome.h"
#include "outcome_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "pace.h"
#include "project.h"
#include "retry.h"
#include "spend.h"
#include "stage.h"
#include "run.h"
#include "store.h"
#include "t2istage/plugin.h"
#include "slots.h"
#include "worker.h"

/* A progress event; fraction (a plugin's, from 0 to 1, -1 when it does not
 * know) is left out for the host's own steps, which carry none. */
static void
emit_progress_of(struct run *r, int i, const char *what, json_t *fraction)
{
	struct run_item *it = &r->items[i];
	char msg[300];
	json_t *ev;

	/* current counts storyboards, not attempts: it ends at total.  A
	 * shared run counts them in the database, for every instance. */
	if (!it->begun) {
		it->begun = true;
		if (!r->shared)
			r->started++;
		else if (r->events->st != NULL) {
			int n = store_run_begun(r->events->st, r->id, it->image_id);

			r->started = n >= 0 ? n : r->started;
		}
	}
	snprintf(msg, sizeof(msg), "storyboard %d (%d/%zu): %s", it->index, r->started,
		 r->nitems, what);
	ev = json_pack("{si si ss s{ss si ss}}", "current", r->started, "total", (int)r->nitems,
		       "message", msg, "storyboard", "id", it->storyboard_id, "index", it->index,
		       "image_prompt", it->prompt);
	if (fraction != NULL)
		json_object_set_new(ev, "fraction", fraction);
	events_emit(r, "progress", ev);
}

static void
emit_progress(struct run *r, int i, const char *what)
{
	emit_progress_of(r, i, what, NULL);
}

static json_t *
image_object(const char *id, const struct store_image_meta *m, bool cached)
{
	return json_pack("{ss s:s? si si ss sI s:s? sb}", "id", id, "url", m->url, "width",
			 m->width, "height", m->height, "file_path", m->file_path, "file_size",
			 (json_int_t)m->file_size, "thumbnail_path", m->thumbnail_path, "cached",
			 cached);
}

static void
meta_from_msg(struct store_image_meta *m, const struct msg_image *im)
{
	m->file_path = im->file_path;
	m->thumbnail_path = im->thumbnail_path;
	m->sha256 = im->sha256;
	m->mime = im->mime;
	m->url = im->url;
	m->width = im->width;
	m->height = im->height;
	m->file_size = im->file_size;
}

static void serve_followers(const struct outcome_ctx *c, struct run *r, int leader,
			    const struct store_image_meta *m);

/* A shared run (several instances): item i is still leased under its
 * batch's token, and its row is locked for this transaction; otherwise
 * the lease was lost (this instance froze or lost the database past its
 * lease, and another took the storyboard over) and nothing about it is
 * recorded here, nor told.  Always true for a run of this instance alone. */
static bool
held(const struct outcome_ctx *c, struct run *r, int i)
{
	struct run_item *it = &r->items[i];
	int rc;

	if (!r->shared)
		return true;
	/* Held already in this transaction: locked until it ends. */
	if (it->lease_token[0] != '\0' && it->held_tx != 0 && it->held_tx == store_tx_serial(c->st))
		return true;
	if (it->lease_token[0] != '\0' &&
	    (rc = store_lease_hold(c->st, it->image_id, it->lease_token)) != 0) {
		it->held_tx = rc > 0 ? store_tx_serial(c->st) : 0;
		return rc > 0;
	}
	if (it->lease_token[0] != '\0')
		log_warnx("run %s: storyboard %d: its lease was lost; another instance has it",
			  r->id, it->index);
	it->lease_token[0] = '\0';
	it->state = ITEM_QUEUED;	/* the database's, not ours */
	return false;
}

/* Records item i as completed with image m (and variants) and tells. */
static void
complete_item(const struct outcome_ctx *c, struct run *r, int i, const struct store_image_meta *m,
	      json_t *variants, bool cached)
{
	struct run_item *it = &r->items[i];
	json_t *ev;

	if (store_image_complete(c->st, it->image_id, m, cached) < 0)
		log_errx("run %s: cannot record image %s", r->id, it->image_id);
	/* The storyboard has its image: no attempt is to poll a task again.
	 * (A shared run's attempt was handed whatever task there was.) */
	if ((!r->shared || it->task_pending || cached) &&
	    store_task_clear_storyboard(c->st, it->storyboard_id) < 0)
		log_errx("run %s: cannot clear the provider tasks of storyboard %d", r->id,
			 it->index);
	it->task_pending = false;
	it->state = ITEM_DONE;
	r->succeeded++;
	r->check_end = true;
	json_array_append_new(r->image_ids, json_string(it->image_id));
	ev = json_pack("{ss si so}", "storyboard_id", it->storyboard_id, "storyboard_index",
		       it->index, "image", image_object(it->image_id, m, cached));
	if (variants != NULL && json_array_size(variants) > 0)
		json_object_set(json_object_get(ev, "image"), "variants", variants);
	events_emit(r, "image_generated", ev);
	serve_followers(c, r, i, m);
}

/* Items that waited for the same request as leader get its image. */
static void
serve_followers(const struct outcome_ctx *c, struct run *r, int leader,
		const struct store_image_meta *m)
{
	int f = run_take_followers(r, leader);

	while (f >= 0) {
		int next = r->items[f].next_follower;

		r->items[f].next_follower = -1;
		r->items[f].leader = -1;
		emit_progress(r, f, "same request as an image just made: served from it");
		complete_item(c, r, f, m, NULL, true);
		f = next;
	}
}

void
outcome_fail_item(const struct outcome_ctx *c, struct run *r, int i, const char *cause)
{
	struct run_item *it = &r->items[i];
	int f = run_take_followers(r, i);

	if (store_image_fail(c->st, it->image_id, cause) < 0)
		log_errx("run %s: cannot record failure of %s", r->id, it->image_id);
	it->state = ITEM_FAILED;
	r->failed++;
	r->check_end = true;
	events_error(r, it->storyboard_id, "storyboard %d: %s", it->index, cause);
	if (f < 0)
		return;
	r->items[f].leader = -1;
	for (int k = r->items[f].next_follower; k >= 0; k = r->items[k].next_follower)
		r->items[k].leader = f;
	run_queue_push_front(r, f);
}

/* A plugin that cannot be loaded makes its provider unusable for the run,
 * as a refused credential or exhausted credits do. */
#define CLASS_UNUSABLE T2I_ERR_AUTH

static bool
makes_unusable(int error_class)
{
	return error_class == T2I_ERR_AUTH || error_class == T2I_ERR_QUOTA;
}

static const char *
class_word(int error_class)
{
	const char *w = msg_class_name(error_class);

	return w != NULL ? w : "error";
}

/* Points item i at chain position next, in memory and in its row. */
static void
rebind(const struct outcome_ctx *c, struct run *r, int i, int next)
{
	struct run_item *it = &r->items[i];
	char *gp;

	it->chain_pos = next;
	it->attempts = 0;
	stage_bind_provider(c->cfg, r, i);
	gp = stage_generation_params(c->cfg, r, i);
	store_image_rebind(c->st, it->image_id, r->chain_db_id[next], gp, it->cache_key);
	free(gp);
}

/* Workers of this run already holding batches for the dead provider are
 * stopped: their untouched storyboards go back to the queue uncharged,
 * and are moved to the next provider when dispatched. */
static void
stop_dead_workers(const struct outcome_ctx *c, struct run *r, int provider)
{
	for (int k = 0; k < c->w->nslots; k++) {
		struct slot *sl = &c->w->slots[k];

		if (sl->pid <= 0 || sl->run != r || sl->provider != provider || sl->killed)
			continue;
		sl->stopping = true;
		slots_kill(sl, "provider unusable");
	}
}

/* Every other item still waiting for a provider that just became unusable
 * moves on too, or fails when no provider is left: it is not asked again.
 * A failed item left in the queue is skipped when popped. */
static void
move_off_dead(const struct outcome_ctx *c, struct run *r, int pos)
{
	int next = retry_next_provider(r, pos);

	for (size_t k = 0; k < r->nitems; k++) {
		struct run_item *it = &r->items[k];

		if (it->chain_pos != pos || (it->state != ITEM_QUEUED && it->state != ITEM_DELAYED))
			continue;
		if (next >= 0) {
			rebind(c, r, (int)k, next);
			continue;
		}
		if (it->state == ITEM_DELAYED)
			r->ndelayed--;
		outcome_fail_item(c, r, (int)k, run_dead_why(r, pos));
	}
}

void
outcome_kill_provider(const struct outcome_ctx *c, struct run *r, int pos, const char *why,
		      const char *told)
{
	if (!run_kill_provider(r, pos, why))
		return;
	events_info(r, "warning", "%s; not asked again in this run", told);
	move_off_dead(c, r, pos);
	stop_dead_workers(c, r, r->chain[pos]);
}

bool
outcome_reroute(const struct outcome_ctx *c, struct run *r, int i)
{
	int next;

	outcome_check_rate_wait(c, r, r->items[i].chain_pos);
	if (r->items[i].state == ITEM_FAILED)
		return false;	/* given up with its provider just now */
	if (!r->chain_dead[r->items[i].chain_pos])
		return true;
	if ((next = retry_next_provider(r, r->items[i].chain_pos)) >= 0) {
		rebind(c, r, i, next);
		return true;
	}
	outcome_fail_item(c, r, i, run_dead_why(r, r->items[i].chain_pos));
	return false;
}

void
outcome_failover(const struct outcome_ctx *c, struct run *r, int i, int next, const char *why)
{
	const char *from = c->cfg->providers[run_provider(r, i)].name;

	rebind(c, r, i, next);
	events_info(r, "warning", "storyboard %d: provider %s failed (%s); moving to provider %s",
		    r->items[i].index, from, why, c->cfg->providers[run_provider(r, i)].name);
	run_queue_push_front(r, i);
}

void
outcome_delay(const struct outcome_ctx *c, struct run *r, int i, int64_t delay_ms)
{
	struct run_item *it = &r->items[i];

	it->state = ITEM_DELAYED;
	it->ready_ms = clock_now_ms() + delay_ms;
	r->ndelayed++;
	store_image_reset(c->st, it->image_id);
	if (r->shared) {
		/* Any instance may take the retry, when it is due. */
		store_image_ready_at(c->st, it->image_id, clock_wall_ms() + delay_ms);
		it->lease_token[0] = '\0';
	}
}

/* One attempt at item i failed: retry later, fail over, or fail. */
static void
attempt_failed(const struct outcome_ctx *c, struct run *r, int i, int error_class,
	       int64_t retry_after_ms, const char *cause)
{
	struct run_item *it = &r->items[i];
	int p = run_provider(r, i);
	struct retry_decision d;
	char why[600];

	it->attempts++;
	if (makes_unusable(error_class) && !r->chain_dead[it->chain_pos]) {
		char told[600];

		snprintf(why, sizeof(why), "provider %s is unusable: %s", c->cfg->providers[p].name,
			 cause);
		snprintf(told, sizeof(told), "provider %s is unusable (%s)",
			 c->cfg->providers[p].name, cause);
		outcome_kill_provider(c, r, it->chain_pos, why, told);
	}
	retry_decide(c->cfg, r, i, error_class, retry_after_ms, drand48(), &d);
	snprintf(why, sizeof(why), "%s: %s", class_word(error_class), cause);
	if (d.action == RETRY_LATER) {
		metrics_retry(c->m, c->cfg->providers[p].name);
		outcome_delay(c, r, i, d.delay_ms);
		events_info(r, "warning",
			    "storyboard %d: attempt %d of %d on provider %s failed (%s); "
			    "retrying in %.1f s", it->index, it->attempts, c->cfg->retry_attempts,
			    c->cfg->providers[p].name, why, (double)d.delay_ms / 1000.0);
	} else if (d.action == RETRY_FAILOVER) {
		metrics_failover(c->m, c->cfg->providers[p].name);
		outcome_failover(c, r, i, d.next_pos, why);
	} else {
		outcome_fail_item(c, r, i, cause);
	}
}

int
outcome_serve_cached(const struct outcome_ctx *c, struct run *r, int i)
{
	struct store_image_meta m;
	int found = store_cache_lookup(c->st, r->items[i].cache_key, &m);

	if (found <= 0)
		return 0;
	emit_progress(r, i, "served from the cache");
	complete_item(c, r, i, &m, NULL, true);
	store_image_meta_free(&m);
	return 1;
}

/* The worker waits for this before it sends the request: a supervisor
 * that is frozen, or has lost its lease meanwhile, gets no request sent
 * in its name (it kills the worker instead). */
static int
go_ahead(struct slot *s, const char *image_id)
{
	size_t len;
	char *line = msg_encode_ack(image_id, NULL, &len);

	if (line == NULL || slots_send(s, line, len) < 0)
		log_warnx("worker %ld: cannot send the go-ahead of its request", (long)s->pid);
	free(line);
	return 0;
}

static int
on_begin(const struct outcome_ctx *c, struct slot *s, const struct msg_worker *m)
{
	struct run *r = s->run;
	int i;

	if (s->current >= 0 || s->next >= s->nitems)
		return -1;
	i = s->items[s->next];
	if (strcmp(r->items[i].image_id, m->image_id) != 0)
		return -1;
	if (!held(c, r, i)) {
		/* Another instance has it: this worker must not pay for it too. */
		s->stopping = true;
		slots_kill(s, "lease lost");
		return 0;
	}
	s->current = s->next++;
	r->items[i].state = ITEM_RUNNING;
	r->items[i].begin_ms = clock_now_ms();
	/* Its answer speaks of the provider's limit as it was when the
	 * request went out (pace.h). */
	r->items[i].epoch = pace_epoch(c->pace, s->provider, m->at_ms);
	r->items[i].checkpointed = false;
	s->deadline_ms = slots_deadline(c->cfg->timeout);
	store_image_processing(c->st, r->items[i].image_id);
	if (r->items[i].attempts == 0 && r->items[i].chain_pos == 0) {
		emit_progress(r, i, "generating");
	} else {
		char what[160];

		snprintf(what, sizeof(what), "generating, attempt %d on provider %s",
			 r->items[i].attempts + 1, c->cfg->providers[s->provider].name);
		emit_progress(r, i, what);
	}
	return go_ahead(s, m->image_id);
}

static int
on_image(struct slot *s, struct msg_worker *m)
{
	if (s->current < 0 || s->nimages >= SLOT_IMAGES_MAX ||
	    strcmp(s->run->items[s->items[s->current]].image_id, m->image_id) != 0)
		return -1;
	s->images[s->nimages++] = m->image;	/* ownership moves to the slot */
	memset(&m->image, 0, sizeof(m->image));
	return 0;
}

static void
complete_from_slot(const struct outcome_ctx *c, struct slot *s, int i)
{
	struct store_image_meta pm, vm;
	json_t *variants = json_array();

	meta_from_msg(&pm, &s->images[0]);
	for (int k = 1; k < s->nimages; k++) {
		char vid[37];

		project_uuid(vid);
		meta_from_msg(&vm, &s->images[k]);
		if (store_image_variant(c->st, vid, s->run->items[i].image_id, &vm) == 0)
			json_array_append_new(variants, image_object(vid, &vm, false));
	}
	complete_item(c, s->run, i, &pm, variants, false);
	json_decref(variants);
}

void
outcome_unsent(const struct outcome_ctx *c, struct run *r, int i, int provider)
{
	spend_release(c->st, r, i);
	pace_refund(c->pace, provider, 1);
	if (!held(c, r, i))
		return;
	store_image_reset(c->st, r->items[i].image_id);
	run_queue_push_front(r, i);
}

/* The worker ends its batch after this answer (worker_ends_batch): what it
 * has not begun goes back, uncharged. */
static void
put_back_rest(const struct outcome_ctx *c, struct slot *s)
{
	for (int k = s->nitems - 1; k >= s->next; k--)
		outcome_unsent(c, s->run, s->items[k], s->provider);
	s->next = s->nitems;
}

/* What a failed answer means, by its class. */
static void
result_failed(const struct outcome_ctx *c, struct slot *s, int i, const struct msg_worker *m)
{
	struct run *r = s->run;

	spend_settle(c->st, r, i, m->error_class);
	if (m->error_class != T2I_ERR_RATE_LIMITED)
		pace_answered(c->pace, s->provider);
	if (m->error_class == T2I_ERR_RATE_LIMITED) {
		outcome_rate_limited(c, s, i, m->retry_after_ms, m->message);
	} else if (m->error_class == MSG_ERR_LOCAL) {
		outcome_local_failure(c, s, i, m->message);
	} else if (s->stopping && retry_transient(m->error_class)) {
		/* Told to stop (cancel, shutdown): what it gave up is put back,
		 * as if it had been killed, not charged. */
		store_image_reset(c->st, r->items[i].image_id);
		run_queue_push_front(r, i);
	} else {
		attempt_failed(c, r, i, m->error_class, m->retry_after_ms, m->message);
	}
	if (worker_ends_batch(m->error_class))
		put_back_rest(c, s);
}

static int
on_result(const struct outcome_ctx *c, struct slot *s, const struct msg_worker *m)
{
	struct run_item *it;
	int i, grown;

	if (s->current < 0)
		return -1;
	i = s->items[s->current];
	it = &s->run->items[i];
	if (strcmp(it->image_id, m->image_id) != 0 || (m->ok && s->nimages == 0))
		return -1;
	metrics_latency(c->m, c->cfg->providers[s->provider].name,
			(double)(clock_now_ms() - it->begin_ms) / 1000.0);
	if (m->ok) {
		/* Our request, answered: settled whoever now holds the lease. */
		spend_settle(c->st, s->run, i, -1);
		grown = pace_ok(c->pace, s->provider, it->epoch, clock_now_ms());
		if (grown > 0)
			log_debug("provider %s: at most %d workers now",
				  c->cfg->providers[s->provider].name, grown);
	}
	if (!held(c, s->run, i)) {
		if (!m->ok)
			spend_settle(c->st, s->run, i, m->error_class);
		/* the new owner records the storyboard */
	} else if (m->ok) {
		complete_from_slot(c, s, i);
	} else {
		result_failed(c, s, i, m);
	}
	for (int k = 0; k < s->nimages; k++)
		msg_image_free(&s->images[k]);
	s->nimages = 0;
	s->current = -1;
	s->deadline_ms = slots_deadline(c->cfg->timeout);
	if (s->next >= s->nitems)
		slots_slot_done(c->w, s);
	return 0;
}

/* The item the worker is on, when m is about it; -1 (out of order) else. */
static int
current_item(const struct slot *s, const struct msg_worker *m)
{
	int i;

	if (s->current < 0)
		return -1;
	i = s->items[s->current];
	return strcmp(s->run->items[i].image_id, m->image_id) == 0 ? i : -1;
}

static bool
state_empty(const char *state)
{
	json_t *o = json_loads(state, 0, NULL);
	bool empty = json_object_size(o) == 0;

	json_decref(o);
	return empty;
}

/* A plugin's provider task (a paid submission): committed before the
 * worker hears that it is, so that no later attempt pays for it again.
 * An empty object forgets the task (the provider says it is gone, failed
 * or cancelled). */
static int
on_checkpoint(const struct outcome_ctx *c, struct slot *s, const struct msg_worker *m)
{
	int i = current_item(s, m);
	struct run_item *it;
	struct store_task_key k;
	char why[300] = "";
	bool forget;
	size_t len;
	char *line;
	int rc;

	if (i < 0)
		return -1;
	it = &s->run->items[i];
	k = (struct store_task_key){ it->storyboard_id, s->run->chain_db_id[it->chain_pos],
				     it->cache_key };
	forget = state_empty(m->state);
	/* A new task is a paid submission, whether or not it is recorded. */
	if (!forget)
		it->checkpointed = true;
	if (!held(c, s->run, i))
		rc = -1;
	else
		rc = forget ? store_task_clear(c->st, &k)
			    : store_task_save(c->st, &k, it->image_id, m->state);
	if (rc < 0 || store_commit(c->st) < 0)
		snprintf(why, sizeof(why), "cannot record it: %s", store_errmsg(c->st));
	store_begin(c->st);
	if (why[0] == '\0')
		it->task_pending = !forget;
	else
		log_errx("run %s: storyboard %d: provider task not recorded: %s", s->run->id,
			 it->index, why);
	line = msg_encode_ack(m->image_id, why[0] != '\0' ? why : NULL, &len);
	if (line == NULL || slots_send(s, line, len) < 0)
		log_warnx("worker %ld: cannot send the ack of its checkpoint", (long)s->pid);
	free(line);
	return 0;
}

#define OUTCOME_PROGRESS_MS 1000	/* a plugin's progress: one event a second */

static int
on_progress(struct slot *s, const struct msg_worker *m)
{
	int i = current_item(s, m);
	int64_t now = clock_now_ms();
	struct run_item *it;
	char what[64];

	if (i < 0)
		return -1;
	it = &s->run->items[i];
	if (it->progressed && now - it->progress_ms < OUTCOME_PROGRESS_MS)
		return 0;
	it->progressed = true;
	it->progress_ms = now;
	snprintf(what, sizeof(what), "generating, %d%%", (int)(m->fraction * 100.0 + 0.5));
	emit_progress_of(s->run, i,
			 m->message[0] != '\0' ? m->message : m->fraction >= 0.0 ? what
										 : "generating",
			 m->fraction >= 0.0 ? json_real(m->fraction) : json_null());
	return 0;
}

#define OUTCOME_PLUGIN_WARNINGS_MAX 32	/* distinct plugin warnings per run */

/* A plugin's warning-level log line: a `warning` event, once per run for
 * the same words; a plugin that warns about everything is cut off. */
static int
on_warning(const struct outcome_ctx *c, struct slot *s, const struct msg_worker *m)
{
	const char *prov = c->cfg->providers[s->provider].name;
	struct run *r = s->run;
	size_t seen = json_object_size(r->plugin_warnings);
	char msg[MSG_NOTE_MAX + 160];

	if (current_item(s, m) < 0)
		return -1;
	snprintf(msg, sizeof(msg), "provider %s: %s", prov, m->message);
	if (json_object_get(r->plugin_warnings, msg) != NULL ||
	    seen > OUTCOME_PLUGIN_WARNINGS_MAX)
		return 0;
	json_object_set_new(r->plugin_warnings, msg, json_true());
	if (seen == OUTCOME_PLUGIN_WARNINGS_MAX)
		events_info(r, "warning", "provider %s: more than %d different warnings in this "
			    "run; the others are only logged", prov, OUTCOME_PLUGIN_WARNINGS_MAX);
	else
		events_emit(r, "warning", json_pack("{ss ss}", "message", msg, "provider", prov));
	return 0;
}

/* The plugin cannot run at all: every item of the batch fails with why.
 * A configuration error for the admin, hence the journal as well. */
static void
on_fatal(const struct outcome_ctx *c, struct slot *s, const char *message)
{
	log_errx("run %s: provider %s: plugin refused by worker %ld: %s", s->run->id,
		 c->cfg->providers[s->provider].name, (long)s->pid, message);
	/* Nothing was sent: the plugin never ran. */
	if (s->current >= 0) {
		spend_release(c->st, s->run, s->items[s->current]);
		if (held(c, s->run, s->items[s->current]))
			attempt_failed(c, s->run, s->items[s->current], CLASS_UNUSABLE, 0,
				       message);
	}
	s->current = -1;
	while (s->next < s->nitems) {
		int i = s->items[s->next++];

		spend_release(c->st, s->run, i);
		pace_refund(c->pace, s->provider, 1);
		if (held(c, s->run, i))
			attempt_failed(c, s->run, i, CLASS_UNUSABLE, 0, message);
	}
	slots_slot_done(c->w, s);
}

static int
handle_line(const struct outcome_ctx *c, struct slot *s, const char *line, size_t len)
{
	struct msg_worker m;
	char err[256];
	int rc = -1;

	if (msg_decode_worker(line, len, &m, err, sizeof(err)) < 0) {
		log_warnx("worker %ld: bad message: %s", (long)s->pid, err);
		return -1;
	}
	switch (m.type) {
	case MSG_BEGIN:
		rc = on_begin(c, s, &m);
		break;
	case MSG_IMAGE:
		rc = on_image(s, &m);
		break;
	case MSG_RESULT:
		rc = on_result(c, s, &m);
		break;
	case MSG_FATAL:
		on_fatal(c, s, m.message);
		rc = 0;
		break;
	case MSG_CHECKPOINT:
		rc = on_checkpoint(c, s, &m);
		break;
	case MSG_PROGRESS:
		rc = on_progress(s, &m);
		break;
	case MSG_WARNING:
		rc = on_warning(c, s, &m);
		break;
	}
	if (rc < 0)
		log_warnx("worker %ld: message out of order", (long)s->pid);
	msg_worker_free(&m);
	return rc;
}

int
outcome_handle_lines(const struct outcome_ctx *c, struct slot *s)
{
	char *line;
	size_t len;
	int n = 0, st;

	/* What a worker wrote before it was killed for its deadline or a
	 * stop still counts: above all a checkpoint, a task paid for. */
	while (!s->bad && (st = ipc_next_line(&s->rd, &line, &len)) != IPC_AGAIN) {
		if (st != IPC_LINE || handle_line(c, s, line, len) < 0) {
			slots_kill(s, "bad message from worker");
			s->bad = true;
			break;
		}
		n++;
	}
	return n;
}

void
outcome_settle(const struct outcome_ctx *c, struct slot *s)
{
	struct run *r = s->run;
	char cause[200];

	if (s->current < 0 && s->next >= s->nitems)
		return;
	/* Charge the item in flight, or, when the worker died before beginning
	 * one, the first it was given: each death then settles one item, so a
	 * plugin that always crashes still lets the run end. */
	if (s->stopping && s->current >= 0) {
		/* A shutdown is nobody's fault: put it back (first in the queue,
		 * after the rest).  Its request was sent, and may be paid for. */
		int i = s->items[s->current];

		spend_settle(c->st, r, i, T2I_ERR_TRANSIENT);
		s->current = -1;
		put_back_rest(c, s);
		if (held(c, r, i)) {
			store_image_reset(c->st, r->items[i].image_id);
			run_queue_push_front(r, i);
		}
		return;
	}
	if (!s->stopping) {
		int i = s->current >= 0 ? s->items[s->current] : s->items[s->next++];

		if (s->current >= 0) {
			spend_settle(c->st, r, i, T2I_ERR_TRANSIENT);
		} else {
			spend_release(c->st, r, i);
			pace_refund(c->pace, s->provider, 1);
		}
		if (!held(c, r, i))
			goto rest;
		slots_describe_exit(s, cause, sizeof(cause));
		/* Crashes and timeouts say something about a plugin or a
		 * provider that the admin reads in the journal, not only in
		 * the run's events. */
		log_warnx("run %s: storyboard %d on provider %s: worker %ld: %s", r->id,
			  r->items[i].index, c->cfg->providers[s->provider].name, (long)s->pid,
			  cause);
		attempt_failed(c, r, i, T2I_ERR_TRANSIENT, 0, cause);
	}
rest:
	s->current = -1;
	put_back_rest(c, s);
}
