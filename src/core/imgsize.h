/* imgsize: the ratio x resolution table of pixel sizes (doc/providers.md). */
#ifndef T2I_IMGSIZE_H
#define T2I_IMGSIZE_H

#include <stdbool.h>

/* Sets *w and *h and returns true when ratio and resolution are known. */
bool imgsize_lookup(const char *ratio, const char *resolution, int *w, int *h);
bool imgsize_ratio_valid(const char *ratio);
bool imgsize_resolution_valid(const char *resolution);

/* Space-separated lists, for error messages. */
extern const char imgsize_ratios[];
extern const char imgsize_resolutions[];

#endif
