/* The base64 of a webhook's "whsec_" secret (hash_base64_decode).  Every
 * 4 characters give at most 3 bytes. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hash.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_cstr(data, size);
	size_t n = 0;
	unsigned char *out = hash_base64_decode(in, &n);

	if (out != NULL && n > strlen(in) / 4 * 3)
		abort();
	free(out);
	free(in);
	return 0;
}
