/* Signed image URLs (urlsig.c): the verification of ?exp= and ?sig= for a
 * path, and the signing of an event's image objects.  The input is
 * "path\nexp\nsig\nevent body".  What is signed must verify. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "urlsig.h"

#define NOW 1767225600

/* The URL urlsig_url made for path verifies at the same time. */
static void
round_trip(const struct urlsig *u, const char *path)
{
	char url[1024], *q;

	urlsig_url(u, path, NOW, url, sizeof(url));
	if (url[0] == '\0')
		return;		/* too long for the buffer */
	/* The last "?exp=": the path may hold one of its own. */
	size_t i = strlen(url);

	while (i > 0 && strncmp(url + i, "?exp=", 5) != 0)
		i--;
	q = url + i;
	char *amp = strncmp(q, "?exp=", 5) == 0 ? strstr(q, "&sig=") : NULL;

	if (amp == NULL)
		abort();
	*q = '\0';
	*amp = '\0';
	if (urlsig_check(u, url, q + 5, amp + 5, NOW) != URLSIG_OK)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char key[32] = "fedcba9876543210fedcba9876543210";
	struct urlsig u = { .key = key, .keylen = sizeof(key), .ttl = 3600 };
	char *f[4], *block, *ev;
	enum urlsig_verdict v;

	fuzz_fields(data, size, '\n', f, 4, &block);
	if (f[0] != NULL) {
		v = urlsig_check(&u, f[0], f[1], f[2], NOW);
		if (urlsig_verdict_text(v) == NULL)
			abort();
		round_trip(&u, f[0]);
	}
	if (f[3] != NULL && (ev = urlsig_event(&u, "image_generated", f[3], NOW)) != NULL)
		free(ev);
	free(block);
	return 0;
}
