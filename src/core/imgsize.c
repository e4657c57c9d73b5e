/* imgsize: pixel sizes for ratio x resolution.  Landscape for 4:3 at 1k
 * (the upstream proxy's 1k table has 4:3 and 3:4 swapped; we do not copy
 * that bug). */
#include "imgsize.h"

#include <string.h>

static const char *const ratios[] = { "1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9" };
static const char *const resolutions[] = { "1k", "2k", "4k" };

static const int sizes[3][8][2] = {
	{ { 1024, 1024 }, { 1024, 768 }, { 768, 1024 }, { 1024, 576 },
	  { 576, 1024 }, { 1024, 682 }, { 682, 1024 }, { 1195, 512 } },
	{ { 2048, 2048 }, { 2304, 1728 }, { 1728, 2304 }, { 2560, 1440 },
	  { 1440, 2560 }, { 2496, 1664 }, { 1664, 2496 }, { 3024, 1296 } },
	{ { 4096, 4096 }, { 4608, 3456 }, { 3456, 4608 }, { 5120, 2880 },
	  { 2880, 5120 }, { 4992, 3328 }, { 3328, 4992 }, { 6048, 2592 } },
};

const char imgsize_ratios[] = "1:1 4:3 3:4 16:9 9:16 3:2 2:3 21:9";
const char imgsize_resolutions[] = "1k 2k 4k";

static int
index_of(const char *const *list, int n, const char *s)
{
	for (int i = 0; s != NULL && i < n; i++)
		if (strcmp(list[i], s) == 0)
			return i;
	return -1;
}

bool
imgsize_ratio_valid(const char *ratio)
{
	return index_of(ratios, 8, ratio) >= 0;
}

bool
imgsize_resolution_valid(const char *resolution)
{
	return index_of(resolutions, 3, resolution) >= 0;
}

bool
imgsize_lookup(const char *ratio, const char *resolution, int *w, int *h)
{
	int r = index_of(ratios, 8, ratio);
	int s = index_of(resolutions, 3, resolution);

	if (r < 0 || s < 0)
		return false;
	*w = sizes[s][r][0];
	*h = sizes[s][r][1];
	return true;
}
