/* The project file (src/core/project.c), as `import`, `run FILE` and POST
 * /v1/projects read it. */
#include <stdlib.h>

#include "fuzz.h"
#include "project.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct project *p = project_parse((const char *)data, size, "fuzz.json", err, sizeof(err));

	if (p == NULL && err[0] == '\0')
		abort();	/* every refusal names its reason */
	project_free(p);
	return 0;
}
