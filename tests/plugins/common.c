/*
 * Helpers shared by the test plugins: a small PNG encoder, option lookup,
 * the trace file the system tests read, and the misbehaviours.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <png.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TP_MAX_IMAGES 16
#define TP_MAX_SIDE 4096

/* ------------------------------------------------------------------ png */

struct tp_buf {
	unsigned char *data;
	size_t len, cap;
};

static void buf_write(png_structp png, png_bytep p, png_size_t n)
{
	struct tp_buf *b = png_get_io_ptr(png);

	if (n > b->cap - b->len) {
		size_t cap = b->len + n + 4096;
		unsigned char *d = cap > b->len ? realloc(b->data, cap) : NULL;
		if (d == NULL)
			png_error(png, "out of memory");
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void buf_flush(png_structp png)
{
	(void)png;
}

/* Writes h identical rows.  png, info and row are set before setjmp() and
 * never changed afterwards, so they need not be volatile; *b is not local. */
static int png_solid(png_structp png, png_infop info, const png_byte *row, int w, int h,
		     struct tp_buf *b)
{
	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_set_write_fn(png, b, buf_write, buf_flush);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, 1);
	png_write_info(png, info);
	for (int y = 0; y < h; y++)
		png_write_row(png, row);
	png_write_end(png, info);
	return 0;
}

int tp_png(int w, int h, uint32_t seed, unsigned char **out, size_t *len)
{
	struct tp_buf b = {0};
	png_structp png = NULL;
	png_infop info = NULL;
	png_byte *row = NULL;
	int rc = -1;

	if (w < 1 || h < 1 || w > TP_MAX_SIDE || h > TP_MAX_SIDE)
		return -1;
	row = malloc(3 * (size_t)w);
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	info = png != NULL ? png_create_info_struct(png) : NULL;
	if (row != NULL && info != NULL) {
		for (int x = 0; x < w; x++) {
			row[3 * x] = (png_byte)(seed & 0xFF);
			row[3 * x + 1] = (png_byte)(seed >> 8 & 0xFF);
			row[3 * x + 2] = (png_byte)(seed >> 16 & 0xFF);
		}
		rc = png_solid(png, info, row, w, h, &b);
	}
	png_destroy_write_struct(&png, &info);
	free(row);
	if (rc != 0) {
		free(b.data);
		return -1;
	}
	*out = b.data;
	*len = b.len;
	return 0;
}

/* ------------------------------------------------------- small helpers */

uint32_t tp_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

void tp_err(struct t2i_error *e, int cls, int status, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL || e->struct_size < sizeof(*e))
		return;
	e->error_class = cls;
	e->http_status = status;
	e->retry_after_ms = 0;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

int tp_req_valid(const struct t2i_request *req)
{
	return req != NULL && req->struct_size >= offsetof(struct t2i_request, storyboard_index) +
							   sizeof(req->storyboard_index);
}

const char *tp_opts(const struct t2i_request *req)
{
	return tp_req_valid(req) ? req->options_json : NULL;
}

int tp_has(const struct t2i_request *req, const char *trigger)
{
	return tp_req_valid(req) && req->prompt != NULL && strstr(req->prompt, trigger) != NULL;
}

/* -------------------------------------------------------------- options */

double tp_option_num(const char *options_json, const char *key, double dflt)
{
	json_t *root = json_loads(options_json ? options_json : "", 0, NULL);
	json_t *v = json_object_get(root, key);	/* NULL-safe in jansson */
	double r = dflt;

	if (json_is_number(v))
		r = json_number_value(v);
	else if (json_is_boolean(v))
		r = json_is_true(v);
	json_decref(root);
	return r;
}

const char *tp_option_str(const char *options_json, const char *key, const char *dflt,
			  char *buf, size_t size)
{
	json_t *root = json_loads(options_json ? options_json : "", 0, NULL);
	json_t *v = json_object_get(root, key);
	const char *r = dflt;

	if (json_is_string(v) && size > 0) {
		snprintf(buf, size, "%s", json_string_value(v));
		r = buf;
	}
	json_decref(root);
	return r;
}

/* ---------------------------------------------------------------- trace */

void tp_trace(const char *options_json, const char *event, const struct t2i_request *req)
{
	char path[4096], line[512];
	struct timespec ts;
	const char *id = tp_req_valid(req) && req->storyboard_id && *req->storyboard_id
				 ? req->storyboard_id : "-";
	int fd, n;

	if (tp_option_str(options_json, "trace", NULL, path, sizeof(path)) == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%s %ld %.200s %lld\n", event, (long)getpid(), id,
		     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	/* One write() so concurrent workers' lines never interleave; EINTR
	 * means nothing was written, so writing the whole line again is safe. */
	while (write(fd, line, (size_t)n) < 0 && errno == EINTR)
		;
	close(fd);
}

int tp_end(const struct t2i_request *req, int rc)
{
	tp_trace(tp_opts(req), "end", req);
	return rc;
}

/* ------------------------------------------------------------ behaviours */

static int clamp(long v, long lo, long hi)
{
	return (int)(v < lo ? lo : v > hi ? hi : v);
}

int tp_ok(const struct t2i_request *req, const struct t2i_host *host, struct t2i_error *err)
{
	if (!tp_req_valid(req) || host == NULL || host->add_image == NULL) {
		tp_err(err, T2I_ERR_REJECTED, 0, "test plugin: request or host struct too small");
		return -1;
	}
	double want = tp_option_num(req->options_json, "images", 1);
	int images = want >= TP_MAX_IMAGES ? TP_MAX_IMAGES : want >= 1 ? (int)want : 1;
	int w = clamp(req->width / 64, 1, 512), h = clamp(req->height / 64, 1, 512);
	uint32_t seed = tp_hash(req->prompt);

	/* Seeds seed, seed+1, ... differ in their low 24 bits, the colour, so
	 * every variant's bytes differ. */
	for (int i = 0; i < images; i++) {
		unsigned char *png;
		size_t len;
		if (tp_png(w, h, seed + (uint32_t)i, &png, &len) != 0) {
			tp_err(err, T2I_ERR_TRANSIENT, 0, "test plugin: out of memory");
			return -1;
		}
		int added = host->add_image(host->ctx, NULL, png, len);
		free(png);
		if (added != 0) {
			tp_err(err, T2I_ERR_TRANSIENT, 0, "test plugin: host refused the image");
			return -1;
		}
	}
	return 0;
}

_Noreturn void tp_crash(void)
{
	sigset_t set;

	/* A genuine death by signal 11: restore the default action first so no
	 * inherited handler (ASan installs one and would exit 1 instead) or
	 * mask can soften it. */
	signal(SIGSEGV, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGSEGV);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(SIGSEGV);
	abort();
}

_Noreturn void tp_hang(void)
{
	/* pause() returns after any handled signal; only a kill ends this. */
	for (;;)
		pause();
}

void tp_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* At most 10 minutes: a test that forgets a gate fails, not hangs. */
static void tp_wait_file(const char *path)
{
	for (int i = 0; i < 60000 && access(path, F_OK) != 0; i++)
		tp_sleep_ms(10);
}

void tp_gate(const struct t2i_request *req)
{
	char path[4096];

	if (!tp_has(req, "GATE") ||
	    tp_option_str(req->options_json, "gate", NULL, path, sizeof(path)) == NULL)
		return;
	tp_wait_file(path);
	/* A second gate, so that a test can let one storyboard of a run go
	 * and hold another. */
	if (tp_has(req, "GATE2")) {
		char second[sizeof(path) + 2];

		snprintf(second, sizeof(second), "%s.2", path);
		tp_wait_file(second);
	}
}
