/* events: numbering, persistence and fan-out of run events. */
#include "events.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "log.h"
#include "run.h"
#include "store.h"

int
events_add_sink(struct events *e, events_sink_fn *fn, void *arg)
{
	if (e->nsinks >= EVENTS_SINKS_MAX)
		return -1;
	e->sinks[e->nsinks].fn = fn;
	e->sinks[e->nsinks].arg = arg;
	e->nsinks++;
	return 0;
}

/* A shared run's event: its seq is its counter row's, handed out by the
 * statement that stores it, in the caller's transaction, so that seqs
 * become visible in commit order whichever instance emits them.  The line
 * is made again with that seq for the sinks. */
static int
store_shared(struct events *e, struct run *r, const char *type, json_t *ev, char **line)
{
	int64_t seq = store_event_append_next(e->st, r->id, type, *line);

	if (seq < 0) {
		log_errx("run %s: cannot store a %s event: %s", r->id, type, store_errmsg(e->st));
		return -1;
	}
	r->seq = seq;
	json_object_set_new(ev, "seq", json_integer(seq));
	free(*line);
	return (*line = jsontext_dumps(ev, JSON_COMPACT)) != NULL ? 0 : -1;
}

int
events_emit(struct run *r, const char *type, json_t *body)
{
	struct events *e = r->events;
	bool shared = r->shared && e->st != NULL;
	json_t *ev = json_object();
	char *line;
	int rc = 0;

	/* type, seq, run_id, project_id first: readers of NDJSON see the
	 * envelope before the payload (and store_event_append_next finds the
	 * seq there). */
	json_object_set_new(ev, "type", json_string(type));
	json_object_set_new(ev, "seq", json_integer(shared ? 0 : ++r->seq));
	json_object_set_new(ev, "run_id", json_string(r->id));
	json_object_set_new(ev, "project_id", json_string(r->project_id));
	json_object_update(ev, body);
	json_decref(body);
	if ((line = jsontext_dumps(ev, JSON_COMPACT)) == NULL) {
		json_decref(ev);
		return -1;
	}
	if (shared) {
		if (store_shared(e, r, type, ev, &line) < 0) {
			free(line);
			json_decref(ev);
			return -1;
		}
	} else if (e->st != NULL && store_event_append(e->st, r->id, r->seq, type, line) < 0) {
		log_errx("run %s: cannot store event %lld", r->id, (long long)r->seq);
		rc = -1;
	}
	for (int i = 0; i < e->nsinks; i++)
		e->sinks[i].fn(e->sinks[i].arg, r, ev, line);
	free(line);
	json_decref(ev);
	return rc;
}

int
events_info(struct run *r, const char *type, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return events_emit(r, type, json_pack("{ss}", "message", msg));
}

int
events_error(struct run *r, const char *storyboard_id, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{ss}", "error", msg);
	if (storyboard_id != NULL)
		json_object_set_new(o, "storyboard_id", json_string(storyboard_id));
	return events_emit(r, "error", o);
}

json_t *
events_stage_object(const struct run *r, const char *status)
{
	return json_pack("{ss ss ss ss}", "id", r->stage_id, "status", status, "stage_type",
			 "image_generation", "started_at", r->stage_started_at);
}
