/* webasset: lookup in the table tools/webembed writes. */
#include "webasset.h"

#include <string.h>

const struct webasset *
webasset_find(const char *name)
{
	/* A handful of files: a binary search would save nothing. */
	for (size_t i = 0; i < webasset_count; i++)
		if (strcmp(webasset_table[i].name, name) == 0)
			return &webasset_table[i];
	return NULL;
}
