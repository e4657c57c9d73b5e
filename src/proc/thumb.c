/* thumb: JPEG thumbnails, made in the worker by the thumb_vips module. */
#include "thumb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "module.h"
#include "module_abi.h"
#include "owner.h"

void
thumb_prepare(void)
{
	(void)module_symbol(MODULE_THUMB, MODULE_THUMB_ENCODE);
}

int
thumb_make(const char *dir, const struct storage_meta *m, const void *bytes, size_t size,
	   char *out, size_t outlen)
{
	char sub[4096], err[512];
	void *jpg = NULL;
	size_t jlen = 0;
	struct stat sb;
	module_thumb_fn *encode;
	int rc = -1;

	snprintf(sub, sizeof(sub), "%s/thumbs/%.2s", dir, m->sha256);
	snprintf(out, outlen, "%s/%s.jpg", sub, m->sha256);
	if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0)
		return 0;
	*(void **)&encode = module_symbol(MODULE_THUMB, MODULE_THUMB_ENCODE);
	if (encode == NULL)
		goto out;	/* module_symbol() said why */
	if (owner_mkdirs(sub, err, sizeof(err)) < 0) {
		log_warnx("thumbnail: %s", err);
		goto out;
	}
	if (encode(bytes, size, THUMB_EDGE, &jpg, &jlen, err, sizeof(err)) < 0) {
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
