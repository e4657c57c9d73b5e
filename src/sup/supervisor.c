/* supervisor: the event loop of `t2istage run`. */
#include "supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clock.h"
#include "cluster.h"
#include "outcome.h"
#include "pace.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "resume.h"
#include "run.h"
#include "scheduler.h"
#include "stage.h"
#include "store.h"
#include "slots.h"
#include "spend.h"
#include "webhooks.h"
#include "t2istage/plugin.h"

#define SUP_RESPAWN_DELAY_MS 200	/* after a failed fork */
/* The signalfd, the spawner's exits, the webhook sender and the cluster's
 * listening connection. */
#define SUP_OWN_FDS 4
#define SUP_END_CHECK_MS 100	/* a shared run is looked at no more often */
/* PostgreSQL: the work one iteration does (worker output, dispatch)
 * before the loop polls again, which serves the HTTP clients; what is left
 * is done in the next iterations.  Measured: each round trip is well under
 * a millisecond, but a burst of results made hundreds of them in one
 * iteration and held /healthz for 0.4 s (tools/bench_cluster.py). */
#define SUP_ITER_BUDGET_MS 10

struct sup {
	const struct config *cfg;
	struct store *st;
	struct outcome_ctx ctx;
	struct slots w;
	struct pace pace;
	struct scheduler sch;
	/* Runs are limited by memory alone.  Those processed (dispatched to)
	 * are at most workers.max: one more could not hold a worker anyway;
	 * the others wait in arrival order, which is fair across projects, as
	 * a project has one run at a time. */
	struct run **runs;	/* processed */
	size_t nruns, runs_cap;
	struct run **queue;	/* waiting, oldest first */
	size_t nqueue, queue_cap;
	int sigfd;
	sigset_t oldmask;
	bool stopping;
	int64_t grace_end_ms;
	int64_t retry_at_ms;	/* dispatch again after a failed fork */
	int64_t next_due_ms;	/* earliest delayed retry of any run */
	struct pollfd *pfd;
	int *pfd_slot;		/* slot of each pollfd; -1 signalfd, -2 spawner, -3 hook,
				 * -4 webhook sender */
	size_t npfd;		/* capacity of pfd and pfd_slot */
	struct sup_hooks hooks;
	nfds_t extra_at;	/* where the hook's pollfds start */
	int nextra;
	struct webhooks *wh;
	/* Several instances (cluster.h): NULL on SQLite. */
	struct cluster *cl;
	struct events *ev;	/* of the runs it takes up */
	uint64_t failed_commits; /* seen so far */
	bool discover;		/* look for shared runs it does not hold */
	bool discovered;	/* it has looked once */
	bool check_queue;	/* look for a queued run to start */
	int64_t end_checked_ms;
};

struct sup *
sup_new(const struct config *cfg, struct store *st, struct spawner *sp, char *err,
	size_t errlen)
{
	struct sup *s = calloc(1, sizeof(*s));
	sigset_t mask;
	size_t npfd = SUP_OWN_FDS + 2 * SLOTS_FOR(cfg->workers_max) + SUP_EXTRA_FDS;

	if (s == NULL || slots_init(&s->w, sp, cfg->workers_max, (int)cfg->nproviders) < 0 ||
	    pace_init(&s->pace, cfg) < 0 || (s->wh = webhooks_new(cfg, st)) == NULL ||
	    (s->pfd = calloc(npfd, sizeof(*s->pfd))) == NULL ||
	    (s->pfd_slot = calloc(npfd, sizeof(int))) == NULL) {
		snprintf(err, errlen, "out of memory");
		sup_free(s);
		return NULL;
	}
	if (cfg->database_pg && (s->cl = cluster_new(cfg, st, err, errlen)) == NULL) {
		sup_free(s);
		return NULL;
	}
	if (s->cl != NULL) {
		s->ctx.cluster_name = cluster_name(s->cl);
		s->ctx.lease_ms = cluster_lease_ms(s->cl);
		s->discover = true;
	}
	s->npfd = npfd;
	/* Jitter for retry delays; not a secret. */
	srand48((long)getpid() ^ (long)clock_now_ms());
	s->cfg = cfg;
	s->ctx.w = &s->w;
	s->ctx.pace = &s->pace;
	s->st = st;
	s->ctx.st = st;
	s->ctx.cfg = cfg;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &s->oldmask);
	/* A worker gone before reading its batch must give EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if ((s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		sup_free(s);
		return NULL;
	}
	return s;
}

void
sup_free(struct sup *s)
{
	if (s == NULL)
		return;
	webhooks_free(s->wh);
	slots_free(&s->w);
	cluster_free(s->cl);
	pace_free(&s->pace);
	free(s->runs);
	free(s->queue);
	if (s->sigfd > 0) {
		close(s->sigfd);
		sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
	}
	free(s->pfd);
	free(s->pfd_slot);
	free(s);
}

/* Appends r to a growing list. */
static int
list_push(struct run ***list, size_t *n, size_t *cap, struct run *r)
{
	if (*n == *cap) {
		size_t ncap = *cap > 0 ? 2 * *cap : 16;
		struct run **nl = realloc(*list, ncap * sizeof(*nl));

		if (nl == NULL)
			return -1;
		*list = nl;
		*cap = ncap;
	}
	(*list)[(*n)++] = r;
	return 0;
}

/* Takes r out of a list, keeping the order of the others. */
static bool
list_remove(struct run **list, size_t *n, struct run *r)
{
	for (size_t k = 0; k < *n; k++)
		if (list[k] == r) {
			memmove(list + k, list + k + 1, (*n - k - 1) * sizeof(*list));
			(*n)--;
			return true;
		}
	return false;
}

int
sup_add_run(struct sup *s, struct run *r)
{
	int rc = r->queued ? list_push(&s->queue, &s->nqueue, &s->queue_cap, r)
			   : list_push(&s->runs, &s->nruns, &s->runs_cap, r);

	if (rc < 0)
		return -1;
	/* The command line waits for its run's webhooks; `serve` sends all. */
	if (!s->hooks.serve)
		webhooks_only_run(s->wh, r->id);
	return 0;
}

bool
sup_has_room(const struct sup *s)
{
	return s->nqueue == 0 && s->nruns < (size_t)s->cfg->workers_max;
}

size_t
sup_queued_runs(const struct sup *s)
{
	return s->nqueue;
}

struct run *
sup_pop_run(struct sup *s)
{
	if (s->nqueue > 0)
		return s->queue[--s->nqueue];
	return s->nruns > 0 ? s->runs[--s->nruns] : NULL;
}

void
sup_remove_run(struct sup *s, struct run *r)
{
	if (!list_remove(s->runs, &s->nruns, r))
		list_remove(s->queue, &s->nqueue, r);
}

void
sup_set_hooks(struct sup *s, const struct sup_hooks *h)
{
	s->hooks = *h;
	s->ctx.m = h->metrics;
	webhooks_set_metrics(s->wh, h->metrics);
}

void
sup_watch_events(struct sup *s, struct events *ev)
{
	s->ev = ev;
	events_add_sink(ev, webhooks_sink, s->wh);
}

struct run *
sup_project_run(struct sup *s, const char *project_id)
{
	for (size_t k = 0; k < s->nruns; k++)
		if (strcmp(s->runs[k]->project_id, project_id) == 0)
			return s->runs[k];
	for (size_t k = 0; k < s->nqueue; k++)
		if (strcmp(s->queue[k]->project_id, project_id) == 0)
			return s->queue[k];
	return NULL;
}

int
sup_busy_workers(const struct sup *s)
{
	return s->w.busy;
}

size_t
sup_active_runs(const struct sup *s)
{
	return s->nruns;
}

json_t *
sup_instances(struct sup *s)
{
	return s->cl != NULL ? cluster_alive(s->cl) : NULL;
}

/* A worker whose storyboard has a provider task polls it through
 * host->sleep(), which a stop ends at once: it gets SUP_STOP_GRACE_MS.
 * Others get what the caller says. */
static int64_t
stop_grace(const struct slot *sl, int64_t otherwise)
{
	if (sl->current >= 0 && sl->run->items[sl->items[sl->current]].task_pending)
		return SUP_STOP_GRACE_MS;
	return otherwise;
}

void
sup_cancel(struct sup *s, struct run *r)
{
	if (r->cancelled)
		return;
	r->cancelled = true;
	/* A queued run has no worker: it ends with the next round of
	 * finished runs. */
	if (r->queued && list_remove(s->queue, &s->nqueue, r)) {
		if (list_push(&s->runs, &s->nruns, &s->runs_cap, r) < 0)
			list_push(&s->queue, &s->nqueue, &s->queue_cap, r); /* fits: it was there */
		else
			r->queued = false;
	}
	for (int i = 0; i < s->w.nslots; i++) {
		struct slot *sl = &s->w.slots[i];

		if (sl->pid > 0 && sl->run == r && !sl->reaped)
			slots_stop(sl, T2I_STOP_CANCELLED, stop_grace(sl, 0), "cancelled");
	}
}

/* The pollfd arrays for nslots workers. */
static int
grow_pollfds(struct sup *s, int nslots)
{
	size_t n = SUP_OWN_FDS + 2 * (size_t)nslots + SUP_EXTRA_FDS;
	struct pollfd *pfd;
	int *slot;

	if (n <= s->npfd)
		return 0;
	if ((pfd = realloc(s->pfd, n * sizeof(*pfd))) == NULL)
		return -1;
	s->pfd = pfd;
	if ((slot = realloc(s->pfd_slot, n * sizeof(*slot))) == NULL)
		return -1;
	s->pfd_slot = slot;
	s->npfd = n;
	return 0;
}

/* map[old provider index] = new index, or -1 when the new configuration
 * has no provider of that name. */
static int *
provider_map(const struct config *old, const struct config *cfg)
{
	int *map = calloc(old->nproviders + 1, sizeof(int));

	for (size_t p = 0; map != NULL && p < old->nproviders; p++) {
		const struct config_provider *np = config_provider(cfg, old->providers[p].name);

		map[p] = np != NULL ? (int)(np - cfg->providers) : -1;
	}
	return map;
}

static int
list_in_use(const struct sup *s, struct run *const *list, size_t n, const int *map, char *err,
	    size_t errlen)
{
	for (size_t k = 0; k < n; k++)
		for (int c = 0; c < list[k]->nchain; c++)
			if (map[list[k]->chain[c]] < 0) {
				snprintf(err, errlen, "provider %s is in use by run %s",
					 s->cfg->providers[list[k]->chain[c]].name, list[k]->id);
				return -1;
			}
	return 0;
}

/* A provider that a running batch or a run (processed or queued) still
 * relies on must survive the reload; otherwise the reload is refused
 * whole. */
static int
check_in_use(const struct sup *s, const int *map, char *err, size_t errlen)
{
	for (int i = 0; i < s->w.nslots; i++)
		if (s->w.slots[i].pid > 0 && map[s->w.slots[i].provider] < 0) {
			snprintf(err, errlen, "a removed provider still has a worker running");
			return -1;
		}
	if (list_in_use(s, s->runs, s->nruns, map, err, errlen) < 0)
		return -1;
	return list_in_use(s, s->queue, s->nqueue, map, err, errlen);
}

/* Storyboards not yet given to a worker take the new providers' options;
 * those in workers finish as they were sent. */
static void
remap_runs(const struct config *cfg, struct run *const *list, size_t n, const int *map)
{
	for (size_t k = 0; k < n; k++) {
		struct run *r = list[k];

		for (int c = 0; c < r->nchain; c++)
			r->chain[c] = map[r->chain[c]];
		for (size_t i = 0; i < r->nitems; i++)
			if (r->items[i].state == ITEM_QUEUED || r->items[i].state == ITEM_DELAYED)
				stage_bind_provider(cfg, r, (int)i);
	}
}

/* A budget the new configuration lowers below what is spent already: the
 * provider's workers polling a task (paid for) are told T2I_STOP_BUDGET and
 * leave it to a later attempt; the others finish the storyboard they are
 * on.  Their storyboards then fail with "budget reached" at dispatch. */
static void
stop_over_budget(struct sup *s)
{
	for (int i = 0; i < s->w.nslots; i++) {
		struct slot *sl = &s->w.slots[i];
		struct spend_check chk;

		if (sl->pid <= 0 || sl->reaped || sl->done || sl->run == NULL ||
		    spend_check(s->st, s->cfg, sl->run, sl->provider, 1, &chk) < 0 || !chk.reached)
			continue;
		log_info("run %s: provider %s: %s; its workers stop", sl->run->id,
			 s->cfg->providers[sl->provider].name, chk.why);
		slots_stop(sl, T2I_STOP_BUDGET, stop_grace(sl, -1), "budget reached");
	}
}

int
sup_reconfigure(struct sup *s, const struct config *cfg, char *err, size_t errlen)
{
	int *map = provider_map(s->cfg, cfg);
	struct pace pace = { 0 };
	int rc = -1;

	if (map == NULL || check_in_use(s, map, err, errlen) < 0)
		goto out;
	/* Room for the pollfds and the pace first: once the workers are
	 * remapped there is no going back. */
	if (grow_pollfds(s, SLOTS_FOR(cfg->workers_max)) < 0 ||
	    pace_reconfigure(&s->pace, cfg, map, &pace) < 0 ||
	    slots_reconfigure(&s->w, cfg->workers_max, map, (int)cfg->nproviders) < 0) {
		pace_free(&pace);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pace_free(&s->pace);
	s->pace = pace;
	s->cfg = cfg;
	s->ctx.cfg = cfg;
	webhooks_reconfigure(s->wh, cfg);
	if (s->cl != NULL)
		cluster_reconfigure(s->cl, cfg);
	remap_runs(cfg, s->runs, s->nruns, map);
	remap_runs(cfg, s->queue, s->nqueue, map);
	stop_over_budget(s);
	rc = 0;
out:
	free(map);
	return rc;
}

/* Every worker is told the service is stopping.  now: and killed at once;
 * else a polling one is killed after SUP_STOP_GRACE_MS, the others at the
 * end of the shutdown's grace period. */
static void
stop_all(struct sup *s, bool now, const char *why)
{
	for (int i = 0; i < s->w.nslots; i++) {
		struct slot *sl = &s->w.slots[i];

		if (sl->pid > 0 && !sl->reaped)
			slots_stop(sl, T2I_STOP_SHUTDOWN, now ? 0 : stop_grace(sl, -1), why);
	}
}

static void
on_signals(struct sup *s, bool *child)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			*child = true;
			break;
		case SIGINT:
		case SIGTERM:
			if (s->stopping) {
				log_warnx("second signal: stopping workers now");
				stop_all(s, true, "stopped");
				break;
			}
			/* A routine stop (systemctl stop): not a warning. */
			log_info("signal %u: finishing work in progress (%d s grace), "
				 "taking no more", si.ssi_signo, SUP_GRACE_MS / 1000);
			s->stopping = true;
			s->grace_end_ms = clock_now_ms() + SUP_GRACE_MS;
			/* Polling plugins leave their tasks for the next start
			 * rather than wait them out. */
			stop_all(s, false, "stopped");
			if (s->hooks.stopping != NULL)
				s->hooks.stopping(s->hooks.arg);
			break;
		case SIGHUP:
			if (s->hooks.reload != NULL && !s->stopping)
				s->hooks.reload(s->hooks.arg);
			else
				log_info("SIGHUP ignored by this command");
			break;
		default:
			log_info("signal %u ignored", si.ssi_signo);
		}
	}
}

/* Reads what a worker wrote and handles the complete lines. */
static void
pump(struct sup *s, struct slot *sl)
{
	int st;

	if (sl->from_fd < 0)
		return;
	st = ipc_read(&sl->rd, sl->from_fd);
	/* (Never sl->run: a run can end, and be freed, before its last
	 * worker is reaped.) */
	if (!sl->stale)
		outcome_handle_lines(&s->ctx, sl);
	if (st == IPC_EOF || st == IPC_ERROR) {
		close(sl->from_fd);
		sl->from_fd = -1;
	}
}

static void
reap(struct sup *s)
{
	int i;

	while ((i = slots_reap(&s->w)) >= 0) {
		struct slot *sl = &s->w.slots[i];

		pump(s, sl);	/* whatever it wrote before it died */
		if (!sl->stale)
			outcome_settle(&s->ctx, sl);
		slots_release(&s->w, i);
	}
}

static void
check_deadlines(struct sup *s, int64_t now)
{
	char cause[64];

	for (int i = 0; i < s->w.nslots; i++) {
		struct slot *sl = &s->w.slots[i];

		if (sl->pid <= 0 || sl->killed || sl->reaped)
			continue;
		if (sl->kill_at_ms > 0 && now >= sl->kill_at_ms) {
			log_warnx("worker %ld: still running after being told to stop",
				  (long)sl->pid);
			slots_kill(sl, sl->stop_cause);
			continue;
		}
		if (now < sl->deadline_ms)
			continue;
		/* No stop first: before the last attempt a plugin must leave
		 * its provider task for the next one, which the kill does; on
		 * the last, its host->sleep() said T2I_STOP_DEADLINE already. */
		snprintf(cause, sizeof(cause), "timed out after %g s", s->cfg->timeout);
		slots_kill(sl, cause);
	}
	if (s->stopping && s->grace_end_ms > 0 && now >= s->grace_end_ms) {
		log_warnx("grace period over: stopping workers");
		stop_all(s, true, "stopped");
		s->grace_end_ms = 0;
	}
}

static bool
run_has_workers(const struct sup *s, const struct run *r)
{
	for (int i = 0; i < s->w.nslots; i++)
		if (s->w.slots[i].pid > 0 && s->w.slots[i].run == r)
			return true;
	return false;
}

static void
end_run(struct sup *s, size_t k)
{
	struct run *r = s->runs[k];

	s->runs[k] = s->runs[--s->nruns];
	s->check_queue = true;	/* room for a queued run (several instances) */
	if (s->hooks.run_ended != NULL)
		s->hooks.run_ended(s->hooks.arg, r);
}

/* A shared run is over when the database says so: every instance's work
 * counted.  It is ended once, by the first instance to see it (-1: not
 * yet, 0: ended here, 1: ended elsewhere, drop it). */
static int
finish_shared(struct sup *s, struct run *r)
{
	struct store_tally t;
	bool over;
	int rc;

	if (!r->check_end || store_run_tally(s->st, r->id, &t) < 0)
		return -1;
	r->check_end = false;
	r->pending_hint = t.pending + t.processing;
	if (t.cancel_requested && !r->cancelled)
		sup_cancel(s, r);
	over = r->cancelled ? t.processing == 0 && !run_has_workers(s, r)
			    : t.pending + t.processing == 0;
	if (!over)
		return -1;
	if ((rc = store_run_end_claim(s->st, r->id)) <= 0)
		return rc < 0 ? -1 : 1;
	rc = r->cancelled ? stage_cancelled(s->st, r) : stage_finish(s->st, r);
	if (rc < 0)
		log_errx("run %s: cannot record its outcome: %s", r->id, store_errmsg(s->st));
	return 0;
}

static void
finish_runs(struct sup *s)
{
	int64_t now = clock_now_ms();
	bool check = now - s->end_checked_ms >= SUP_END_CHECK_MS;

	if (check)
		s->end_checked_ms = now;
	for (size_t k = 0; k < s->nruns;) {
		struct run *r = s->runs[k];
		int rc;

		if (r->shared) {
			if (!check || (rc = finish_shared(s, r)) < 0) {
				k++;
				continue;
			}
			if (rc > 0)
				r->finished = true;	/* another instance ended it */
			end_run(s, k);
			continue;
		}
		if (r->cancelled && !run_has_workers(s, r))
			rc = stage_cancelled(s->st, r);
		else if (!r->cancelled && run_complete(r))
			rc = stage_finish(s->st, r);
		else if (r->halted && !run_has_workers(s, r))
			rc = stage_halted(s->st, r, run_halt_why(r));
		else {
			k++;
			continue;
		}
		if (rc < 0)
			log_errx("run %s: cannot record its outcome: %s", r->id, store_errmsg(s->st));
		end_run(s, k);
	}
}

static nfds_t
build_pollfds(struct sup *s)
{
	nfds_t n = 0;

	s->pfd[n] = (struct pollfd){ .fd = s->sigfd, .events = POLLIN };
	s->pfd_slot[n++] = -1;
	s->pfd[n] = (struct pollfd){ .fd = slots_poll_fd(&s->w), .events = POLLIN };
	s->pfd_slot[n++] = -2;
	if ((s->pfd[n].fd = webhooks_poll_fd(s->wh, &s->pfd[n].events)) >= 0)
		s->pfd_slot[n++] = -4;
	if (s->cl != NULL && (s->pfd[n].fd = cluster_poll_fd(s->cl)) >= 0) {
		s->pfd[n].events = POLLIN;
		s->pfd_slot[n++] = -5;
	}
	for (int i = 0; i < s->w.nslots; i++) {
		struct slot *sl = &s->w.slots[i];

		if (sl->pid <= 0)
			continue;
		if (sl->from_fd >= 0) {
			s->pfd[n] = (struct pollfd){ .fd = sl->from_fd, .events = POLLIN };
			s->pfd_slot[n++] = i;
		}
		if (sl->to_fd >= 0 && ipc_pending(&sl->wr)) {
			s->pfd[n] = (struct pollfd){ .fd = sl->to_fd, .events = POLLOUT };
			s->pfd_slot[n++] = i;
		}
	}
	s->extra_at = n;
	s->nextra = 0;
	return n;
}

/* Shared runs: the cluster's timers, the next claim while a slot is free,
 * and the next look at a run that may be over. */
static int64_t
shared_wake_at(const struct sup *s, int64_t now, int64_t next)
{
	bool slot = !s->stopping && slots_free_slot(&s->w) >= 0;

	if (cluster_wake_at(s->cl) < next)
		next = cluster_wake_at(s->cl);
	for (size_t k = 0; k < s->nruns; k++) {
		const struct run *r = s->runs[k];

		if (r->check_end && s->end_checked_ms + SUP_END_CHECK_MS < next)
			next = s->end_checked_ms + SUP_END_CHECK_MS;
		if (slot && !r->cancelled && r->claim_after_ms < next)
			next = r->claim_after_ms > now ? r->claim_after_ms : now;
	}
	return next;
}

/* Milliseconds until the nearest deadline, or -1 for none. */
static int
poll_timeout(const struct sup *s, int64_t now)
{
	int64_t next = INT64_MAX;

	for (int i = 0; i < s->w.nslots; i++) {
		const struct slot *sl = &s->w.slots[i];

		if (sl->pid > 0 && !sl->killed && sl->deadline_ms < next)
			next = sl->deadline_ms;
		if (sl->pid > 0 && !sl->killed && sl->kill_at_ms > 0 && sl->kill_at_ms < next)
			next = sl->kill_at_ms;
	}
	if (s->stopping && s->grace_end_ms > 0 && s->grace_end_ms < next)
		next = s->grace_end_ms;
	if (s->retry_at_ms > 0 && s->retry_at_ms < next)
		next = s->retry_at_ms;
	if (!s->stopping && s->nruns > 0) {
		int64_t t = pace_wake_at(&s->pace, now,
					 (int64_t)(s->cfg->retry_rate_limit_wait * 1000.0));

		if (t < next)
			next = t;
	}
	if (!s->stopping && s->next_due_ms < next)
		next = s->next_due_ms;
	if (webhooks_wake_at(s->wh, now) < next)
		next = webhooks_wake_at(s->wh, now);
	if (s->cl != NULL)
		next = shared_wake_at(s, now, next);
	/* A run ended with others queued: the next starts at once. */
	if (!s->stopping && (s->cl != NULL ? s->check_queue : s->nqueue > 0) &&
	    s->nruns < (size_t)s->cfg->workers_max)
		next = now;
	if (next == INT64_MAX)
		return -1;
	return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

static struct run *
find_run(struct sup *s, const char *run_id)
{
	for (size_t k = 0; k < s->nruns; k++)
		if (strcmp(s->runs[k]->id, run_id) == 0)
			return s->runs[k];
	return NULL;
}

/* A notification of another instance (or of ours): the run may have
 * something to claim, may be over, may be cancelled; SSE clients follow. */
static void
on_note(void *arg, const char *run_id, enum cluster_note what)
{
	struct sup *s = arg;
	struct run *r = find_run(s, run_id);

	s->check_queue = true;
	if (r != NULL) {
		r->claim_after_ms = 0;
		r->check_end = true;
		if (what == CLUSTER_CANCEL)
			sup_cancel(s, r);
	} else if (what == CLUSTER_EVENT) {
		s->discover = true;
	}
	if (s->hooks.note != NULL)
		s->hooks.note(s->hooks.arg, run_id);
}

static void
handle_ready(struct sup *s, nfds_t n, bool *child)
{
	int64_t until = clock_now_ms() + SUP_ITER_BUDGET_MS;

	for (nfds_t k = 0; k < n; k++) {
		struct slot *sl;

		if (s->pfd[k].revents == 0)
			continue;
		if (s->pfd_slot[k] == -1) {
			on_signals(s, child);
			continue;
		}
		if (s->pfd_slot[k] == -2) {
			*child = true;	/* the spawner reported an exit */
			continue;
		}
		if (s->pfd_slot[k] == -3)
			continue;	/* the hook's: handled below */
		if (s->pfd_slot[k] == -4) {
			webhooks_ready(s->wh, s->pfd[k].revents, clock_now_ms());
			continue;
		}
		if (s->pfd_slot[k] == -5) {
			cluster_ready(s->cl, on_note, s);
			continue;
		}
		sl = &s->w.slots[s->pfd_slot[k]];
		/* Over budget (PostgreSQL): the rest is still readable at the
		 * next poll(), which returns at once. */
		if (s->cl != NULL && clock_now_ms() > until)
			continue;
		if (s->pfd[k].fd == sl->from_fd)
			pump(s, sl);
		else if (s->pfd[k].fd == sl->to_fd)
			slots_flush(sl);
	}
	if (s->nextra > 0 && s->hooks.poll_ready != NULL)
		s->hooks.poll_ready(s->hooks.arg, s->pfd + s->extra_at, s->nextra);
}

/* Queued runs start, oldest first, while fewer than workers.max are
 * processed. */
static void
activate_runs(struct sup *s)
{
	while (s->nqueue > 0 && (s->nruns < (size_t)s->cfg->workers_max || s->queue[0]->cancelled)) {
		struct run *r = s->queue[0];

		if (list_push(&s->runs, &s->nruns, &s->runs_cap, r) < 0)
			return;	/* out of memory: it waits for the next iteration */
		list_remove(s->queue, &s->nqueue, r);
		r->queued = false;
		if (!r->cancelled && stage_activate(s->st, s->cfg, r) < 0)
			log_errx("run %s: cannot record that it starts: %s", r->id,
				 store_errmsg(s->st));
	}
}

/* Writes were lost (a failed commit, SQLite's own rollback after
 * SQLITE_FULL or SQLITE_IOERR): what the runs did since the last commit
 * is not on record.  They stop dispatching, say why, and end once their
 * workers are gone; the service itself goes on. */
static void
check_store(struct sup *s)
{
	const char *lost = store_lost(s->st);
	char why[600];
	int told = 0;

	if (lost == NULL)
		return;
	snprintf(why, sizeof(why), "cannot record the run in the database %s: %s",
		 s->cfg->database, lost);
	for (size_t k = 0; k < s->nruns; k++) {
		struct run *r = s->runs[k];

		if (r->finished || r->unrecorded)
			continue;
		if (!told++)
			log_errx("%s; the runs in progress stop", why);
		r->unrecorded = true;
		events_error(r, NULL, "%s", why);
		outcome_halt(&s->ctx, r, why);
	}
}

static void
dispatch(struct sup *s, int64_t now)
{
	s->next_due_ms = INT64_MAX;
	for (size_t k = 0; k < s->nruns; k++) {
		int64_t due = run_release_due(s->runs[k], now);

		if (due < s->next_due_ms)
			s->next_due_ms = due;
	}
	if (s->stopping || (s->retry_at_ms > 0 && now < s->retry_at_ms))
		return;
	s->retry_at_ms = 0;
	s->sch.until_ms = s->cl != NULL ? clock_now_ms() + SUP_ITER_BUDGET_MS : INT64_MAX;
	if (scheduler_dispatch(&s->sch, &s->ctx, &s->w, s->runs, s->nruns) < 0)
		s->retry_at_ms = now + SUP_RESPAWN_DELAY_MS;
}

/* Leaves a stopped run's unfinished storyboards pending, as the next run
 * (or `retry`) will take them up. */
static void
interrupt_runs(struct sup *s)
{
	store_begin(s->st);
	for (size_t k = 0; k < s->nruns; k++) {
		struct run *r = s->runs[k];
		int left = (int)r->nitems - r->succeeded - r->failed;

		events_info(r, "warning", "run interrupted: %d storyboards left pending", left);
		store_run_set_status(s->st, r->id, "interrupted");
		snprintf(r->status, sizeof(r->status), "interrupted");
	}
	store_commit(s->st);
}

static bool
loop_done(struct sup *s)
{
	if (slots_alive(&s->w))
		return false;
	return s->stopping || (s->nruns == 0 && s->nqueue == 0 && !s->hooks.serve &&
			       webhooks_settled(s->wh, clock_now_ms()));
}

/* The hook's fds go after the workers'; its timeout can shorten ours. */
static nfds_t
add_hook_fds(struct sup *s, nfds_t n, int *timeout)
{
	if (s->hooks.poll_fds == NULL)
		return n;
	s->nextra = s->hooks.poll_fds(s->hooks.arg, s->pfd + n, SUP_EXTRA_FDS, timeout);
	for (int k = 0; k < s->nextra; k++)
		s->pfd_slot[n + (nfds_t)k] = -3;
	return n + (nfds_t)s->nextra;
}

/* A run this instance queued (several instances) that another one
 * started: processed here too from now on, as every instance's.  True
 * when id is one of its queued runs. */
static bool
queued_here(struct sup *s, const char *id)
{
	for (size_t k = 0; k < s->nqueue; k++) {
		struct run *r = s->queue[k];

		if (strcmp(r->id, id) != 0)
			continue;
		if (list_push(&s->runs, &s->nruns, &s->runs_cap, r) == 0) {
			list_remove(s->queue, &s->nqueue, r);
			r->queued = false;
			r->check_end = true;
		}
		return true;
	}
	return false;
}

/* Several instances: the oldest queued run of the database starts while
 * this instance processes fewer than workers.max runs, whichever instance
 * queued it (one that died included).  The start is a row update that
 * another instance's skips (store_run_activate_next); every instance
 * takes part in the run once it is processing (discover). */
static void
activate_shared(struct sup *s)
{
	char id[37], err[512];
	struct run *r;

	if (!s->check_queue || s->stopping)
		return;
	s->check_queue = false;
	while (s->nruns < (size_t)s->cfg->workers_max &&
	       store_run_activate_next(s->st, id) > 0) {
		if (queued_here(s, id))
			r = find_run(s, id);
		else if ((r = resume_join(s->st, s->cfg, s->ev, id, err, sizeof(err))) == NULL ||
			 list_push(&s->runs, &s->nruns, &s->runs_cap, r) < 0) {
			log_warnx("cluster: cannot start queued run %s: %s", id,
				  r == NULL ? err : "out of memory");
			run_free(r);
			continue;
		}
		if (r != NULL && stage_activate(s->st, s->cfg, r) < 0)
			log_errx("run %s: cannot record that it starts: %s", id, store_errmsg(s->st));
		log_debug("cluster: queued run %s starts here", id);
	}
}

/* Shared runs not held yet (`serve` only: `run` works on its own).  At
 * start, with no other instance alive, they are this instance's to resume,
 * and it says so as a lone instance does. */
static void
discover(struct sup *s)
{
	json_t *runs = store_query_runs_processing(s->st), *row, *alive = NULL;
	bool resuming = !s->discovered && json_array_size(runs) > 0 &&
			json_array_size(alive = cluster_alive(s->cl)) <= 1;
	char err[512];
	size_t i;

	json_decref(alive);
	s->discover = false;
	s->discovered = true;
	json_array_foreach(runs, i, row) {
		const char *id = json_string_value(json_object_get(row, "id"));
		struct run *r;

		if (strcmp(json_string_value(json_object_get(row, "status")), "processing") != 0 ||
		    find_run(s, id) != NULL || queued_here(s, id))
			continue;
		if ((r = resume_join(s->st, s->cfg, s->ev, id, err, sizeof(err))) == NULL) {
			log_warnx("cluster: cannot take part in run %s: %s", id, err);
			continue;
		}
		if (list_push(&s->runs, &s->nruns, &s->runs_cap, r) < 0) {
			run_free(r);
			continue;
		}
		if (resuming) {
			log_info("resumed run %s: %d storyboards to go", id, r->pending_hint);
			events_info(r, "warning", "run resumed after a restart: %d of %zu storyboards"
				    " to go", r->pending_hint, r->nitems);
		} else {
			log_debug("cluster: taking part in run %s", id);
		}
	}
	json_decref(runs);
}

/* A transaction failed (see cluster.h): what this process believed of its
 * runs and claims is no longer true.  Its workers are killed (what they
 * hold was claimed in the database, or was in the lost transaction) and
 * every run is dropped, to be taken up again from the database.  A
 * killed worker's slot is stale until it is reaped: nothing it says is
 * heard, and with no item current nothing reaches for its run, freed
 * here. */
static void
resync(struct sup *s)
{
	log_warnx("cluster: a database transaction failed: stopping this instance's %d workers"
		  " and taking its %zu runs up again from the database", s->w.busy, s->nruns);
	for (int i = 0; i < s->w.nslots; i++) {
		struct slot *sl = &s->w.slots[i];

		if (sl->pid > 0) {
			sl->stale = true;
			sl->stopping = true;
			sl->current = -1;
			slots_kill(sl, "database transaction lost");
		}
	}
	while (s->nruns > 0)
		run_free(s->runs[--s->nruns]);
	while (s->nqueue > 0)	/* queued in the database, for any instance */
		run_free(s->queue[--s->nqueue]);
	s->check_queue = true;
	cluster_lost(s->cl);
}

/* The lease tokens of the batches whose workers are alive, as an array
 * literal ("{t1,t2}"; malloc'd): the leases to renew. */
static char *
live_tokens(const struct sup *s)
{
	char *out = malloc(2 + (size_t)s->w.nslots * 38 + 1), *o = out;

	if (out == NULL)
		return NULL;
	*o++ = '{';
	for (int i = 0; i < s->w.nslots; i++) {
		const struct slot *sl = &s->w.slots[i];

		if (sl->pid <= 0 || sl->killed || sl->reaped || sl->lease_token[0] == '\0')
			continue;
		o += sprintf(o, "%s%s", o > out + 1 ? "," : "", sl->lease_token);
	}
	strcpy(o, "}");
	return out;
}

/* In the first transaction, before dispatch. */
static void
shared_step(struct sup *s, int64_t now)
{
	char *tokens;
	int bits;

	if (store_failed_commits(s->st) != s->failed_commits) {
		s->failed_commits = store_failed_commits(s->st);
		resync(s);
	}
	if (!store_connected(s->st))
		return;
	if ((tokens = live_tokens(s)) == NULL)
		return;
	bits = cluster_tick(s->cl, now, tokens);
	free(tokens);
	for (size_t k = 0; k < s->nruns; k++) {
		if (bits & CLUSTER_RESCUED)
			s->runs[k]->claim_after_ms = 0;
		if (bits & CLUSTER_CHECK)
			s->runs[k]->check_end = true;
	}
	if (bits & CLUSTER_DISCOVER)
		s->check_queue = true;
	if ((bits & CLUSTER_DISCOVER) || s->discover) {
		if (s->hooks.serve)
			discover(s);
		s->discover = false;
	}
}

int
sup_loop(struct sup *s)
{
	while (!loop_done(s)) {
		int64_t now = clock_now_ms();
		nfds_t n;
		int timeout;
		bool child = false;

		store_begin(s->st);
		if (s->cl != NULL) {
			shared_step(s, now);
			activate_shared(s);
		} else {
			activate_runs(s);
		}
		dispatch(s, now);
		finish_runs(s);
		webhooks_claim(s->wh, now);
		/* Claimed deliveries go out once what they carry is committed. */
		webhooks_committed(s->wh, store_commit(s->st) == 0);
		check_store(s);
		if (loop_done(s))
			break;
		n = build_pollfds(s);
		timeout = poll_timeout(s, now);
		n = add_hook_fds(s, n, &timeout);
		if (poll(s->pfd, n, timeout) < 0 && errno != EINTR)
			fatal("poll");
		/* One transaction per iteration: a burst of results costs one
		 * commit, and a crash loses at most the iteration in progress,
		 * whose workers' files are already on disk.  (The service's
		 * poll_ready hook commits it early, before HTTP clients are
		 * told anything, and begins another.) */
		store_begin(s->st);
		handle_ready(s, n, &child);
		if (child)
			reap(s);
		check_deadlines(s, clock_now_ms());
		store_commit(s->st);
		check_store(s);
	}
	if (s->stopping && s->nruns > 0) {
		/* The service leaves its runs 'processing': the next start
		 * resumes them.  A command-line run says it was interrupted. */
		if (!s->hooks.serve)
			interrupt_runs(s);
		return 1;
	}
	return 0;
}
