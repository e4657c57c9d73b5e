/* The plugins' base64 of b64_json images (plugins/phttp.c's
 * http_b64_decode): a "data:...;base64," prefix, white space and missing
 * padding tolerated.  At most 3 bytes come of every 4 characters. */
#include <stdlib.h>

#include "fuzz.h"
#include "phttp.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *out = NULL;
	size_t n = 0;

	if (http_b64_decode((const char *)data, size, &out, &n) == 0) {
		if (n > (size + 3) / 4 * 3)
			abort();
		free(out);
	}
	return 0;
}
