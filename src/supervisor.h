/* supervisor: the one poll() loop.  Signals arrive through a signalfd, worker
 * pipes and timers are ordinary events, and each iteration acts in a fixed
 * order inside one database transaction: signals, worker output, reaping,
 * timeouts, dispatch, finished runs, commit. */
#ifndef T2I_SUPERVISOR_H
#define T2I_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct store;
struct run;
struct spawner;

#define SUP_GRACE_MS 10000	/* after SIGTERM/SIGINT, before workers are killed */

struct sup;

/* Blocks the signals the loop handles and opens the signalfd.  Workers are
 * forked by sp, started by the caller as early as it could. */
struct sup *sup_new(const struct config *cfg, struct store *st, struct spawner *sp, char *err,
		    size_t errlen);
void sup_free(struct sup *s);

int sup_add_run(struct sup *s, struct run *r);

/* Runs until every run has finished (0), or until a SIGINT/SIGTERM stopped
 * it (1): then unfinished storyboards are left pending and their runs
 * 'interrupted'. */
int sup_loop(struct sup *s);

#endif
