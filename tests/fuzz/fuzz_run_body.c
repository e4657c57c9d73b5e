/* The body of POST /v1/projects/{id}/image-generation (api_run.c's
 * parse_run_body, reached by including the file). */
#include "api_run.c"

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req rq = { .body = size > 0 ? fuzz_cstr(data, size) : NULL, .len = size };
	struct run_body b;
	char err[512];

	if (parse_run_body(&rq, &b, err, sizeof(err)) == 0)
		json_decref(b.ids);
	else if (err[0] == '\0' || b.ids != NULL)
		abort();
	free(rq.body);
	return 0;
}
