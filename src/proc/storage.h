/* storage: image files under storage.dir, named by their sha256.
 * Worker side only: sniffs the type from the bytes, reads the width and
 * height, and writes atomically (temporary file, fsync, rename, fsync of the
 * directory), so a crash leaves either no file or a whole one. */
#ifndef T2I_STORAGE_H
#define T2I_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#define STORAGE_IMAGE_MAX (64u * 1024 * 1024)

struct storage_meta {
	char path[4096];	/* <dir>/<aa>/<sha256>.<ext> */
	char sha256[65];
	const char *mime;	/* "image/png", "image/jpeg", "image/webp" */
	const char *ext;
	int width, height;
	int64_t size;
};

/* "image/png" etc. from magic bytes, or NULL when not an image we keep. */
const char *storage_sniff(const void *bytes, size_t size, const char **ext);

/* Width and height from the image header, using the codec libraries. */
int storage_dimensions(const void *bytes, size_t size, const char *mime, int *w, int *h,
		       char *err, size_t errlen);

/* storage_put's answer when the bytes are an image but the filesystem
 * refused them (a full disk, a read-only directory, an I/O error): the
 * fault is ours, not the provider's, and err names the path and errno. */
#define STORAGE_LOCAL (-2)

/* Sniffs, measures, hashes and stores bytes.  An existing file with the
 * same name already holds the same bytes and is kept.  Returns 0, -1 when
 * the bytes are no image we keep, or STORAGE_LOCAL. */
int storage_put(const char *dir, const void *bytes, size_t size, struct storage_meta *m,
		char *err, size_t errlen);

/* Writes bytes to path atomically (also used for thumbnails). */
int storage_write_atomic(const char *path, const void *bytes, size_t size, char *err,
			 size_t errlen);


#endif
