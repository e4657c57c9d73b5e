/* webasset: the dashboard's files (web/), compiled into the binary.  The
 * table is written at build time by tools/webembed from the files of web/, so that the
 * service reads nothing from disk and fetches nothing to serve them. */
#ifndef T2I_WEBASSET_H
#define T2I_WEBASSET_H

#include <stddef.h>

struct webasset {
	const char *name;		/* the file's name in web/, "index.html" */
	const char *type;		/* its Content-Type */
	const unsigned char *data;	/* its bytes, followed by a NUL not in len */
	size_t len;
	const char *etag;		/* "\"<hex>\"": of its bytes, for If-None-Match */
};

/* The generated table (build/gen/webasset_data.c), in name order. */
extern const struct webasset webasset_table[];
extern const size_t webasset_count;

/* The file called name, or NULL. */
const struct webasset *webasset_find(const char *name);

#endif
