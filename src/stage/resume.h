/* resume: recovery.  A run left 'processing' by a crash, a kill -9 or a
 * stop is rebuilt from the database on the next start: storyboards whose
 * image completed are done and never generated again, failed ones stay
 * failed, the rest (pending, or processing when the process died) are
 * queued again, and events continue from the last stored seq. */
#ifndef T2I_RESUME_H
#define T2I_RESUME_H

#include <stddef.h>

struct store;
struct config;
struct events;
struct run;

/* Inside the caller's transaction.  NULL with a reason in err. */
struct run *resume_run(struct store *st, const struct config *cfg, struct events *ev,
		       const char *run_id, char *err, size_t errlen);

/* Several instances: this instance takes part in a shared run (its own,
 * another's, or one whose instance died).  Nothing is written and no event
 * is told: the run's pending generations are claimed as any other. */
struct run *resume_join(struct store *st, const struct config *cfg, struct events *ev,
			const char *run_id, char *err, size_t errlen);

#endif
