/* thumb_vips: the libvips half of thumbnails, as a module the worker loads
 * with dlopen() on the first thumbnail it makes.
 *
 * Why a module: linking libvips pulls in about a hundred shared libraries,
 * which made every start of the binary cost ~50 ms and made the
 * supervisor's fork() of each worker slower.  Only workers that make
 * thumbnails pay for libvips now, once each. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "module_abi.h"

module_thumb_fn t2i_thumb_encode;

static int thumb_ready;

/* libvips loads every module in <libdir>/vips-modules-X.Y when it starts
 * (HEIF, JPEG XL, ImageMagick, Poppler, OpenSlide on Debian), and with them
 * their libraries and constructors: libheif brings libnuma, whose
 * constructor calls set_mempolicy(), which the unit's SystemCallFilter=
 * answers with SIGSYS.  A worker only ever shrinks the PNG, JPEG and WebP
 * images it has already sniffed, which libvips reads without modules, and
 * decoders of other formats are only more code facing a provider's bytes.
 * libvips finds its modules under $VIPSHOME (and sets the variable itself
 * when it is unset); under /dev/null, which is no directory, none can ever
 * be found. */
#define THUMB_NO_MODULES "/dev/null"

static int
thumb_init(char *err, size_t errlen)
{
	if (thumb_ready)
		return 0;
	g_setenv("VIPSHOME", THUMB_NO_MODULES, TRUE);
	if (VIPS_INIT("t2istage-worker") != 0) {
		g_strlcpy(err, vips_error_buffer(), errlen);
		return -1;
	}
	/* Operations libvips marks untrusted (loaders of rarely used formats)
	 * are refused too, whatever libvips was built with. */
	vips_block_untrusted_set(TRUE);
	/* A worker makes a handful of thumbnails: no pixel cache, one thread. */
	vips_cache_set_max(0);
	vips_concurrency_set(1);
	thumb_ready = 1;
	return 0;
}

/* A JPEG whose long edge is at most edge pixels, in *out (free with free()). */
int
t2i_thumb_encode(const void *bytes, size_t size, int edge, void **out, size_t *outlen,
		 char *err, size_t errlen)
{
	VipsImage *im = NULL;
	void *jpg = NULL;
	size_t jlen = 0;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (thumb_init(err, errlen) < 0)
		return -1;
	if (vips_thumbnail_buffer((void *)bytes, size, &im, edge, "size", VIPS_SIZE_DOWN,
				  NULL) != 0 ||
	    vips_image_write_to_buffer(im, ".jpg", &jpg, &jlen, "Q", 80, NULL) != 0) {
		g_strlcpy(err, vips_error_buffer(), errlen);
		vips_error_clear();
		goto out;
	}
	/* Hand back memory the caller frees with free(), not g_free(). */
	if ((*out = malloc(jlen)) == NULL) {
		g_strlcpy(err, "out of memory", errlen);
		goto out;
	}
	memcpy(*out, jpg, jlen);
	*outlen = jlen;
	rc = 0;
out:
	if (im != NULL)
		g_object_unref(im);
	g_free(jpg);
	return rc;
}
