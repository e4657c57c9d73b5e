/* term: how `run` and `retry` show a run.  On a terminal, a live progress
 * bar and a final summary with image paths; otherwise (or with --json) one
 * event per line (NDJSON), flushed as it happens. */
#ifndef T2I_TERM_H
#define T2I_TERM_H

#include <stdbool.h>
#include <stdio.h>

#include "events.h"

struct term;

struct term *term_new(FILE *out, bool json);
void term_free(struct term *t);

/* The events sink. */
void term_sink(void *arg, const struct run *r, json_t *ev, const char *line);

/* The summary after the run (progress bar mode only). */
void term_summary(struct term *t, const struct run *r);

#endif
