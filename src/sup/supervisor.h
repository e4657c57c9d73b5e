/* supervisor: the one poll() loop.  Signals arrive through a signalfd, worker
 * pipes and timers are ordinary events.  Each iteration acts in a fixed
 * order, in two transactions:
 *   1. queued runs that now have room start, dispatch (start batches on
 *      free slots; requests that may cost something are committed to the
 *      spend ledger before their worker is forked), finished runs,
 *      webhook deliveries due (claimed); commit; the claimed deliveries
 *      are sent;
 *   2. poll();
 *   3. what is ready, in pollfd order: signals, the spawner's exit
 *      reports, the webhook sender's answers, worker output and batch
 *      writes, the hook's fds (HTTP); then reaping, worker deadlines and the
 *      grace period; commit.
 * (The service's hook commits early, before HTTP clients are answered, and
 * begins again.)  After each commit, writes that were lost (SQLITE_FULL,
 * SQLITE_IOERR) stop the runs in progress with their cause. */
#ifndef T2I_SUPERVISOR_H
#define T2I_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct config;
struct store;
struct run;
struct spawner;
struct events;

#define SUP_GRACE_MS 10000	/* after SIGTERM/SIGINT, before workers are killed */
/* After a stop (cancel, shutdown), how long a worker polling a provider
 * task has to hear it in host->sleep(), cancel the task or leave it, and
 * return, before it is killed.  Other workers cannot hear a stop: a cancel
 * kills them at once, a shutdown at the end of SUP_GRACE_MS. */
#define SUP_STOP_GRACE_MS 5000

struct sup;
struct pollfd;
struct metrics;

#define SUP_EXTRA_FDS 4		/* fds a hook may add to the poll set */

/* What `serve` adds to the loop: its own fds (the HTTP server), what to do
 * with finished runs, and SIGHUP.  All called from the loop, inside its
 * transaction for the iteration. */
struct sup_hooks {
	void *arg;
	/* Fills at most SUP_EXTRA_FDS pollfds, may lower *timeout_ms. */
	int (*poll_fds)(void *arg, struct pollfd *pfd, int max, int *timeout_ms);
	/* After poll(), with the same pollfds and their revents. */
	void (*poll_ready)(void *arg, struct pollfd *pfd, int n);
	/* A run ended (finished, cancelled): the hook owns it now. */
	void (*run_ended)(void *arg, struct run *r);
	/* SIGHUP. */
	void (*reload)(void *arg);
	/* First SIGTERM/SIGINT, before workers are given their grace period. */
	void (*stopping)(void *arg);
	/* Several instances: another's notification about a run (its events
	 * committed, a cancel), for SSE clients that follow it. */
	void (*note)(void *arg, const char *run_id);
	bool serve;		/* keep running when idle, until a stop signal */
	struct metrics *metrics; /* counters to keep, or NULL */
};

/* Blocks the signals the loop handles and opens the signalfd.  Workers are
 * forked by sp, started by the caller as early as it could. */
struct sup *sup_new(const struct config *cfg, struct store *st, struct spawner *sp, char *err,
		    size_t errlen);
void sup_free(struct sup *s);

/* Adds a run: processed at once, or queued when r->queued (see
 * sup_has_room).  -1 only when out of memory. */
int sup_add_run(struct sup *s, struct run *r);
/* A run added now would be processed at once: fewer than workers.max are,
 * and none is queued. */
bool sup_has_room(const struct sup *s);
size_t sup_queued_runs(const struct sup *s);
/* Takes back a run just added, before the loop has dispatched any of it. */
void sup_remove_run(struct sup *s, struct run *r);
void sup_set_hooks(struct sup *s, const struct sup_hooks *h);
/* Queues webhook deliveries for ev's events, in the transaction that
 * records each (see webhooks.h). */
void sup_watch_events(struct sup *s, struct events *ev);

/* Takes the runs still in the table (after the loop), one at a time. */
struct run *sup_pop_run(struct sup *s);

/* The run of a project in memory (processed or queued), or NULL. */
struct run *sup_project_run(struct sup *s, const char *project_id);

/* Cancels run r, queued or not: its workers are stopped (told
 * T2I_STOP_CANCELLED first), its unfinished storyboards are left pending,
 * the run and stage say 'cancelled', and `done` is sent. */
void sup_cancel(struct sup *s, struct run *r);

/* Counts for /metrics. */
int sup_busy_workers(const struct sup *s);
size_t sup_active_runs(const struct sup *s);
/* Several instances: those alive, [{name, host, pid, heartbeat_ms}]; NULL
 * on SQLite.  A new reference. */
json_t *sup_instances(struct sup *s);

/* Swaps in a new configuration (SIGHUP): providers are matched by name,
 * running workers keep their batch.  Returns 0, or -1 leaving the old. */
int sup_reconfigure(struct sup *s, const struct config *cfg, char *err, size_t errlen);

/* Runs until every run has finished (0), or until a SIGINT/SIGTERM stopped
 * it (1): then unfinished storyboards are left pending and their runs
 * 'interrupted'. */
int sup_loop(struct sup *s);

#endif
