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
	[T2I_ERR_QUOTA] = "quota",
};

const char *
msg_class_name(int c)
{
	if (c < T2I_ERR_TRANSIENT || c > T2I_ERR_QUOTA)
		return NULL;
	return class_names[c];
}

int
msg_class_parse(const char *name)
{
	for (int c = T2I_ERR_TRANSIENT; c <= T2I_ERR_QUOTA; c++)
		if (strcmp(class_names[c], name) == 0)
			return c;
	return -1;
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
			"{ss ss si ss ss ss ss si si ss}", "image_id", it->image_id,
			"storyboard_id", it->storyboard_id, "index", it->index,
			"prompt", it->prompt, "negative_prompt", it->negative_prompt,
			"ratio", it->ratio, "resolution", it->resolution,
			"width", it->width, "height", it->height,
			"options", it->options_json)) < 0) {
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
msg_encode_begin(const char *image_id, size_t *len)
{
	return dump_line(json_pack("{ss ss}", "type", "begin", "image_id", image_id), len);
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
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);

	if (o == NULL) {
		snprintf(err, errlen, "not JSON: %s", je.text);
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
	{ NULL, 0, false },
};

static int
decode_item(json_t *o, struct msg_item *it, char *err, size_t errlen)
{
	if (!json_is_object(o)) {
		snprintf(err, errlen, "batch item: not a JSON object");
		return -1;
	}
	if (check_fields(o, item_fields, "batch item", err, errlen) < 0)
		return -1;
	if (copy_fixed(it->image_id, sizeof(it->image_id), o, "image_id") < 0 ||
	    copy_fixed(it->storyboard_id, sizeof(it->storyboard_id), o, "storyboard_id") < 0 ||
	    copy_fixed(it->ratio, sizeof(it->ratio), o, "ratio") < 0 ||
	    copy_fixed(it->resolution, sizeof(it->resolution), o, "resolution") < 0) {
		snprintf(err, errlen, "batch item: a member is too long");
		return -1;
	}
	it->index = (int)json_integer_value(json_object_get(o, "index"));
	it->width = (int)json_integer_value(json_object_get(o, "width"));
	it->height = (int)json_integer_value(json_object_get(o, "height"));
	it->prompt = dup_str(o, "prompt");
	it->negative_prompt = dup_str(o, "negative_prompt");
	it->options_json = dup_str(o, "options");
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
	{ "type", JSON_STRING, false }, { "image_id", JSON_STRING, false }, { NULL, 0, false },
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
	} else if (strcmp(type, "begin") == 0) {
		m->type = MSG_BEGIN;
		rc = check_fields(o, begin_fields, type, err, errlen);
	} else if (strcmp(type, "image") == 0) {
		m->type = MSG_IMAGE;
		if (check_fields(o, image_fields, type, err, errlen) == 0)
			rc = decode_image(o, m, err, errlen);
	} else if (strcmp(type, "result") == 0) {
		m->type = MSG_RESULT;
		rc = decode_result(o, m, err, errlen);
	} else {
		snprintf(err, errlen, "unknown message type '%.40s'", type);
	}
	json_decref(o);
	if (rc < 0)
		msg_worker_free(m);
	return rc;
}

void
msg_batch_free(struct msg_batch *b)
{
	for (size_t i = 0; b->items != NULL && i < b->nitems; i++) {
		free(b->items[i].prompt);
		free(b->items[i].negative_prompt);
		free(b->items[i].options_json);
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
}
