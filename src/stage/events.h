/* events: the seven event types of a run.  Each event gets the next seq of
 * its run, is appended to run_events (for replay) and handed to every sink
 * (the terminal, NDJSON, SSE clients, the webhook outbox), all inside the
 * caller's transaction. */
#ifndef T2I_EVENTS_H
#define T2I_EVENTS_H

#include <jansson.h>

struct run;
struct store;

typedef void events_sink_fn(void *arg, const struct run *r, json_t *ev, const char *line);

#define EVENTS_SINKS_MAX 8

struct events {
	struct store *st;
	struct {
		events_sink_fn *fn;
		void *arg;
	} sinks[EVENTS_SINKS_MAX];
	int nsinks;
};

int events_add_sink(struct events *e, events_sink_fn *fn, void *arg);

/* Completes ev (type, then seq, run_id, project_id), stores and fans it out.
 * Takes the reference to ev. */
int events_emit(struct run *r, const char *type, json_t *body);

/* Helpers for the common shapes. */
int events_info(struct run *r, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int events_error(struct run *r, const char *storyboard_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* {id, status, stage_type, started_at} of the run's stage. */
json_t *events_stage_object(const struct run *r, const char *status);

#endif
