/* The batch a worker is given (msg_decode_batch).  A batch that decodes
 * must encode again, and its encoding decode to the same batch. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "msg.h"

static void
same_batch(const struct msg_batch *a, const struct msg_batch *b)
{
	if (a->nitems != b->nitems || strcmp(a->plugin_path, b->plugin_path) != 0 ||
	    strcmp(a->storage_dir, b->storage_dir) != 0 || a->thumbnails != b->thumbnails ||
	    strcmp(a->api_key, b->api_key) != 0)
		abort();
	for (size_t i = 0; i < a->nitems; i++)
		if (strcmp(a->items[i].image_id, b->items[i].image_id) != 0 ||
		    strcmp(a->items[i].prompt, b->items[i].prompt) != 0 ||
		    a->items[i].width != b->items[i].width ||
		    a->items[i].last_attempt != b->items[i].last_attempt)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_batch b, again;
	char err[256], *line;
	size_t len;

	if (msg_decode_batch((const char *)data, size, &b, err, sizeof(err)) < 0) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	if ((line = msg_encode_batch(&b, &len)) == NULL)
		abort();
	if (msg_decode_batch(line, len, &again, err, sizeof(err)) < 0)
		abort();
	same_batch(&b, &again);
	msg_batch_free(&again);
	msg_batch_free(&b);
	free(line);
	return 0;
}
