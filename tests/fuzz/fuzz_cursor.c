/* The page cursor of GET /v1/projects?after= (store_query.c's
 * cursor_decode, reached by including the file).  A cursor that decodes
 * encodes to itself when its rowid is written without leading zeros.
 * Then the cursors of the other lists (store_page.c's store_cursor_read):
 * one that reads, made again from what was read, reads the same. */
#include "store_query.c"

#include "fuzz.h"

static void
list_cursor(const char *in, char tag)
{
	char a[STORE_CURSOR_MAX], b[STORE_CURSOR_MAX], again[STORE_CURSOR_MAX];
	char a2[STORE_CURSOR_MAX], b2[STORE_CURSOR_MAX];
	int64_t v;

	if (!store_cursor_read(in, tag, a, b))
		return;
	(void)store_cursor_int(a, &v);
	store_cursor_make(again, tag, a, b);
	if (again[0] != '\0' && (!store_cursor_read(again, tag, a2, b2) ||
				 strcmp(a, a2) != 0 || strcmp(b, b2) != 0))
		abort();
}

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
	for (const char *tag = "sie"; *tag != '\0'; tag++)
		list_cursor(in, *tag);
	free(in);
	return 0;
}
