/* Unit tests for src/proc/storage.c: sniffing, image headers, content-addressed
 * files and sha256.  The images are made here with libpng, libjpeg and
 * libwebp, so the decoders are fed what real encoders write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>

#include "hash.h"
#include "owner.h"
#include "storage.h"

/* ---- encoders ---- */

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static void
buf_write(png_structp png, png_bytep data, png_size_t n)
{
	struct buf *b = png_get_io_ptr(png);

	if (b->len + n > b->cap) {
		size_t ncap = (b->len + n) * 2;
		unsigned char *np = realloc(b->p, ncap);

		if (np == NULL)
			png_error(png, "out of memory");
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void
buf_flush(png_structp png)
{
	(void)png;
}

/* An RGB gradient, w x h. */
static unsigned char *
pixels(int w, int h)
{
	unsigned char *px = malloc((size_t)w * (size_t)h * 3);

	assert_non_null(px);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			unsigned char *p = px + ((size_t)y * (size_t)w + (size_t)x) * 3;

			p[0] = (unsigned char)(x * 255 / (w > 1 ? w - 1 : 1));
			p[1] = (unsigned char)(y * 255 / (h > 1 ? h - 1 : 1));
			p[2] = 128;
		}
	return px;
}

/* The PNG encoder state lives here so that nothing modified after setjmp
 * is read after a longjmp. */
static int
png_encode(png_structp png, png_infop info, struct buf *b, unsigned char *px, int w, int h)
{
	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_set_write_fn(png, b, buf_write, buf_flush);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < h; y++)
		png_write_row(png, px + (size_t)y * (size_t)w * 3);
	png_write_end(png, NULL);
	return 0;
}

static unsigned char *
make_png(int w, int h, size_t *len)
{
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
	struct buf b = { NULL, 0, 0 };
	unsigned char *px = pixels(w, h);
	int rc;

	assert_non_null(info);
	rc = png_encode(png, info, &b, px, w, h);
	png_destroy_write_struct(&png, &info);
	free(px);
	assert_int_equal(rc, 0);
	*len = b.len;
	return b.p;
}

static unsigned char *
make_jpeg(int w, int h, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	unsigned char *out = NULL, *px = pixels(w, h);
	unsigned long outlen = 0;

	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &out, &outlen);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 80, TRUE);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = px + (size_t)c.next_scanline * (size_t)w * 3;

		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(px);
	assert_non_null(out);
	*len = outlen;
	return out;
}

static unsigned char *
make_webp(int w, int h, size_t *len)
{
	unsigned char *px = pixels(w, h), *out = NULL, *copy;

	*len = WebPEncodeRGB(px, w, h, w * 3, 75.0f, &out);
	free(px);
	assert_true(*len > 0);
	/* WebPFree pairs with the encoder; hand out a malloc'd copy. */
	copy = malloc(*len);
	assert_non_null(copy);
	memcpy(copy, out, *len);
	WebPFree(out);
	return copy;
}

/* The CRC of PNG chunks (ISO 3309), to forge a consistent IHDR without
 * linking zlib directly. */
static uint32_t
crc32_png(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
	}
	return c ^ 0xffffffffu;
}

/* ---- sniffing ---- */

static void
test_sniff(void **state)
{
	static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	static const unsigned char jpg[] = { 0xff, 0xd8, 0xff, 0xe0 };
	static const unsigned char webp[] = "RIFF\x10\x00\x00\x00WEBPVP8 ";
	static const unsigned char gif[] = "GIF89a\x01\x00\x01\x00";
	static const unsigned char avi[] = "RIFF\x10\x00\x00\x00" "AVI LIST";
	const char *ext = "unset";

	(void)state;
	assert_string_equal(storage_sniff(png, sizeof(png), &ext), "image/png");
	assert_string_equal(ext, "png");
	assert_string_equal(storage_sniff(jpg, 3, &ext), "image/jpeg");
	assert_string_equal(ext, "jpg");
	assert_string_equal(storage_sniff(webp, 12, &ext), "image/webp");
	assert_string_equal(ext, "webp");

	/* Too short for the magic. */
	ext = "unset";
	assert_null(storage_sniff(png, sizeof(png) - 1, &ext));
	assert_null(storage_sniff(jpg, 2, &ext));
	assert_null(storage_sniff(webp, 11, &ext));
	assert_null(storage_sniff("", 0, &ext));
	/* Other formats and garbage. */
	assert_null(storage_sniff(gif, sizeof(gif) - 1, &ext));
	assert_null(storage_sniff(avi, sizeof(avi) - 1, &ext));
	assert_null(storage_sniff("<html><body>502 Bad Gateway</body></html>", 41, &ext));
	assert_null(storage_sniff("{\"error\":\"rate limited\"}", 24, &ext));
	assert_null(storage_sniff("\x89PNG\r\n\x1a\r", 8, &ext));	/* CRLF-mangled */
	assert_null(storage_sniff("\xff\xd8\xfe", 3, &ext));
	assert_string_equal(ext, "unset");
}

/* ---- dimensions ---- */

static char err[1024];

static void
dims_ok(const unsigned char *img, size_t len, const char *mime, int w, int h)
{
	const char *ext;
	int gw = -1, gh = -1;

	assert_string_equal(storage_sniff(img, len, &ext), mime);
	strcpy(err, "(no error)");
	if (storage_dimensions(img, len, mime, &gw, &gh, err, sizeof(err)) != 0)
		print_error("%s %dx%d: %s\n", mime, w, h, err);
	assert_int_equal(storage_dimensions(img, len, mime, &gw, &gh, err, sizeof(err)), 0);
	assert_int_equal(gw, w);
	assert_int_equal(gh, h);
}

static void
dims_refused(const unsigned char *img, size_t len, const char *mime)
{
	int gw = -1, gh = -1;
	char want[64];

	strcpy(err, "(no error)");
	assert_int_equal(storage_dimensions(img, len, mime, &gw, &gh, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s header is unreadable", mime);
	/* Possibly followed by ": " and the codec's reason. */
	if (strncmp(err, want, strlen(want)) != 0)
		print_error("want: %s...\ngot:  %s\n", want, err);
	assert_memory_equal(err, want, strlen(want));
	assert_true(err[strlen(want)] == '\0' || err[strlen(want)] == ':');
	assert_null(strchr(err, '\n'));
	assert_int_equal(gw, 0);
	assert_int_equal(gh, 0);
}

static void
test_dimensions_png(void **state)
{
	size_t len;
	unsigned char *img = make_png(37, 21, &len), *bad;

	(void)state;
	dims_ok(img, len, "image/png", 37, 21);
	/* Truncated inside IHDR, and right after the signature. */
	dims_refused(img, 20, "image/png");
	assert_string_equal(err, "image/png header is unreadable: truncated");
	dims_refused(img, 8, "image/png");
	/* A corrupt IHDR: its CRC no longer matches. */
	bad = malloc(len);
	assert_non_null(bad);
	memcpy(bad, img, len);
	bad[19] ^= 0x40;	/* the low byte of the width */
	dims_refused(bad, len, "image/png");
	assert_string_equal(err, "image/png header is unreadable: IHDR: CRC error");
	/* A zero width with a matching CRC is still refused. */
	memcpy(bad, img, len);
	memset(bad + 16, 0, 4);
	{
		uint32_t crc = crc32_png(bad + 12, 17);

		bad[29] = (unsigned char)(crc >> 24);
		bad[30] = (unsigned char)(crc >> 16);
		bad[31] = (unsigned char)(crc >> 8);
		bad[32] = (unsigned char)crc;
	}
	dims_refused(bad, len, "image/png");
	free(bad);
	free(img);

	img = make_png(1, 1, &len);
	dims_ok(img, len, "image/png", 1, 1);
	free(img);
}

static void
test_dimensions_jpeg(void **state)
{
	size_t len;
	unsigned char *img = make_jpeg(64, 48, &len);

	(void)state;
	dims_ok(img, len, "image/jpeg", 64, 48);
	/* Only the start of the stream: no frame header yet. */
	dims_refused(img, 3, "image/jpeg");
	dims_refused(img, 20, "image/jpeg");
	/* Garbage after the SOI marker. */
	{
		unsigned char bad[64];

		memset(bad, 0x5a, sizeof(bad));
		bad[0] = 0xff;
		bad[1] = 0xd8;
		bad[2] = 0xff;
		dims_refused(bad, sizeof(bad), "image/jpeg");
		assert_non_null(strstr(err, "marker"));	/* libjpeg's reason */
	}
	free(img);

	img = make_jpeg(3, 1000, &len);
	dims_ok(img, len, "image/jpeg", 3, 1000);
	free(img);
}

static void
test_dimensions_webp(void **state)
{
	size_t len;
	unsigned char *img = make_webp(50, 30, &len), *bad;

	(void)state;
	dims_ok(img, len, "image/webp", 50, 30);
	dims_refused(img, 12, "image/webp");
	dims_refused(img, 20, "image/webp");
	/* A broken VP8 start code. */
	bad = malloc(len);
	assert_non_null(bad);
	memcpy(bad, img, len);
	assert_memory_equal(bad + 12, "VP8", 3);
	memset(bad + 20, 0, 10);
	dims_refused(bad, len, "image/webp");
	free(bad);
	free(img);
}

static void
test_dimensions_mismatch(void **state)
{
	size_t len;
	unsigned char *img = make_png(8, 8, &len);

	(void)state;
	/* A PNG is not read as a JPEG or WebP, nor an unknown type at all. */
	dims_refused(img, len, "image/jpeg");
	dims_refused(img, len, "image/webp");
	dims_refused(img, len, "image/gif");
	free(img);
}

/* ---- sha256 ---- */

static void
test_sha256(void **state)
{
	char out[65];

	(void)state;
	memset(out, 'z', sizeof(out));
	hash_sha256_hex("abc", 3, out);
	assert_string_equal(out,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hash_sha256_hex("", 0, out);
	assert_string_equal(out,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hash_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, out);
	assert_string_equal(out,
			    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* ---- storage_put ---- */

struct fixture {
	char dir[PATH_MAX];
	mode_t old_umask;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char tmpl[] = "/tmp/t2i-storage-XXXXXX";

	if (fx == NULL || mkdtemp(tmpl) == NULL || realpath(tmpl, fx->dir) == NULL)
		return -1;
	fx->old_umask = umask(022);
	*state = fx;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	umask(fx->old_umask);
	free(fx);
	return rc;
}

static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
put_one(struct fixture *fx, const char *root, unsigned char *img, size_t len, const char *mime,
	const char *ext, int w, int h)
{
	struct storage_meta m;
	char sha[65], want[PATH_MAX + 200], sub[PATH_MAX + 8];
	unsigned char *got;
	size_t glen;
	struct stat sb;
	ino_t ino;

	(void)fx;
	hash_sha256_hex(img, len, sha);
	strcpy(err, "(no error)");
	if (storage_put(root, img, len, &m, err, sizeof(err)) != 0)
		print_error("%s: %s\n", mime, err);
	assert_string_equal(err, "(no error)");
	snprintf(sub, sizeof(sub), "%s/%.2s", root, sha);
	snprintf(want, sizeof(want), "%s/%s.%s", sub, sha, ext);
	assert_string_equal(m.path, want);
	assert_string_equal(m.sha256, sha);
	assert_string_equal(m.mime, mime);
	assert_string_equal(m.ext, ext);
	assert_int_equal(m.width, w);
	assert_int_equal(m.height, h);
	assert_true(m.size == (int64_t)len);

	got = read_file(m.path, &glen);
	assert_int_equal(glen, len);
	assert_memory_equal(got, img, len);
	free(got);
	assert_int_equal(stat(m.path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0640);
	ino = sb.st_ino;
	assert_int_equal(stat(sub, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0750);
	/* No temporary file is left beside it. */
	assert_int_equal(count_entries(sub), 1);

	/* Twice: same answer, same file, not rewritten. */
	{
		struct storage_meta m2;

		assert_int_equal(storage_put(root, img, len, &m2, err, sizeof(err)), 0);
		assert_string_equal(m2.path, m.path);
		assert_string_equal(m2.sha256, m.sha256);
		assert_int_equal(m2.width, w);
		assert_int_equal(stat(m.path, &sb), 0);
		assert_true(sb.st_ino == ino);
		assert_int_equal(count_entries(sub), 1);
	}
}

static void
test_put(void **state)
{
	struct fixture *fx = *state;
	char root[PATH_MAX + 32];
	size_t len;
	unsigned char *img;

	/* The storage dir itself is created, with its parents. */
	snprintf(root, sizeof(root), "%s/var/images", fx->dir);
	img = make_png(40, 30, &len);
	put_one(fx, root, img, len, "image/png", "png", 40, 30);
	free(img);
	img = make_jpeg(17, 9, &len);
	put_one(fx, root, img, len, "image/jpeg", "jpg", 17, 9);
	free(img);
	img = make_webp(12, 34, &len);
	put_one(fx, root, img, len, "image/webp", "webp", 12, 34);
	free(img);
}

static void
test_put_refused(void **state)
{
	struct fixture *fx = *state;
	struct storage_meta m;
	static const char html[] = "<html><body>403 Forbidden</body></html>";
	size_t len;
	unsigned char *img = make_png(10, 10, &len);

	strcpy(err, "(no error)");
	assert_int_equal(storage_put(fx->dir, html, sizeof(html) - 1, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an image"));
	assert_non_null(strstr(err, "39 bytes"));
	assert_int_equal(storage_put(fx->dir, "", 0, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an image"));
	/* Right magic, broken header. */
	assert_int_equal(storage_put(fx->dir, img, 24, &m, err, sizeof(err)), -1);
	assert_string_equal(err, "image/png header is unreadable: truncated");
	/* Nothing was written for any of them. */
	assert_int_equal(count_entries(fx->dir), 0);
	free(img);
}

static void
test_put_unwritable(void **state)
{
	struct fixture *fx = *state;
	struct storage_meta m;
	char root[PATH_MAX + 32];
	size_t len;
	unsigned char *img = make_png(10, 10, &len);

	/* A file where a directory should be. */
	snprintf(root, sizeof(root), "%s/file", fx->dir);
	assert_int_equal(storage_write_atomic(root, "x", 1, err, sizeof(err)), 0);
	/* The filesystem's refusal, not the image's fault: said so, with the
	 * path and the errno's name. */
	assert_int_equal(storage_put(root, img, len, &m, err, sizeof(err)), STORAGE_LOCAL);
	assert_non_null(strstr(err, "mkdir"));
	assert_non_null(strstr(err, "/file/"));
	assert_non_null(strstr(err, "(ENOTDIR)"));
	free(img);
}

static void
test_mkdirs_and_atomic(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 64];
	unsigned char *got;
	size_t len;

	snprintf(path, sizeof(path), "%s/a/b/c", fx->dir);
	assert_int_equal(owner_mkdirs(path, err, sizeof(err)), 0);
	assert_int_equal(owner_mkdirs(path, err, sizeof(err)), 0);	/* exists: fine */
	snprintf(path, sizeof(path), "%s/a/b/c/", fx->dir);
	assert_int_equal(owner_mkdirs(path, err, sizeof(err)), 0);	/* trailing slash */

	snprintf(path, sizeof(path), "%s/a/b/c/f.bin", fx->dir);
	assert_int_equal(storage_write_atomic(path, "first", 5, err, sizeof(err)), 0);
	assert_int_equal(storage_write_atomic(path, "second!", 7, err, sizeof(err)), 0);
	got = read_file(path, &len);
	assert_int_equal(len, 7);
	assert_memory_equal(got, "second!", 7);
	free(got);

	snprintf(path, sizeof(path), "%s/missing/f.bin", fx->dir);
	assert_int_equal(storage_write_atomic(path, "x", 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "open"));
}

/* A temporary file left by a dead process with our pid, or a link planted
 * in its place, is neither reused nor written through. */
static void
test_atomic_never_follows_the_temporary_name(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 64], tmp[PATH_MAX + 96], victim[PATH_MAX + 64];
	unsigned char *got;
	size_t len;

	snprintf(path, sizeof(path), "%s/f.bin", fx->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	snprintf(victim, sizeof(victim), "%s/victim", fx->dir);
	assert_int_equal(storage_write_atomic(victim, "keep", 4, err, sizeof(err)), 0);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(storage_write_atomic(path, "new", 3, err, sizeof(err)), 0);
	got = read_file(victim, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(got, "keep", 4);
	free(got);
	got = read_file(path, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "new", 3);
	free(got);
	assert_int_equal(access(tmp, F_OK), -1);
}

/* Root writing into a directory of another user (the CLI run as root
 * against the service's state) leaves everything owned by that user. */
static void
test_root_creates_with_the_directory_owner(void **state)
{
	struct fixture *fx = *state;
	const uid_t uid = 61999;
	const gid_t gid = 61998;
	char root[PATH_MAX + 32];
	struct storage_meta m;
	struct stat sb;
	size_t len;
	unsigned char *img = make_png(12, 8, &len);

	if (geteuid() != 0) {
		free(img);
		skip();
	}
	snprintf(root, sizeof(root), "%s/state", fx->dir);
	assert_int_equal(mkdir(root, 0700), 0);
	assert_int_equal(chown(root, uid, gid), 0);
	assert_int_equal(storage_put(root, img, len, &m, err, sizeof(err)), 0);
	assert_int_equal(stat(m.path, &sb), 0);
	assert_true(sb.st_uid == uid && sb.st_gid == gid);
	*strrchr(m.path, '/') = '\0';
	assert_int_equal(stat(m.path, &sb), 0);
	assert_true(sb.st_uid == uid && sb.st_gid == gid && S_ISDIR(sb.st_mode));
	free(img);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_dimensions_png),
		cmocka_unit_test(test_dimensions_jpeg),
		cmocka_unit_test(test_dimensions_webp),
		cmocka_unit_test(test_dimensions_mismatch),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test_setup_teardown(test_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_unwritable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdirs_and_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_never_follows_the_temporary_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_root_creates_with_the_directory_owner, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
