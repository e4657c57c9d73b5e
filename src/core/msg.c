/* msg: strict encoding and decoding of supervisor <-> worker messages. */
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsontext.h"
#include "t2istage/plugin.h"

static const char *const class_names[] = {
	[T2I_ERR_TRANSIENT] = "transient", [T2I_ERR_RATE_LIMITED] = "rate_limited",
	[T2I_ERR_REJECTED] = "rejected",   [T2I_ERR_AUTH] = "auth",
	[T2I_ERR_QUOTA] = "quota",	   [MSG_ERR_LOCAL] = "local",
};

/* Names of enum values lo..hi in a table indexed by value. */
static const char *
name_of(const char *const *names, int lo, int hi, int v)
{
	return v < lo || v > hi ? NULL : names[v];
}

static int
value_of(const char *const *names, int lo, int hi, const char *name)
{
	for (int v = lo; v <= hi; v++)
		if (strcmp(names[v], name) == 0)
			return v;
	return -1;
}

const char *
msg_class_name(int error_class)
{
	return name_of(class_names, T2I_ERR_TRANSIENT, MSG_ERR_LOCAL, error_class);
}

int
msg_class_parse(const char *name)
{
	return value_of(class_names, T2I_ERR_TRANSIENT, MSG_ERR_LOCAL, name);
}

static const char *const stop_names[] = {
	[T2I_STOP_CANCELLED] = "cancelled", [T2I_STOP_DEADLINE] = "deadline",
	[T2I_STOP_BUDGET] = "budget",	    [T2I_STOP_SHUTDOWN] = "shutdown",
};

const char *
msg_stop_name(int reason)
{
	return name_of(stop_names, T2I_STOP_CANCELLED, T2I_STOP_SHUTDOWN, reason);
}

int
msg_stop_parse(const char *name)
{
	return value_of(stop_names, T2I_STOP_CANCELLED, T2I_STOP_SHUTDOWN, name);
}

static char *
dump_line(json_t *o, size_t *len)
{
	char *s = jsontext_dumps(o, JSON_COMPACT);
	size_t n;
	char *line;

	json_decref(o);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	if ((line = realloc(s, n + 2)) == NULL) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

char *
msg_encode_batch(const struct msg_batch *b, size_t *len)
{
	json_t *items = json_array();

	for (size_t i = 0; i < b->nitems; i++) {
		const struct msg_item *it = &b->items[i];

		/* A batch that silently lost an item (a NULL string, out of
		 * memory) would leave its storyboard without a result. */
		if (json_array_append_new(items, json_pack(
			"{ss ss si ss ss ss ss si si ss ss ss sb}", "image_id", it->image_id,
			"storyboard_id", it->storyboard_id, "index", it->index,
			"prompt", it->prompt, "negative_prompt", it->negative_prompt,
			"ratio", it->ratio, "resolution", it->resolution,
			"width", it->width, "height", it->height,
			"options", it->options_json, "resume", it->resume_json,
			"idempotency_key", it->idempotency_key,
			"last_attempt", it->last_attempt)) < 0) {
			json_decref(items);
			return NULL;
		}
	}
	return dump_line(json_pack("{ss ss ss sb sf sf ss ss ss ss so}", "type", "batch",
				   "plugin_path", b->plugin_path, "storage_dir", b->storage_dir,
				   "thumbnails", b->thumbnails, "timeout", b->timeout,
				   "connect_timeout", b->connect_timeout,
				   "provider", b->provider, "api_url", b->api_url,
				   "api_key", b->api_key, "model", b->model, "items", items),
			 len);
}

char *
msg_encode_begin(const char *image_id, int64_t at_ms, size_t *len)
{
	return dump_line(json_pack("{ss ss sI}", "type", "begin", "image_id", image_id, "at_ms",
				   (json_int_t)at_ms), len);
}

char *
msg_encode_image(const char *image_id, const struct msg_image *im, size_t *len)
{
	return dump_line(json_pack("{ss ss s:s? ss s:s? ss ss si si sI}", "type", "image",
				   "image_id", image_id, "url", im->url, "file_path", im->file_path,
				   "thumbnail_path", im->thumbnail_path, "sha256", im->sha256,
				   "mime", im->mime, "width", im->width, "height", im->height,
				   "file_size", (json_int_t)im->file_size),
			 len);
}

char *
msg_encode_result(const char *image_id, bool ok, int error_class, int http_status,
		  int64_t retry_after_ms, const char *message, size_t *len)
{
	const char *cname = msg_class_name(error_class);

	if (ok)
		return dump_line(json_pack("{ss ss sb}", "type", "result", "image_id", image_id,
					   "ok", 1), len);
	return dump_line(json_pack("{ss ss sb ss si sI ss}", "type", "result", "image_id",
				   image_id, "ok", 0, "class", cname ? cname : "transient",
				   "http_status", http_status, "retry_after_ms",
				   (json_int_t)retry_after_ms, "message", message ? message : ""),
			 len);
}

char *
msg_encode_fatal(const char *message, size_t *len)
{
	return dump_line(json_pack("{ss ss}", "type", "fatal", "message", message), len);
}

char *
msg_encode_checkpoint(const char *image_id, const char *state, size_t *len)
{
	return dump_line(json_pack("{ss ss ss}", "type", "checkpoint", "image_id", image_id,
				   "state", state), len);
}

char *
msg_encode_progress(const char *image_id, double fraction, const char *message, size_t *len)
{
	json_t *f = fraction >= 0.0 && fraction <= 1.0 ? json_real(fraction) : json_null();

	return dump_line(json_pack("{ss ss so ss}", "type", "progress", "image_id", image_id,
				   "fraction", f, "message", message), len);
}

char *
msg_encode_warning(const char *image_id, const char *message, size_t *len)
{
	return dump_line(json_pack("{ss ss ss}", "type", "warning", "image_id", image_id,
				   "message", message), len);
}

char *
msg_encode_ack(const char *image_id, const char *failure, size_t *len)
{
	if (failure == NULL)
		return dump_line(json_pack("{ss ss sb}", "type", "ack", "image_id", image_id,
					   "ok", 1), len);
	return dump_line(json_pack("{ss ss sb ss}", "type", "ack", "image_id", image_id, "ok", 0,
				   "message", failure), len);
}

char *
msg_encode_stop(int reason, size_t *len)
{
	const char *name = msg_stop_name(reason);

	if (name == NULL)
		return NULL;
	return dump_line(json_pack("{ss ss}", "type", "stop", "reason", name), len);
}

int
msg_state_check(const char *state, char *err, size_t errlen)
{
	size_t n = state != NULL ? strlen(state) : 0;
	json_error_t je;
	json_t *o;

	if (state == NULL) {
		snprintf(err, errlen, "no state (NULL)");
		return -1;
	}
	if (n > T2I_CHECKPOINT_MAX) {
		snprintf(err, errlen, "%zu bytes, more than the %d allowed", n, T2I_CHECKPOINT_MAX);
		return -1;
	}
	if ((o = json_loadb(state, n, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		snprintf(err, errlen, "not JSON: %s", je.text);
		return -1;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen, "not a JSON object");
		json_decref(o);
		return -1;
	}
	json_decref(o);
	return 0;
}

/* Length of the valid UTF-8 sequence at p, 0 when it is not one (overlong
 * forms, surrogates and code points past U+10FFFF are not). */
static size_t
utf8_seq(const unsigned char *p)
{
	unsigned cp, min;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, min = 0x80;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, min = 0x800;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, min = 0x10000;
	else
		return 0;
	cp = p[0] & (0x3fu >> (n - 1));
	for (size_t k = 1; k < n; k++) {
		if ((p[k] & 0xc0) != 0x80)	/* also stops at the NUL */
			return 0;
		cp = cp << 6 | (p[k] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void
msg_text_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p != '\0') {
		size_t n = utf8_seq(p);

		if (n == 0)
			*p++ = '?';
		else
			p += n;
	}
}

/* Member description for strict decoding. */
struct field {
	const char *name;
	json_type type;		/* JSON_TRUE stands for any boolean, JSON_REAL for any number */
	bool nullable;
};

static bool
type_ok(json_t *v, const struct field *f)
{
	if (json_is_null(v))
		return f->nullable;
	if (f->type == JSON_TRUE)
		return json_is_boolean(v);
	if (f->type == JSON_REAL)
		return json_is_number(v);
	return json_typeof(v) == f->type;
}

/* Every member of o is described in fields, and every field is present. */
static int
check_fields(json_t *o, const struct field *fields, const char *what, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	const struct field *f;

	json_object_foreach(o, key, v) {
		for (f = fields; f->name != NULL; f++)
			if (strcmp(f->name, key) == 0)
				break;
		if (f->name == NULL) {
			snprintf(err, errlen, "%s: unknown member '%s'", what, key);
			return -1;
		}
		if (!type_ok(v, f)) {
			snprintf(err, errlen, "%s: member '%s' has the wrong type", what, key);
			return -1;
		}
	}
	for (f = fields; f->name != NULL; f++) {
		if (json_object_get(o, f->name) == NULL) {
			snprintf(err, errlen, "%s: member '%s' missing", what, f->name);
			return -1;
		}
	}
	return 0;
}

static char *
dup_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static int
copy_fixed(char *dst, size_t dstlen, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (s == NULL || strlen(s) >= dstlen)
		return -1;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static json_t *
parse_object(const char *line, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	bool oom;
	json_t *o = jsontext_load(line, len, JSON_REJECT_DUPLICATES, &je, &oom);

	if (o == NULL) {
		snprintf(err, errlen, "not JSON: %s", oom ? "out of memory" : je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		snprintf(err, errlen, "not a JSON object");
		return NULL;
	}
	return o;
}

static const struct field item_fields[] = {
	{ "image_id", JSON_STRING, false },	   { "storyboard_id", JSON_STRING, false },
	{ "index", JSON_INTEGER, false },	   { "prompt", JSON_STRING, false },
	{ "negative_prompt", JSON_STRING, false }, { "ratio", JSON_STRING, false },
	{ "resolution", JSON_STRING, false },	   { "width", JSON_INTEGER, false },
	{ "height", JSON_INTEGER, false },	   { "options", JSON_STRING, false },
	{ "resume", JSON_STRING, false },	   { "idempotency_key", JSON_STRING, false },
	{ "last_attempt", JSON_TRUE, false },	   { NULL, 0, false },
};

static int
decode_item(json_t *o, struct msg_item *it, char *err, size_t errlen)
{
	char why[128];

	if (!json_is_object(o)) {
		snprintf(err, errlen, "batch item: not a JSON object");
		return -1;
	}
	if (check_fields(o, item_fields, "batch item", err, errlen) < 0)
		return -1;
	if (copy_fixed(it->image_id, sizeof(it->image_id), o, "image_id") < 0 ||
	    copy_fixed(it->storyboard_id, sizeof(it->storyboard_id), o, "storyboard_id") < 0 ||
	    copy_fixed(it->ratio, sizeof(it->ratio), o, "ratio") < 0 ||
	    copy_fixed(it->resolution, sizeof(it->resolution), o, "resolution") < 0 ||
	    copy_fixed(it->idempotency_key, sizeof(it->idempotency_key), o,
		       "idempotency_key") < 0) {
		snprintf(err, errlen, "batch item: a member is too long");
		return -1;
	}
	it->index = (int)json_integer_value(json_object_get(o, "index"));
	it->width = (int)json_integer_value(json_object_get(o, "width"));
	it->height = (int)json_integer_value(json_object_get(o, "height"));
	it->prompt = dup_str(o, "prompt");
	it->negative_prompt = dup_str(o, "negative_prompt");
	it->options_json = dup_str(o, "options");
	it->resume_json = dup_str(o, "resume");
	it->last_attempt = json_is_true(json_object_get(o, "last_attempt"));
	if (it->resume_json != NULL && it->resume_json[0] != '\0' &&
	    msg_state_check(it->resume_json, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "batch item: resume: %s", why);
		return -1;
	}
	return 0;
}

static const struct field batch_fields[] = {
	{ "type", JSON_STRING, false },	       { "plugin_path", JSON_STRING, false },
	{ "storage_dir", JSON_STRING, false }, { "thumbnails", JSON_TRUE, false },
	{ "timeout", JSON_REAL, false },       { "connect_timeout", JSON_REAL, false },
	{ "provider", JSON_STRING, false },
	{ "api_url", JSON_STRING, false },     { "api_key", JSON_STRING, false },
	{ "model", JSON_STRING, false },       { "items", JSON_ARRAY, false },
	{ NULL, 0, false },
};

int
msg_decode_batch(const char *line, size_t len, struct msg_batch *b, char *err, size_t errlen)
{
	json_t *o = parse_object(line, len, err, errlen);
	json_t *items;

	memset(b, 0, sizeof(*b));
	if (o == NULL)
		return -1;
	if (check_fields(o, batch_fields, "batch", err, errlen) < 0)
		goto fail;
	if (strcmp(json_string_value(json_object_get(o, "type")), "batch") != 0) {
		snprintf(err, errlen, "batch: type is '%.40s', not 'batch'",
			 json_string_value(json_object_get(o, "type")));
		goto fail;
	}
	b->plugin_path = dup_str(o, "plugin_path");
	b->storage_dir = dup_str(o, "storage_dir");
	b->thumbnails = json_is_true(json_object_get(o, "thumbnails"));
	b->timeout = json_number_value(json_object_get(o, "timeout"));
	b->connect_timeout = json_number_value(json_object_get(o, "connect_timeout"));
	b->provider = dup_str(o, "provider");
	b->api_url = dup_str(o, "api_url");
	b->api_key = dup_str(o, "api_key");
	b->model = dup_str(o, "model");
	items = json_object_get(o, "items");
	b->nitems = json_array_size(items);
	if ((b->items = calloc(b->nitems + 1, sizeof(*b->items))) == NULL)
		goto fail;
	for (size_t i = 0; i < b->nitems; i++)
		if (decode_item(json_array_get(items, i), &b->items[i], err, errlen) < 0)
			goto fail;
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	msg_batch_free(b);
	return -1;
}

static const struct field begin_fields[] = {
	{ "type", JSON_STRING, false }, { "image_id", JSON_STRING, false },
	{ "at_ms", JSON_INTEGER, false }, { NULL, 0, false },
};
static const struct field image_fields[] = {
	{ "type", JSON_STRING, false },	      { "image_id", JSON_STRING, false },
	{ "url", JSON_STRING, true },	      { "file_path", JSON_STRING, false },
	{ "thumbnail_path", JSON_STRING, true }, { "sha256", JSON_STRING, false },
	{ "mime", JSON_STRING, false },	      { "width", JSON_INTEGER, false },
	{ "height", JSON_INTEGER, false },    { "file_size", JSON_INTEGER, false },
	{ NULL, 0, false },
};
static const struct field ok_fields[] = {
	{ "type", JSON_STRING, false }, { "image_id", JSON_STRING, false },
	{ "ok", JSON_TRUE, false },	{ NULL, 0, false },
};
static const struct field fail_fields[] = {
	{ "type", JSON_STRING, false },	      { "image_id", JSON_STRING, false },
	{ "ok", JSON_TRUE, false },	      { "class", JSON_STRING, false },
	{ "http_status", JSON_INTEGER, false }, { "retry_after_ms", JSON_INTEGER, false },
	{ "message", JSON_STRING, false },    { NULL, 0, false },
};
static const struct field fatal_fields[] = {
	{ "type", JSON_STRING, false }, { "message", JSON_STRING, false }, { NULL, 0, false },
};

static int
decode_image(json_t *o, struct msg_worker *m, char *err, size_t errlen)
{
	struct msg_image *im = &m->image;
	json_int_t w = json_integer_value(json_object_get(o, "width"));
	json_int_t h = json_integer_value(json_object_get(o, "height"));
	json_int_t sz = json_integer_value(json_object_get(o, "file_size"));

	if (copy_fixed(im->sha256, sizeof(im->sha256), o, "sha256") < 0 ||
	    strlen(im->sha256) != 64 || copy_fixed(im->mime, sizeof(im->mime), o, "mime") < 0 ||
	    w <= 0 || h <= 0 || w > 100000 || h > 100000 || sz <= 0) {
		snprintf(err, errlen, "image: impossible metadata");
		return -1;
	}
	im->width = (int)w;
	im->height = (int)h;
	im->file_size = sz;
	im->url = dup_str(o, "url");
	im->file_path = dup_str(o, "file_path");
	im->thumbnail_path = dup_str(o, "thumbnail_path");
	return 0;
}

static int
decode_result(json_t *o, struct msg_worker *m, char *err, size_t errlen)
{
	m->ok = json_is_true(json_object_get(o, "ok"));
	if (check_fields(o, m->ok ? ok_fields : fail_fields, "result", err, errlen) < 0)
		return -1;
	if (m->ok)
		return 0;
	m->error_class = msg_class_parse(json_string_value(json_object_get(o, "class")));
	if (m->error_class < 0) {
		snprintf(err, errlen, "result: unknown error class");
		return -1;
	}
	m->http_status = (int)json_integer_value(json_object_get(o, "http_status"));
	m->retry_after_ms = json_integer_value(json_object_get(o, "retry_after_ms"));
	m->message = dup_str(o, "message");
	return 0;
}

static const struct field checkpoint_fields[] = {
	{ "type", JSON_STRING, false }, { "image_id", JSON_STRING, false },
	{ "state", JSON_STRING, false }, { NULL, 0, false },
};
static const struct field progress_fields[] = {
	{ "type", JSON_STRING, false },	 { "image_id", JSON_STRING, false },
	{ "fraction", JSON_REAL, true }, { "message", JSON_STRING, false },
	{ NULL, 0, false },
};
static const struct field warning_fields[] = {
	{ "type", JSON_STRING, false },	  { "image_id", JSON_STRING, false },
	{ "message", JSON_STRING, false }, { NULL, 0, false },
};

static int
decode_checkpoint(json_t *o, struct msg_worker *m, char *err, size_t errlen)
{
	char why[128];

	if (check_fields(o, checkpoint_fields, "checkpoint", err, errlen) < 0)
		return -1;
	m->state = dup_str(o, "state");
	if (msg_state_check(m->state, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "checkpoint: state: %s", why);
		return -1;
	}
	return 0;
}

/* A note (progress or warning message) is short; a warning says something. */
static int
decode_note(json_t *o, struct msg_worker *m, const char *what, char *err, size_t errlen)
{
	json_t *f = json_object_get(o, "fraction");

	m->message = dup_str(o, "message");
	if (m->message == NULL || strlen(m->message) > MSG_NOTE_MAX ||
	    (m->type == MSG_WARNING && m->message[0] == '\0')) {
		snprintf(err, errlen, "%s: message empty or longer than %d bytes", what,
			 MSG_NOTE_MAX);
		return -1;
	}
	m->fraction = -1.0;
	if (m->type == MSG_PROGRESS && json_is_number(f)) {
		m->fraction = json_number_value(f);
		if (!(m->fraction >= 0.0 && m->fraction <= 1.0)) {
			snprintf(err, errlen, "progress: fraction %g is not from 0 to 1",
				 m->fraction);
			return -1;
		}
	}
	return 0;
}

/* The messages about one image (all but fatal), once image_id is read. */
static int
decode_image_msg(json_t *o, const char *type, struct msg_worker *m, char *err, size_t errlen)
{
	if (strcmp(type, "begin") == 0) {
		m->type = MSG_BEGIN;
		if (check_fields(o, begin_fields, type, err, errlen) < 0)
			return -1;
		m->at_ms = json_integer_value(json_object_get(o, "at_ms"));
		return 0;
	}
	if (strcmp(type, "image") == 0) {
		m->type = MSG_IMAGE;
		if (check_fields(o, image_fields, type, err, errlen) < 0)
			return -1;
		return decode_image(o, m, err, errlen);
	}
	if (strcmp(type, "result") == 0) {
		m->type = MSG_RESULT;
		return decode_result(o, m, err, errlen);
	}
	if (strcmp(type, "checkpoint") == 0) {
		m->type = MSG_CHECKPOINT;
		return decode_checkpoint(o, m, err, errlen);
	}
	if (strcmp(type, "progress") == 0 || strcmp(type, "warning") == 0) {
		m->type = type[0] == 'p' ? MSG_PROGRESS : MSG_WARNING;
		if (check_fields(o, m->type == MSG_PROGRESS ? progress_fields : warning_fields,
				 type, err, errlen) < 0)
			return -1;
		return decode_note(o, m, type, err, errlen);
	}
	snprintf(err, errlen, "unknown message type '%.40s'", type);
	return -1;
}

int
msg_decode_worker(const char *line, size_t len, struct msg_worker *m, char *err, size_t errlen)
{
	json_t *o = parse_object(line, len, err, errlen);
	const char *type;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	if (o == NULL)
		return -1;
	type = json_string_value(json_object_get(o, "type"));
	if (type == NULL) {
		snprintf(err, errlen, "message without a type");
	} else if (strcmp(type, "fatal") == 0) {
		m->type = MSG_FATAL;
		if (check_fields(o, fatal_fields, type, err, errlen) == 0) {
			m->message = dup_str(o, "message");
			rc = 0;
		}
	} else if (copy_fixed(m->image_id, sizeof(m->image_id), o, "image_id") < 0) {
		snprintf(err, errlen, "%s: bad image_id", type);
	} else {
		rc = decode_image_msg(o, type, m, err, errlen);
	}
	json_decref(o);
	if (rc < 0)
		msg_worker_free(m);
	return rc;
}

static const struct field ack_ok_fields[] = {
	{ "type", JSON_STRING, false }, { "image_id", JSON_STRING, false },
	{ "ok", JSON_TRUE, false },	{ NULL, 0, false },
};
static const struct field ack_fail_fields[] = {
	{ "type", JSON_STRING, false }, { "image_id", JSON_STRING, false },
	{ "ok", JSON_TRUE, false },	{ "message", JSON_STRING, false },
	{ NULL, 0, false },
};
static const struct field stop_fields[] = {
	{ "type", JSON_STRING, false }, { "reason", JSON_STRING, false }, { NULL, 0, false },
};

static int
decode_ack(json_t *o, struct msg_ctl *c, char *err, size_t errlen)
{
	c->type = MSG_ACK;
	c->ok = json_is_true(json_object_get(o, "ok"));
	if (check_fields(o, c->ok ? ack_ok_fields : ack_fail_fields, "ack", err, errlen) < 0)
		return -1;
	if (copy_fixed(c->image_id, sizeof(c->image_id), o, "image_id") < 0) {
		snprintf(err, errlen, "ack: bad image_id");
		return -1;
	}
	c->message = dup_str(o, "message");
	return 0;
}

static int
decode_stop(json_t *o, struct msg_ctl *c, char *err, size_t errlen)
{
	const char *name;

	c->type = MSG_STOP;
	if (check_fields(o, stop_fields, "stop", err, errlen) < 0)
		return -1;
	name = json_string_value(json_object_get(o, "reason"));
	if ((c->reason = msg_stop_parse(name)) < 0) {
		snprintf(err, errlen, "stop: unknown reason '%.40s'", name);
		return -1;
	}
	return 0;
}

int
msg_decode_ctl(const char *line, size_t len, struct msg_ctl *c, char *err, size_t errlen)
{
	json_t *o = parse_object(line, len, err, errlen);
	const char *type;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if (o == NULL)
		return -1;
	type = json_string_value(json_object_get(o, "type"));
	if (type == NULL) {
		snprintf(err, errlen, "message without a type");
	} else if (strcmp(type, "ack") == 0) {
		rc = decode_ack(o, c, err, errlen);
	} else if (strcmp(type, "stop") == 0) {
		rc = decode_stop(o, c, err, errlen);
	} else {
		snprintf(err, errlen, "unknown message type '%.40s'", type);
	}
	json_decref(o);
	if (rc < 0)
		msg_ctl_free(c);
	return rc;
}

void
msg_batch_free(struct msg_batch *b)
{
	for (size_t i = 0; b->items != NULL && i < b->nitems; i++) {
		free(b->items[i].prompt);
		free(b->items[i].negative_prompt);
		free(b->items[i].options_json);
		free(b->items[i].resume_json);
	}
	free(b->items);
	free(b->plugin_path);
	free(b->storage_dir);
	free(b->provider);
	free(b->api_url);
	if (b->api_key != NULL)
		explicit_bzero(b->api_key, strlen(b->api_key));
	free(b->api_key);
	free(b->model);
	memset(b, 0, sizeof(*b));
}

void
msg_image_free(struct msg_image *im)
{
	free(im->url);
	free(im->file_path);
	free(im->thumbnail_path);
	memset(im, 0, sizeof(*im));
}

void
msg_worker_free(struct msg_worker *m)
{
	msg_image_free(&m->image);
	free(m->message);
	m->message = NULL;
	free(m->state);
	m->state = NULL;
}

void
msg_ctl_free(struct msg_ctl *c)
{
	free(c->message);
	c->message = NULL;
}
