/* thumb: JPEG thumbnails through libvips. */
#include "thumb.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include <vips/vips.h>

#include "log.h"

static bool thumb_ready;

static int
thumb_init(void)
{
	if (thumb_ready)
		return 0;
	if (VIPS_INIT("t2istage-worker") != 0) {
		log_errx("libvips: %s", vips_error_buffer());
		return -1;
	}
	/* A worker makes a handful of thumbnails; caching decoded pixels and
	 * running many threads would only cost memory. */
	vips_cache_set_max(0);
	vips_concurrency_set(1);
	thumb_ready = true;
	return 0;
}

int
thumb_make(const char *dir, const struct storage_meta *m, const void *bytes, size_t size,
	   char *out, size_t outlen)
{
	char sub[4096], err[512];
	VipsImage *im = NULL;
	void *jpg = NULL;
	size_t jlen = 0;
	struct stat sb;
	int rc = -1;

	snprintf(sub, sizeof(sub), "%s/thumbs/%.2s", dir, m->sha256);
	snprintf(out, outlen, "%s/%s.jpg", sub, m->sha256);
	if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0)
		return 0;
	if (thumb_init() < 0 || storage_mkdirs(sub, err, sizeof(err)) < 0)
		goto out;
	if (vips_thumbnail_buffer((void *)bytes, size, &im, THUMB_EDGE, "size", VIPS_SIZE_DOWN,
				  NULL) != 0 ||
	    vips_image_write_to_buffer(im, ".jpg", &jpg, &jlen, "Q", 80, NULL) != 0) {
		log_warnx("thumbnail of %s: %s", m->path, vips_error_buffer());
		vips_error_clear();
		goto out;
	}
	if (storage_write_atomic(out, jpg, jlen, err, sizeof(err)) < 0) {
		log_warnx("thumbnail: %s", err);
		goto out;
	}
	rc = 0;
out:
	if (im != NULL)
		g_object_unref(im);
	g_free(jpg);
	if (rc < 0 && outlen > 0)
		out[0] = '\0';
	return rc;
}
