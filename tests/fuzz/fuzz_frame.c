/* The strict reading of a request's head (http_frame.c), before any route.
 * Input: the method, the version and the raw target, each on a line, then
 * one header a line as "Name: value".  A verdict of "sound" must hold what
 * the checks promise: one Host at most, no framing that two readers could
 * take apart, a target of one of the two forms. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_frame.h"

static void
check_sound(const struct http_frame *f, const struct http_target *t, const char *url)
{
	const char *path;

	if (f->content_length > 1 || f->host > 1 || f->bad_name || f->bad_value)
		abort();
	if (f->content_length > 0 && f->transfer_encoding > 0)
		abort();
	if (t->bad || !(t->absolute || t->origin))
		abort();
	path = http_frame_path(t, url);
	if (path == NULL || path[0] != '/')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line[3], *block, *h, *next;
	struct http_target t;
	struct http_frame f;

	if (fuzz_fields(data, size, '\n', line, 3, &block) < 3) {
		free(block);
		return 0;
	}
	/* The rest of the third field is the headers. */
	h = strchr(line[2], '\n');
	if (h != NULL)
		*h++ = '\0';
	http_frame_target(&t, line[2]);
	http_frame_init(&f);
	for (; h != NULL && *h != '\0'; h = next) {
		char *colon, *value;

		if ((next = strchr(h, '\n')) != NULL)
			*next++ = '\0';
		if ((colon = strchr(h, ':')) == NULL)
			continue;
		value = colon + 1 + (colon[1] == ' ');
		http_frame_header(&f, h, (size_t)(colon - h), value, strlen(value));
	}
	if (http_frame_verdict(&f, &t, line[0], line[1], 0) == NULL)
		check_sound(&f, &t, line[2]);
	free(block);
	return 0;
}
