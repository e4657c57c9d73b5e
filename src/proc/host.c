/* host: the calls a plugin makes back into its worker. */
#include "host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fetch.h"
#include "log.h"
#include "storage.h"
#include "thumb.h"

#define HOST_VARIANTS_MAX 16
#define HOST_PROGRESS_MS 1000	/* at most one progress message a second */
#define HOST_WAIT_SLICE_MS 60000 /* a long sleep() is many poll()s */

void
host_redact(char *s, const char *key)
{
	size_t klen = strlen(key);
	char *p;

	if (klen < 4)
		return;
	while ((p = strstr(s, key)) != NULL) {
		static const char mask[] = "[redacted]";
		size_t mlen = strlen(mask) < klen ? strlen(mask) : klen;

		memcpy(p, mask, mlen);
		memmove(p + mlen, p + klen, strlen(p + klen) + 1);
	}
}

static int
host_store(struct host_call *c, const char *url, const void *bytes, size_t size)
{
	struct storage_meta m;
	struct msg_image im;
	char thumb[4096];
	size_t len;
	int rc = storage_put(c->batch->storage_dir, bytes, size, &m, c->error, sizeof(c->error));

	if (rc == STORAGE_LOCAL)
		c->local = true;
	if (rc < 0)
		return -1;
	memset(&im, 0, sizeof(im));
	im.url = (char *)url;
	im.file_path = m.path;
	im.thumbnail_path = NULL;
	if (c->batch->thumbnails &&
	    thumb_make(c->batch->storage_dir, &m, bytes, size, thumb, sizeof(thumb)) == 0)
		im.thumbnail_path = thumb;
	snprintf(im.sha256, sizeof(im.sha256), "%s", m.sha256);
	snprintf(im.mime, sizeof(im.mime), "%s", m.mime);
	im.width = m.width;
	im.height = m.height;
	im.file_size = m.size;
	wchan_send(c->ch, msg_encode_image(c->item->image_id, &im, &len));
	c->nimages++;
	return 0;
}

/* Provider URLs expire within hours: the image is fetched now, while the
 * worker still holds the storyboard. */
static int
host_download(struct host_call *c, const char *url)
{
	void *bytes = NULL;
	size_t size = 0;
	int rc;

	if (fetch_url(url, STORAGE_IMAGE_MAX, c->batch->connect_timeout, c->batch->timeout,
		      &bytes, &size, c->error, sizeof(c->error)) < 0)
		return -1;
	rc = host_store(c, url, bytes, size);
	free(bytes);
	return rc;
}

static int
host_add_image(void *ctx, const char *url, const void *bytes, size_t size)
{
	struct host_call *c = ctx;

	if (c->nimages > HOST_VARIANTS_MAX) {
		snprintf(c->error, sizeof(c->error), "more than %d images for one storyboard",
			 HOST_VARIANTS_MAX + 1);
		return -1;
	}
	if (bytes != NULL && size > 0)
		return host_store(c, url, bytes, size);
	if (url == NULL || url[0] == '\0') {
		snprintf(c->error, sizeof(c->error), "add_image without a URL or bytes");
		return -1;
	}
	return host_download(c, url);
}

/* A plugin's text for a log line or an event: no key, valid UTF-8 (a cut
 * made by the buffer's size included). */
static void
host_text(const struct host_call *c, char *s)
{
	host_redact(s, c->batch->api_key);
	msg_text_clean(s);
}

static void
host_log(void *ctx, int level, const char *fmt, ...)
{
	struct host_call *c = ctx;
	char buf[MSG_NOTE_MAX];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	host_text(c, buf);
	if (level < LOG_LVL_ERR || level > LOG_LVL_DEBUG)
		level = LOG_LVL_INFO;
	log_msg(level, "plugin %s: %s", c->plugin, buf);
	/* What a plugin warns about (an option the provider has no field
	 * for, a partial answer) is for the people following the run. */
	if (level == T2I_LOG_WARNING && buf[0] != '\0')
		wchan_send(c->ch, msg_encode_warning(c->item->image_id, buf, &len));
}

/* The database never holds a secret: state with the key in it is refused
 * like state that is not a JSON object. */
static bool
state_refused(const struct host_call *c, const char *state, char *why, size_t whylen)
{
	const char *key = c->batch->api_key;

	if (msg_state_check(state, why, whylen) < 0)
		return true;
	if (strlen(key) >= 4 && strstr(state, key) != NULL) {
		snprintf(why, whylen, "it holds the provider's api key");
		return true;
	}
	return false;
}

static int
host_checkpoint(void *ctx, const char *state)
{
	struct host_call *c = ctx;
	char why[160];
	size_t len;

	if (state_refused(c, state, why, sizeof(why))) {
		log_warnx("plugin %s: storyboard %d: checkpoint refused: %s", c->plugin,
			  c->item->index, why);
		return -1;
	}
	wchan_send(c->ch, msg_encode_checkpoint(c->item->image_id, state, &len));
	if (wchan_ack(c->ch, c->item->image_id) < 0) {
		log_warnx("plugin %s: storyboard %d: checkpoint not recorded: %s", c->plugin,
			  c->item->index, c->ch->ack_why);
		return -1;
	}
	return 0;
}

static void
host_progress(void *ctx, double fraction, const char *message)
{
	struct host_call *c = ctx;
	int64_t now = clock_now_ms();
	char buf[256];
	size_t len;

	if (c->progressed && now - c->progress_ms < HOST_PROGRESS_MS)
		return;
	c->progressed = true;
	c->progress_ms = now;
	snprintf(buf, sizeof(buf), "%s", message != NULL ? message : "");
	host_text(c, buf);
	wchan_send(c->ch, msg_encode_progress(c->item->image_id, fraction, buf, &len));
}

static int
host_sleep(void *ctx, uint32_t ms)
{
	struct host_call *c = ctx;
	int64_t until = clock_now_ms() + ms;
	bool deadline = false;

	if (c->deadline_ms > 0 && until >= c->deadline_ms) {
		until = c->deadline_ms;
		deadline = true;
	}
	wchan_wait(c->ch, 0);	/* sleep(0) asks whether to stop */
	for (;;) {
		int64_t left;

		if (c->ch->stop != T2I_STOP_NONE)
			return c->ch->stop;
		if ((left = until - clock_now_ms()) <= 0)
			return deadline ? T2I_STOP_DEADLINE : T2I_STOP_NONE;
		wchan_wait(c->ch, left < HOST_WAIT_SLICE_MS ? (int)left : HOST_WAIT_SLICE_MS);
	}
}

void
host_begin(struct host_call *c, const struct msg_batch *b, const struct msg_item *it,
	   const char *plugin, struct wchan *ch, struct t2i_request *req, struct t2i_host *host)
{
	memset(c, 0, sizeof(*c));
	c->batch = b;
	c->item = it;
	c->plugin = plugin;
	c->ch = ch;
	if (it->last_attempt)
		c->deadline_ms = clock_now_ms() + (int64_t)(b->timeout * 1000.0);
	*req = (struct t2i_request){
		.abi_version = T2I_ABI_VERSION, .struct_size = sizeof(*req),
		.api_url = b->api_url, .api_key = b->api_key, .model = b->model,
		.prompt = it->prompt, .negative_prompt = it->negative_prompt,
		.ratio = it->ratio, .resolution = it->resolution,
		.width = (uint32_t)it->width, .height = (uint32_t)it->height,
		.options_json = it->options_json, .timeout_s = b->timeout,
		.storyboard_id = it->storyboard_id, .storyboard_index = (uint32_t)it->index,
		.connect_timeout_s = b->connect_timeout, .max_response_bytes = STORAGE_IMAGE_MAX,
		.resume_json = it->resume_json != NULL ? it->resume_json : "",
		.idempotency_key = it->idempotency_key,
	};
	*host = (struct t2i_host){
		.abi_version = T2I_ABI_VERSION, .struct_size = sizeof(*host), .ctx = c,
		.add_image = host_add_image, .log = host_log, .checkpoint = host_checkpoint,
		.progress = host_progress, .sleep = host_sleep,
	};
}
