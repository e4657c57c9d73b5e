/* thumb: thumbnails with a long edge of THUMB_EDGE pixels, made with libvips
 * in the worker.  libvips starts threads and takes tens of milliseconds to
 * initialise, so it is started only in a worker, and only when the first
 * thumbnail is wanted: the supervisor never calls it (no threads before
 * fork). */
#ifndef T2I_THUMB_H
#define T2I_THUMB_H

#include <stddef.h>

#include "storage.h"

#define THUMB_EDGE 320

/* Writes <dir>/thumbs/<aa>/<sha256>.jpg for the stored image m and puts its
 * path in out.  Returns 0, or -1 (logged; the image is still kept). */
int thumb_make(const char *dir, const struct storage_meta *m, const void *bytes, size_t size,
	       char *out, size_t outlen);

/* Maps the thumbnail module without starting libvips (which would start
 * threads): for a template, whose workers then skip the loading. */
void thumb_prepare(void);

#endif
