/*
 * placeholder: the offline provider.
 *
 * Makes a real PNG of exactly the requested size without any network, so a
 * project can be run end to end (demo, tests, a pipeline without credits).
 * The picture is deterministic per prompt and size: a diagonal gradient in
 * two colours derived from an FNV-1a hash of the prompt (a cheap spread of
 * colours, not a security use), a frame, the storyboard's index in large
 * digits, the start of the prompt below it and "PLACEHOLDER WxH RATIO" along
 * the bottom, all in a built-in 5x7 bitmap font scaled to the image.
 *
 * Rows are rendered one at a time straight into libpng, so memory stays at
 * one row plus the compressed output even at 8192x8192; fast zlib settings
 * keep a 2560x1440 image in the tens of milliseconds.
 */
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "t2istage/plugin.h"

T2I_PLUGIN("placeholder", "1.0", "offline placeholder images");

#define PH_MAX_SIDE 8192
#define PH_PROMPT_CHARS 40
#define PH_LABEL_MAX 64		/* glyphs per line; the longest line is the footer */
#define PH_LABELS 6		/* three lines, each with its shadow */
#define GLYPH_W 5
#define GLYPH_H 7
#define CELL_W (GLYPH_W + 1)	/* one column of spacing between glyphs */

/* ------------------------------------------------------------------ font */

/* 5x7 glyphs, one byte per row from the top, bit 4 the leftmost pixel.
 * Characters not listed here (all zero, except space) are drawn as a box. */
static const uint8_t font[128][GLYPH_H] = {
	['0'] = {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},
	['1'] = {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	['2'] = {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},
	['3'] = {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	['4'] = {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},
	['5'] = {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	['6'] = {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},
	['7'] = {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	['8'] = {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},
	['9'] = {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	['A'] = {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	['B'] = {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	['C'] = {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},
	['D'] = {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	['E'] = {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},
	['F'] = {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	['G'] = {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},
	['H'] = {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	['I'] = {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
	['J'] = {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	['K'] = {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},
	['L'] = {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	['M'] = {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11},
	['N'] = {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	['O'] = {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	['P'] = {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	['Q'] = {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D},
	['R'] = {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	['S'] = {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E},
	['T'] = {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	['U'] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	['V'] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	['W'] = {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A},
	['X'] = {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	['Y'] = {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04},
	['Z'] = {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	['.'] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C},
	[','] = {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},
	[':'] = {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00},
	[';'] = {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08},
	['!'] = {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04},
	['?'] = {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04},
	['-'] = {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},
	['_'] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F},
	['\''] = {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00},
	['"'] = {0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00},
	['('] = {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
	[')'] = {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	['/'] = {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},
	['+'] = {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00},
	['='] = {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00},
	['#'] = {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A},
	['%'] = {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
	['&'] = {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D},
	['*'] = {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00},
};

static const uint8_t glyph_box[GLYPH_H] = {0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F};
static const uint8_t glyph_space[GLYPH_H];

/* The glyph for one code point: lower case folds to upper case, spaces and
 * control characters are blank, anything the font lacks is a box. */
static const uint8_t *glyph_for(uint32_t cp)
{
	static const uint8_t zero[GLYPH_H];

	if (cp >= 'a' && cp <= 'z')
		cp -= 'a' - 'A';
	if (cp <= ' ' || cp == 0x7F)
		return glyph_space;
	if (cp < 128 && memcmp(font[cp], zero, GLYPH_H) != 0)
		return font[cp];
	return glyph_box;
}

/* Turns UTF-8 text into at most max glyphs, one per character: a UTF-8 lead
 * byte (or a stray byte) becomes one glyph, continuation bytes are skipped.
 * Text cut short ends in "..." so the reader knows there was more. */
static int text_glyphs(const char *s, const uint8_t **out, int max)
{
	const unsigned char *p = (const unsigned char *)s;
	int n = 0;

	for (; *p != '\0'; p++) {
		if (*p >= 0x80 && *p < 0xC0)
			continue;
		if (n == max) {
			if (max >= 4)
				out[max - 3] = out[max - 2] = out[max - 1] = font['.'];
			break;
		}
		out[n++] = glyph_for(*p < 0x80 ? *p : 0xFFFD);
	}
	return n;
}

/* ---------------------------------------------------------------- scene */

/* One line of text at pixel position (x, y), each font pixel s x s. */
struct label {
	int x, y, s, n;
	uint8_t rgb[3];
	const uint8_t *g[PH_LABEL_MAX];
};

/* Everything needed to render any row of the image on demand. */
struct scene {
	int w, h;
	uint8_t *lut;		/* gradient colour for x + y, 3 bytes each */
	int border;		/* outer frame thickness */
	int inset, line;	/* inner frame line: distance from the edge, width */
	uint8_t frame[3];
	int nlab;
	struct label lab[PH_LABELS];
};

/* FNV-1a, 32 bits: a stable, cheap hash to pick colours from the prompt. */
static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

/* Spreads the hash so that colours picked with nearby keys look unrelated. */
static uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* A colour whose channels lie in [lo, lo + span). */
static void pick_colour(uint32_t hash, uint32_t key, int lo, int span, uint8_t rgb[3])
{
	uint32_t v = mix32(hash + key * 0x9e3779b9u);

	for (int i = 0; i < 3; i++)
		rgb[i] = (uint8_t)(lo + (int)((v >> (8 * i)) & 0xFF) % span);
}

/* The diagonal gradient as a table indexed by x + y: each row of the image
 * is then one memcpy from this table. */
static uint8_t *gradient_lut(int w, int h, uint32_t hash)
{
	int n = w + h - 1;
	uint8_t a[3], b[3];
	uint8_t *lut = malloc((size_t)n * 3);

	if (lut == NULL)
		return NULL;
	/* Dark to medium colours, so that white text stays legible. */
	pick_colour(hash, 1, 16, 96, a);
	pick_colour(hash, 2, 64, 112, b);
	for (int k = 0; k < n; k++)
		for (int c = 0; c < 3; c++)
			lut[3 * k + c] = (uint8_t)(a[c] + (b[c] - a[c]) * k / (n > 1 ? n - 1 : 1));
	return lut;
}

static int imin(int a, int b)
{
	return a < b ? a : b;
}

static int imax(int a, int b)
{
	return a > b ? a : b;
}

/* Adds a centred line of text at scale s with its top at y, cut to what fits
 * between the frames, preceded by a dark shadow that keeps it readable on
 * any part of the gradient. */
static void add_line(struct scene *sc, const char *text, int max, int s, int y)
{
	struct label *shadow = &sc->lab[sc->nlab++];
	struct label *l = &sc->lab[sc->nlab++];
	int room = sc->w - 2 * (sc->inset + sc->line) - 2 * s;
	int fit = imax(1, (room + s) / (CELL_W * s));
	int d = imax(1, s / 5);

	l->n = text_glyphs(text, l->g, imin(max, imin(fit, PH_LABEL_MAX)));
	l->s = s;
	l->x = (sc->w - (CELL_W * l->n - 1) * s) / 2;
	l->y = y;
	memset(l->rgb, 0xFF, 3);
	*shadow = *l;
	shadow->x += d;
	shadow->y += d;
	memset(shadow->rgb, 0x10, 3);
}

/* Lays out the frame and the three lines of text for this image size. */
static void scene_layout(struct scene *sc, const struct t2i_request *req, uint32_t hash)
{
	int w = sc->w, h = sc->h;
	char index[16], footer[PH_LABEL_MAX];
	int nd, big, small, foot, ybig;

	sc->border = imax(1, imin(w, h) / 80);
	sc->inset = 2 * sc->border;
	sc->line = imax(1, sc->border / 2);
	pick_colour(hash, 3, 176, 80, sc->frame);

	nd = snprintf(index, sizeof(index), "%u", (unsigned)req->storyboard_index);
	big = imax(1, imin(h * 2 / 5 / GLYPH_H, w * 3 / 4 / (CELL_W * nd - 1)));
	small = imax(1, imin(h / (GLYPH_H * 24), w / (CELL_W * 44)));
	foot = imax(1, imin(h / (GLYPH_H * 36), w / (CELL_W * 56)));
	ybig = h * 9 / 20 - GLYPH_H * big / 2;

	snprintf(footer, sizeof(footer), "PLACEHOLDER %dX%d %.16s", w, h,
		 req->ratio != NULL ? req->ratio : "");
	add_line(sc, index, nd, big, ybig);
	add_line(sc, req->prompt != NULL ? req->prompt : "", PH_PROMPT_CHARS, small,
		 ybig + GLYPH_H * big + imax(3 * small, big));
	add_line(sc, footer, PH_LABEL_MAX, foot,
		 h - sc->inset - sc->line - 2 * foot - GLYPH_H * foot);
}

/* Paints n pixels from x0 in one colour, clipped to the row. */
static void fill_span(uint8_t *row, int w, int x0, int n, const uint8_t rgb[3])
{
	int x1 = imin(w, x0 + n);

	for (int x = imax(0, x0); x < x1; x++)
		memcpy(row + 3 * x, rgb, 3);
}

/* A rectangle outline of thickness t, inset by d from the image edges. */
static void frame_row(const struct scene *sc, uint8_t *row, int y, int d, int t)
{
	int w = sc->w, h = sc->h;

	if (2 * (d + t) > imin(w, h) || y < d || y >= h - d)
		return;
	if (y < d + t || y >= h - d - t) {
		fill_span(row, w, d, w - 2 * d, sc->frame);
		return;
	}
	fill_span(row, w, d, t, sc->frame);
	fill_span(row, w, w - d - t, t, sc->frame);
}

/* The part of a text line that falls on row y. */
static void label_row(const struct label *l, uint8_t *row, int w, int y)
{
	if (y < l->y || y >= l->y + GLYPH_H * l->s)
		return;
	int gy = (y - l->y) / l->s;
	for (int i = 0; i < l->n; i++) {
		uint8_t bits = l->g[i][gy];
		for (int c = 0; c < GLYPH_W; c++)
			if (bits & (0x10 >> c))
				fill_span(row, w, l->x + (i * CELL_W + c) * l->s, l->s, l->rgb);
	}
}

static void render_row(const struct scene *sc, uint8_t *row, int y)
{
	memcpy(row, sc->lut + 3 * (size_t)y, 3 * (size_t)sc->w);
	frame_row(sc, row, y, 0, sc->border);
	frame_row(sc, row, y, sc->inset, sc->line);
	for (int i = 0; i < sc->nlab; i++)
		label_row(&sc->lab[i], row, sc->w, y);
}

/* ------------------------------------------------------------------ png */

/* The PNG being written, in a buffer that grows by doubling. */
struct outbuf {
	unsigned char *data;
	size_t len, cap;
	int oom;
	char why[128];		/* libpng's message when it gave up */
};

static void out_write(png_structp png, png_bytep p, png_size_t n)
{
	struct outbuf *b = png_get_io_ptr(png);

	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap - b->len < n && cap <= SIZE_MAX / 2)
			cap *= 2;
		unsigned char *d = cap - b->len >= n ? realloc(b->data, cap) : NULL;
		if (d == NULL) {
			b->oom = 1;
			png_error(png, "out of memory");
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void out_flush(png_structp png)
{
	(void)png;
}

/* Records libpng's reason and jumps back to png_encode(); returning would
 * let libpng print the message on stderr before jumping itself. */
static void png_fail(png_structp png, png_const_charp msg)
{
	struct outbuf *b = png_get_error_ptr(png);

	snprintf(b->why, sizeof(b->why), "%s", msg);
	png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

/* Encodes the scene row by row into b.  Level 1 with the Up filter and
 * run-length matching: the gradient then compresses to almost nothing at
 * very little CPU cost.  Nothing local is modified between setjmp() and a
 * possible longjmp(), so no volatile is needed; b lives in the caller. */
static int png_encode(const struct scene *sc, uint8_t *row, struct outbuf *b)
{
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, b, png_fail, png_warn);
	png_infop info = png != NULL ? png_create_info_struct(png) : NULL;

	if (info == NULL) {
		png_destroy_write_struct(&png, NULL);
		b->oom = 1;
		return -1;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		return -1;
	}
	png_set_write_fn(png, b, out_write, out_flush);
	png_set_IHDR(png, info, (png_uint_32)sc->w, (png_uint_32)sc->h, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, 1);
	png_set_compression_strategy(png, Z_RLE);
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
	png_set_compression_buffer_size(png, 1 << 17);
	png_write_info(png, info);
	for (int y = 0; y < sc->h; y++) {
		render_row(sc, row, y);
		png_write_row(png, row);
	}
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	return 0;
}

/* ---------------------------------------------------------------- entry */

__attribute__((format(printf, 3, 4)))
static int fail(struct t2i_error *err, int cls, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err->struct_size < sizeof(*err))
		return -1;
	err->error_class = cls;
	err->http_status = 0;
	err->retry_after_ms = 0;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* The request and host members this plugin reads, all from ABI version 1. */
#define REQ_NEEDS (offsetof(struct t2i_request, storyboard_index) + sizeof(uint32_t))
#define HOST_NEEDS \
	(offsetof(struct t2i_host, add_image) + sizeof(((struct t2i_host *)0)->add_image))

static int check_args(const struct t2i_request *req, const struct t2i_host *host,
		      struct t2i_error *err)
{
	if (req == NULL || req->struct_size < REQ_NEEDS)
		return fail(err, T2I_ERR_REJECTED, "placeholder: request struct too small");
	if (host == NULL || host->struct_size < HOST_NEEDS || host->add_image == NULL)
		return fail(err, T2I_ERR_REJECTED, "placeholder: host struct too small");
	if (req->width < 1 || req->width > PH_MAX_SIDE || req->height < 1 ||
	    req->height > PH_MAX_SIDE)
		return fail(err, T2I_ERR_REJECTED, "placeholder: bad size %ux%u",
			    (unsigned)req->width, (unsigned)req->height);
	return 0;
}

/* Renders and encodes the image into b; the scene's buffers are freed here. */
static int make_png(const struct t2i_request *req, struct outbuf *b, struct t2i_error *err)
{
	struct scene sc = {.w = (int)req->width, .h = (int)req->height};
	uint32_t hash = fnv1a(req->prompt != NULL ? req->prompt : "");
	/* check_args() has refused a width under 1.
	 * NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI) */
	uint8_t *row = malloc(3 * (size_t)sc.w);
	int rc = -1;

	sc.lut = gradient_lut(sc.w, sc.h, hash);
	if (row == NULL || sc.lut == NULL) {
		fail(err, T2I_ERR_TRANSIENT, "placeholder: out of memory");
		goto out;
	}
	scene_layout(&sc, req, hash);
	rc = png_encode(&sc, row, b);
	if (rc != 0 && b->oom)
		fail(err, T2I_ERR_TRANSIENT, "placeholder: out of memory");
	else if (rc != 0)
		fail(err, T2I_ERR_TRANSIENT, "placeholder: libpng: %s", b->why);
out:
	free(row);
	free(sc.lut);
	return rc;
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	struct outbuf b = {0};
	int rc;

	if (check_args(req, host, err) != 0)
		return -1;
	rc = make_png(req, &b, err);
	if (rc == 0 && host->add_image(host->ctx, NULL, b.data, b.len) != 0)
		rc = fail(err, T2I_ERR_TRANSIENT, "placeholder: host refused the image");
	free(b.data);
	return rc;
}
