/* term: progress bar, summary and NDJSON output. */
#include "term.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "run.h"
#include "slots.h"

#define TERM_BAR 30
#define TERM_SUMMARY_MAX 50	/* lines of per-storyboard summary */
#define TERM_REDRAW_MS 100

struct term {
	FILE *out;
	bool json;
	int total, ok, failed, cached;
	int64_t last_draw_ms;
	char label[64];
	json_t *lines;		/* per storyboard: [index, text], for the summary */
	bool drawn;
};

struct term *
term_new(FILE *out, bool json)
{
	struct term *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->out = out;
	t->json = json;
	t->lines = json_array();
	return t;
}

void
term_free(struct term *t)
{
	if (t == NULL)
		return;
	json_decref(t->lines);
	free(t);
}

static void
draw(struct term *t, bool force)
{
	int64_t now = clock_now_ms();
	int done = t->ok + t->failed;
	int fill = t->total > 0 ? done * TERM_BAR / t->total : 0;
	char bar[TERM_BAR + 1];

	if (!force && now - t->last_draw_ms < TERM_REDRAW_MS)
		return;
	t->last_draw_ms = now;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(TERM_BAR - fill));
	bar[TERM_BAR] = '\0';
	fprintf(t->out, "\r\033[K[%s] %d/%d  ok %d  failed %d  %s", bar, done, t->total, t->ok,
		t->failed, t->label);
	fflush(t->out);
	t->drawn = true;
}

/* A message printed above the bar. */
static void
say(struct term *t, const char *prefix, const char *msg)
{
	fprintf(t->out, "\r\033[K%s%s\n", prefix, msg);
	draw(t, true);
}

/* The position of the storyboard an event is about: error events carry
 * only its id, so look that up in the run. */
static int
event_index(const struct run *r, json_t *ev)
{
	const char *id = json_string_value(json_object_get(ev, "storyboard_id"));
	json_t *index = json_object_get(ev, "storyboard_index");

	if (json_is_integer(index))
		return (int)json_integer_value(index);
	for (size_t i = 0; id != NULL && i < r->nitems; i++)
		if (strcmp(r->items[i].storyboard_id, id) == 0)
			return r->items[i].index;
	return 0;
}

static void
remember(struct term *t, const struct run *r, json_t *ev, bool ok)
{
	char text[600];
	json_t *img = json_object_get(ev, "image");
	int index = event_index(r, ev);

	if (ok)
		snprintf(text, sizeof(text), "%4lldx%-5lld %s%s",
			 (long long)json_integer_value(json_object_get(img, "width")),
			 (long long)json_integer_value(json_object_get(img, "height")),
			 json_string_value(json_object_get(img, "file_path")),
			 json_is_true(json_object_get(img, "cached")) ? "  (cached)" : "");
	else
		snprintf(text, sizeof(text), "FAILED      %s",
			 json_string_value(json_object_get(ev, "error")));
	json_array_append_new(t->lines, json_pack("[is]", index, text));
}

void
term_sink(void *arg, const struct run *r, json_t *ev, const char *line)
{
	struct term *t = arg;
	const char *type = json_string_value(json_object_get(ev, "type"));

	if (t->json) {
		fputs(line, t->out);
		fputc('\n', t->out);
		fflush(t->out);
		return;
	}
	t->total = (int)r->nitems;
	if (strcmp(type, "progress") == 0) {
		snprintf(t->label, sizeof(t->label), "storyboard %lld",
			 (long long)json_integer_value(json_object_get(
				 json_object_get(ev, "storyboard"), "index")));
	} else if (strcmp(type, "image_generated") == 0) {
		t->ok++;
		remember(t, r, ev, true);
	} else if (strcmp(type, "error") == 0) {
		/* Only a storyboard's failure counts towards the bar. */
		if (json_object_get(ev, "storyboard_id") != NULL) {
			t->failed++;
			remember(t, r, ev, false);
		} else {
			say(t, "error: ", json_string_value(json_object_get(ev, "error")));
		}
	} else if (strcmp(type, "warning") == 0 || strcmp(type, "info") == 0) {
		say(t, strcmp(type, "warning") == 0 ? "warning: " : "",
		    json_string_value(json_object_get(ev, "message")));
	}
	draw(t, strcmp(type, "done") == 0);
}

static int
by_index(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_array_get(*(json_t *const *)a, 0));
	json_int_t y = json_integer_value(json_array_get(*(json_t *const *)b, 0));

	return (x > y) - (x < y);
}

void
term_summary(struct term *t, const struct run *r)
{
	size_t n = json_array_size(t->lines);
	json_t **rows;

	if (t->json)
		return;
	if (t->drawn)
		fputc('\n', t->out);
	fprintf(t->out, "run %s: %s: %d of %zu storyboards completed, %d failed\n", r->id,
		r->status[0] ? r->status : "unfinished", r->succeeded, r->nitems, r->failed);
	if ((rows = malloc((n ? n : 1) * sizeof(*rows))) == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		rows[i] = json_array_get(t->lines, i);
	qsort(rows, n, sizeof(*rows), by_index);
	for (size_t i = 0; i < n && i < TERM_SUMMARY_MAX; i++)
		fprintf(t->out, "  #%-4lld %s\n",
			(long long)json_integer_value(json_array_get(rows[i], 0)),
			json_string_value(json_array_get(rows[i], 1)));
	if (n > TERM_SUMMARY_MAX)
		fprintf(t->out, "  ... and %zu more: t2istage images %s\n", n - TERM_SUMMARY_MAX,
			r->project_id);
	free(rows);
	fflush(t->out);
}
