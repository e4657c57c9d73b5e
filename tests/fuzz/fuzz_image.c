/* Image sniffing and the width and height read from a header
 * (src/proc/storage.c), as a worker checks what a provider sent.  Bytes
 * that sniff as no type are measured as each type in turn. */
#include <stdlib.h>

#include "fuzz.h"
#include "storage.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mimes[] = { "image/png", "image/jpeg", "image/webp" };
	const char *ext = NULL, *mime = storage_sniff(data, size, &ext);
	char err[256];
	int w, h;

	for (int i = 0; i < 3; i++) {
		const char *m = mime != NULL ? mime : mimes[i];

		if (storage_dimensions(data, size, m, &w, &h, err, sizeof(err)) == 0 &&
		    (w <= 0 || h <= 0))
			abort();	/* a measured image has pixels */
		if (mime != NULL)
			break;
	}
	return 0;
}
