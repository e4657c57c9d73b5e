/* The configuration file (src/core/config.c), through a file as
 * config_load() reads it: libconfig's parser, then every key's checks.
 * The file lies in a scratch directory of its own, so that the relative
 * paths it names resolve there. */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[4200], err[1024];
	struct config *cfg;
	FILE *f;

	snprintf(path, sizeof(path), "%s/t2istage.conf", fuzz_tmpdir());
	if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	cfg = config_load(path, err, sizeof(err));
	if (cfg == NULL && err[0] == '\0')
		abort();
	config_free(cfg);
	return 0;
}
