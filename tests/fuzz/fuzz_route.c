/* The route matcher of the HTTP API (api_routes.match): method, a newline,
 * then the path.  A match gives lower-case UUIDs; a miss, 404 or 405 with
 * the methods the path takes. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fuzz.h"
#include "project.h"

static void
lower_uuid(const char *id)
{
	if (id[0] == '\0')
		return;
	if (!project_is_uuid(id))
		abort();
	for (const char *p = id; *p != '\0'; p++)
		if (isupper((unsigned char)*p))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *f[2], *block, id[37], id2[37], allow[48];
	unsigned status = 0;
	const void *r;

	if (fuzz_fields(data, size, '\n', f, 2, &block) < 2) {
		free(block);
		return 0;
	}
	r = api_routes.match(f[0], f[1], id, id2, &status, allow, sizeof(allow));
	if (r != NULL) {
		lower_uuid(id);
		lower_uuid(id2);
		(void)api_routes.flags(r);
	} else if (status != 404 && !(status == 405 && allow[0] != '\0')) {
		abort();
	}
	free(block);
	return 0;
}
