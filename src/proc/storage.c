/* storage: content-addressed image files. */
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include "hash.h"
#include "owner.h"

const char *
storage_sniff(const void *bytes, size_t size, const char **ext)
{
	const unsigned char *b = bytes;

	if (size >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) {
		*ext = "png";
		return "image/png";
	}
	if (size >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) {
		*ext = "jpg";
		return "image/jpeg";
	}
	if (size >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) {
		*ext = "webp";
		return "image/webp";
	}
	return NULL;
}

/* libpng reads from memory through this callback.  The codecs' own
 * messages are kept for our error line instead of going to stderr, where
 * they would be log lines without our prefix and priority. */
struct png_src {
	const unsigned char *p;
	size_t left;
	char why[128];
};

static void
png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
	struct png_src *src = png_get_io_ptr(png);

	if (n > src->left)
		png_error(png, "truncated");
	memcpy(out, src->p, n);
	src->p += n;
	src->left -= n;
}

static void
png_quiet_error(png_structp png, png_const_charp msg)
{
	struct png_src *src = png_get_error_ptr(png);

	snprintf(src->why, sizeof(src->why), "%s", msg);
	png_longjmp(png, 1);
}

static void
png_quiet_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

/* As for JPEG below: setjmp here, the state in the caller's frame. */
static int
png_header(png_structp png, png_infop info, struct png_src *src, int *w, int *h)
{
	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_set_read_fn(png, src, png_read_mem);
	png_read_info(png, info);
	*w = (int)png_get_image_width(png, info);
	*h = (int)png_get_image_height(png, info);
	return 0;
}

static int
png_dims(const void *bytes, size_t size, int *w, int *h, char *why, size_t whylen)
{
	struct png_src src = { bytes, size, "" };
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_quiet_error,
						 png_quiet_warning);
	png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
	int rc = info != NULL ? png_header(png, info, &src, w, h) : -1;

	png_destroy_read_struct(&png, info != NULL ? &info : NULL, NULL);
	snprintf(why, whylen, "%s", src.why);
	return rc;
}

struct jpeg_err {
	struct jpeg_error_mgr mgr;
	jmp_buf jb;
	char why[JMSG_LENGTH_MAX];
};

static void
jpeg_fail(j_common_ptr cinfo)
{
	struct jpeg_err *jerr = (struct jpeg_err *)(void *)cinfo->err;

	jerr->mgr.format_message(cinfo, jerr->why);
	longjmp(jerr->jb, 1);
}

static void
jpeg_quiet(j_common_ptr cinfo)
{
	(void)cinfo;
}

/* setjmp lives here, and the decoder state in the caller's frame, so that
 * nothing this function changes after setjmp is read after a longjmp. */
static int
jpeg_header(struct jpeg_decompress_struct *cinfo, struct jpeg_err *jerr, const void *bytes,
	    size_t size)
{
	if (setjmp(jerr->jb))
		return -1;
	jpeg_create_decompress(cinfo);
	jpeg_mem_src(cinfo, bytes, (unsigned long)size);
	return jpeg_read_header(cinfo, TRUE) == JPEG_HEADER_OK ? 0 : -1;
}

static int
jpeg_dims(const void *bytes, size_t size, int *w, int *h, char *why, size_t whylen)
{
	struct jpeg_decompress_struct cinfo;
	struct jpeg_err jerr;
	int rc;

	memset(&cinfo, 0, sizeof(cinfo));
	cinfo.err = jpeg_std_error(&jerr.mgr);
	jerr.mgr.error_exit = jpeg_fail;
	jerr.mgr.output_message = jpeg_quiet;
	jerr.why[0] = '\0';
	rc = jpeg_header(&cinfo, &jerr, bytes, size);
	if (rc == 0) {
		*w = (int)cinfo.image_width;
		*h = (int)cinfo.image_height;
	}
	jpeg_destroy_decompress(&cinfo);
	snprintf(why, whylen, "%s", jerr.why);
	return rc;
}

int
storage_dimensions(const void *bytes, size_t size, const char *mime, int *w, int *h, char *err,
		   size_t errlen)
{
	char why[JMSG_LENGTH_MAX] = "";
	int rc = -1;

	*w = *h = 0;
	if (strcmp(mime, "image/png") == 0)
		rc = png_dims(bytes, size, w, h, why, sizeof(why));
	else if (strcmp(mime, "image/jpeg") == 0)
		rc = jpeg_dims(bytes, size, w, h, why, sizeof(why));
	else if (strcmp(mime, "image/webp") == 0)
		rc = WebPGetInfo(bytes, size, w, h) ? 0 : -1;
	if (rc < 0 || *w <= 0 || *h <= 0) {
		snprintf(err, errlen, "%s header is unreadable%s%s", mime, why[0] ? ": " : "", why);
		return -1;
	}
	return 0;
}

static int
fsync_dir_of(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir))
		return 0;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
storage_write_atomic(const char *path, const void *bytes, size_t size, char *err, size_t errlen)
{
	char tmp[4200];
	const char *p = bytes, *what = "write";
	size_t left = size;
	int fd, saved;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	/* A new file, never one found there: a worker that died left its
	 * temporary file behind (a later process may get its pid), and root
	 * must not write through a link planted in the service's directory. */
	if ((fd = owner_create(tmp, O_WRONLY, 0640, err, errlen)) < 0 && errno == EEXIST &&
	    unlink(tmp) == 0)
		fd = owner_create(tmp, O_WRONLY, 0640, err, errlen);
	if (fd < 0)
		return -1;
	while (left > 0) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = ENOSPC;	/* write() made no progress */
		if (n <= 0)
			goto fail;
		p += n;
		left -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		what = "fsync";
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		what = "close";
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		saved = errno;
		snprintf(err, errlen, "%s: rename: %s", path, strerror(saved));
		unlink(tmp);
		errno = saved;
		return -1;
	}
	/* The rename itself must survive a power loss too. */
	(void)fsync_dir_of(path);
	return 0;
fail:
	saved = errno;
	snprintf(err, errlen, "%s: %s: %s", tmp, what, strerror(saved));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}

/* A filesystem failure: the message gets the errno's name, which says more
 * to an admin than its text alone ("ENOSPC", "EROFS", "EIO"). */
static int
local_failure(int e, char *err, size_t errlen)
{
	size_t n = strlen(err);
	const char *name = strerrorname_np(e);

	snprintf(err + n, errlen - n, " (%s)", name != NULL ? name : "unknown errno");
	return STORAGE_LOCAL;
}

int
storage_put(const char *dir, const void *bytes, size_t size, struct storage_meta *m, char *err,
	    size_t errlen)
{
	char sub[4096];
	struct stat sb;

	memset(m, 0, sizeof(*m));
	if (size > STORAGE_IMAGE_MAX) {
		snprintf(err, errlen, "image too large (%zu bytes, limit %u)", size,
			 STORAGE_IMAGE_MAX);
		return -1;
	}
	if ((m->mime = storage_sniff(bytes, size, &m->ext)) == NULL) {
		snprintf(err, errlen, "not an image (%zu bytes that are not PNG, JPEG or WebP)",
			 size);
		return -1;
	}
	if (storage_dimensions(bytes, size, m->mime, &m->width, &m->height, err, errlen) < 0)
		return -1;
	hash_sha256_hex(bytes, size, m->sha256);
	m->size = (int64_t)size;
	/* A first level of 256 directories keeps each one small. */
	snprintf(sub, sizeof(sub), "%s/%.2s", dir, m->sha256);
	if (owner_mkdirs(sub, err, errlen) < 0)
		return local_failure(errno, err, errlen);
	snprintf(m->path, sizeof(m->path), "%s/%s.%s", sub, m->sha256, m->ext);
	if (stat(m->path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == (off_t)size)
		return 0;
	if (storage_write_atomic(m->path, bytes, size, err, errlen) < 0)
		return local_failure(errno, err, errlen);
	return 0;
}
