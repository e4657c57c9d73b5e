/* The page cursor of GET /v1/projects?after= (store_query.c's
 * cursor_decode, reached by including the file).  A cursor that decodes
 * encodes to itself when its rowid is written without leading zeros. */
#include "store_query.c"

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_cstr(data, size), ts[CURSOR_TS + 1], again[STORE_CURSOR_MAX];
	int64_t rowid;

	if (cursor_decode(in, ts, &rowid)) {
		cursor_encode(ts, rowid, again);
		if (again[0] == '\0')
			abort();
		if (rowid > 0 && in[2 * CURSOR_TS] == '3' && in[2 * CURSOR_TS + 1] != '0' &&
		    strcmp(again, in) != 0)
			abort();
	}
	free(in);
	return 0;
}
