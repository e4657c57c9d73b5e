/* fuzz: the harnesses' helpers. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

size_t
fuzz_fields(const uint8_t *data, size_t size, char sep, char **fields, size_t max,
	    char **block)
{
	char *s = fuzz_cstr(data, size), *p = s;
	size_t n = 0;

	for (size_t i = 0; i < max; i++)
		fields[i] = NULL;
	while (n < max) {
		char *end = n + 1 < max ? memchr(p, sep, (size_t)(s + size - p)) : NULL;

		fields[n++] = p;
		if (end == NULL)
			break;
		*end = '\0';
		p = end + 1;
	}
	*block = s;
	return n;
}

static void
tmpdir_remove(void)
{
	char cmd[64 + 4096];
	const char *d = fuzz_tmpdir();

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz: cannot remove %s\n", d);
}

const char *
fuzz_tmpdir(void)
{
	static char dir[4096];

	if (dir[0] == '\0') {
		const char *t = getenv("TMPDIR");

		snprintf(dir, sizeof(dir), "%s/t2i-fuzz.XXXXXX", t != NULL ? t : "/tmp");
		if (mkdtemp(dir) == NULL) {
			perror("fuzz: mkdtemp");
			abort();
		}
		atexit(tmpdir_remove);
	}
	return dir;
}
