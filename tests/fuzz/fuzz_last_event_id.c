/* The Last-Event-ID header of an SSE reconnect (api_run.c's
 * last_event_id, reached by including the file), read through the MHD
 * call table as the service reads it. */
#include "api_run.c"

#include "fuzz.h"

static const char *header;

static const char *
lookup(struct MHD_Connection *conn, enum MHD_ValueKind kind, const char *name)
{
	(void)conn;
	return kind == MHD_HEADER_KIND && strcmp(name, MHD_HTTP_HEADER_LAST_EVENT_ID) == 0
		       ? header : NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req rq = { 0 };
	char *v = fuzz_cstr(data, size);
	int64_t seq;

	mhd.lookup_connection_value = lookup;
	header = v;
	seq = last_event_id(&rq);
	/* -1 (refused) or a seq whose cursor, seq + 1, cannot overflow */
	if (seq < -1 || seq > INT64_MAX / 2)
		abort();
	free(v);
	return 0;
}
