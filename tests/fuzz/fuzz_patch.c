/* The body of PATCH /v1/projects/{id}/storyboards/{id} (project.c). */
#include <stdlib.h>

#include "fuzz.h"
#include "project.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct project_patch pt;
	char err[512];

	if (project_parse_patch((const char *)data, size, &pt, err, sizeof(err)) == 0)
		project_patch_free(&pt);
	else if (err[0] == '\0')
		abort();
	return 0;
}
