/* thumb: JPEG thumbnails, made in the worker by the thumb_vips module.
 * The module is found beside the binary: <exe dir>/lib/t2istage/ in the
 * build tree, <exe dir>/../lib/t2istage/ when installed. */
#include "thumb.h"

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define THUMB_MODULE "thumb_vips.so"

typedef int thumb_encode_fn(const void *bytes, size_t size, int edge, void **out,
			    size_t *outlen, char *err, size_t errlen);

static thumb_encode_fn *thumb_encode;
static bool thumb_tried;

static void *
thumb_open(void)
{
	static const char *const rel[] = { "lib/t2istage", "../lib/t2istage" };
	char exe[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	void *h;

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", dirname(exe), rel[i], THUMB_MODULE);
		if (access(path, R_OK) == 0 && (h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) != NULL)
			return h;
		exe[n] = '\0';	/* dirname() may have written into exe */
	}
	log_warnx("thumbnails off: %s not found beside the binary", THUMB_MODULE);
	return NULL;
}

static int
thumb_load(void)
{
	void *h;

	if (thumb_tried)
		return thumb_encode != NULL ? 0 : -1;
	thumb_tried = true;
	if ((h = thumb_open()) == NULL)
		return -1;
	*(void **)&thumb_encode = dlsym(h, "t2i_thumb_encode");
	return thumb_encode != NULL ? 0 : -1;
}

int
thumb_make(const char *dir, const struct storage_meta *m, const void *bytes, size_t size,
	   char *out, size_t outlen)
{
	char sub[4096], err[512];
	void *jpg = NULL;
	size_t jlen = 0;
	struct stat sb;
	int rc = -1;

	snprintf(sub, sizeof(sub), "%s/thumbs/%.2s", dir, m->sha256);
	snprintf(out, outlen, "%s/%s.jpg", sub, m->sha256);
	if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0)
		return 0;
	if (thumb_load() < 0 || storage_mkdirs(sub, err, sizeof(err)) < 0)
		goto out;
	if (thumb_encode(bytes, size, THUMB_EDGE, &jpg, &jlen, err, sizeof(err)) < 0) {
		log_warnx("thumbnail of %s: %s", m->path, err);
		goto out;
	}
	if (storage_write_atomic(out, jpg, jlen, err, sizeof(err)) < 0) {
		log_warnx("thumbnail: %s", err);
		goto out;
	}
	rc = 0;
out:
	free(jpg);
	if (rc < 0 && outlen > 0)
		out[0] = '\0';
	return rc;
}
