/* Unit tests for src/core/msg.c: the JSON lines between supervisor and worker.
 * Every message is encoded, decoded and compared member by member; then the
 * decoder is fed what a broken worker (or a plugin writing on the pipe)
 * might send, and must refuse all of it with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "t2istage/plugin.h"

#define IMG1 "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
#define IMG2 "11111111-2222-4333-8444-555555555555"
#define SB1 "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#define SB2 "99999999-8888-4777-8666-555555555555"
#define SHA "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define KEY1 "5e1f0c3a-9d2b-8c4e-a1f7-3b6d9e0c2a48"

static char err[1024];

/* A line must be one line: exactly one '\n', at the end. */
static void
assert_one_line(const char *line, size_t len)
{
	assert_non_null(line);
	assert_int_equal(strlen(line), len);
	assert_true(len > 0);
	assert_int_equal(line[len - 1], '\n');
	assert_ptr_equal(strchr(line, '\n'), line + len - 1);
}

/* Decodes a worker line; the line is freed.  Use it through DECODE_OK,
 * which sequences the encoder (that sets len) before reading len. */
static void
decode_ok(char *line, size_t len, struct msg_worker *m)
{
	assert_one_line(line, len);
	strcpy(err, "(no error)");
	if (msg_decode_worker(line, len, m, err, sizeof(err)) != 0)
		print_error("line: %s\nerr:  %s\n", line, err);
	free(line);
	assert_string_equal(err, "(no error)");
}

#define DECODE_OK(encoded, m)                          \
	do {                                           \
		char *line_ = (encoded);               \
		decode_ok(line_, len, (m));            \
	} while (0)

/* ---- round trips ---- */

static void
test_batch_roundtrip(void **state)
{
	struct msg_item items[2] = {
		{ .image_id = IMG1, .storyboard_id = SB1, .index = 1,
		  .prompt = "a \"quoted\" cat \\ on a mat\tat dawn, \xe7\x8c\xab \xf0\x9f\x90\x88",
		  .negative_prompt = "", .ratio = "16:9", .resolution = "2k", .width = 2560,
		  .height = 1440, .options_json = "{\"sample_strength\":0.5,\"s\":\"\\\"\"}",
		  .resume_json = "{\"task_id\":\"t-1\",\"poll\":\"https://x/\\u00e9\"}",
		  .idempotency_key = KEY1, .last_attempt = true },
		{ .image_id = IMG2, .storyboard_id = SB2, .index = 42,
		  .prompt = "line one\nline two", .negative_prompt = "blur, \xe6\xa8\xa1\xe7\xb3\x8a",
		  .ratio = "21:9", .resolution = "4k", .width = 6048, .height = 2592,
		  .options_json = "{}", .resume_json = "", .idempotency_key = "" },
	};
	struct msg_batch b = {
		.plugin_path = "/usr/lib/t2istage/plugins/jimeng.so",
		.storage_dir = "/var/lib/t2istage/images \xc3\xa9t\xc3\xa9",
		.thumbnails = true, .timeout = 900.25, .connect_timeout = 7.5, .provider = "jimeng",
		.api_url = "http://localhost:5100/v1/images/generations",
		.api_key = "sk-\"secret\"", .model = "jimeng-4.0", .nitems = 2, .items = items,
	};
	struct msg_batch d;
	size_t len = 0;
	char *line = msg_encode_batch(&b, &len);

	(void)state;
	assert_one_line(line, len);
	/* Raw newlines and quotes in strings are escaped, never framing. */
	assert_non_null(strstr(line, "line one\\nline two"));
	assert_int_equal(msg_decode_batch(line, len, &d, err, sizeof(err)), 0);
	free(line);

	assert_string_equal(d.plugin_path, b.plugin_path);
	assert_string_equal(d.storage_dir, b.storage_dir);
	assert_true(d.thumbnails);
	assert_true(d.timeout == 900.25);
	assert_true(d.connect_timeout == 7.5);
	assert_string_equal(d.provider, b.provider);
	assert_string_equal(d.api_url, b.api_url);
	assert_string_equal(d.api_key, b.api_key);
	assert_string_equal(d.model, b.model);
	assert_int_equal(d.nitems, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(d.items[i].image_id, items[i].image_id);
		assert_string_equal(d.items[i].storyboard_id, items[i].storyboard_id);
		assert_int_equal(d.items[i].index, items[i].index);
		assert_string_equal(d.items[i].prompt, items[i].prompt);
		assert_string_equal(d.items[i].negative_prompt, items[i].negative_prompt);
		assert_string_equal(d.items[i].ratio, items[i].ratio);
		assert_string_equal(d.items[i].resolution, items[i].resolution);
		assert_int_equal(d.items[i].width, items[i].width);
		assert_int_equal(d.items[i].height, items[i].height);
		assert_string_equal(d.items[i].options_json, items[i].options_json);
		assert_string_equal(d.items[i].resume_json, items[i].resume_json);
		assert_string_equal(d.items[i].idempotency_key, items[i].idempotency_key);
		assert_int_equal(d.items[i].last_attempt, items[i].last_attempt);
	}
	msg_batch_free(&d);
	assert_null(d.items);
	assert_null(d.api_key);

	/* An empty batch, with thumbnails off and a whole timeout. */
	b.nitems = 0;
	b.thumbnails = false;
	b.timeout = 5;
	line = msg_encode_batch(&b, &len);
	assert_one_line(line, len);
	assert_int_equal(msg_decode_batch(line, len, &d, err, sizeof(err)), 0);
	free(line);
	assert_int_equal(d.nitems, 0);
	assert_false(d.thumbnails);
	assert_true(d.timeout == 5.0);
	msg_batch_free(&d);
}

static void
test_batch_encode_refuses_null(void **state)
{
	struct msg_item it = { .image_id = IMG1, .storyboard_id = SB1, .index = 1,
			       .prompt = NULL, .negative_prompt = "", .ratio = "1:1",
			       .resolution = "1k", .width = 1024, .height = 1024,
			       .options_json = "{}", .resume_json = "" };
	struct msg_batch b = { .plugin_path = "/p.so", .storage_dir = "/s", .provider = "p",
			       .api_url = "", .api_key = "", .model = "", .nitems = 1,
			       .items = &it };
	size_t len = 0;

	(void)state;
	/* An item that cannot be encoded fails the batch rather than vanish. */
	assert_null(msg_encode_batch(&b, &len));
	it.prompt = "ok";
	it.resume_json = NULL;
	assert_null(msg_encode_batch(&b, &len));
	it.resume_json = "";
	b.model = NULL;
	assert_null(msg_encode_batch(&b, &len));
}

static void
test_begin_roundtrip(void **state)
{
	struct msg_worker m;
	size_t len = 0;

	(void)state;
	DECODE_OK(msg_encode_begin(IMG1, 987654321012, &len), &m);
	assert_int_equal(m.type, MSG_BEGIN);
	assert_string_equal(m.image_id, IMG1);
	assert_true(m.at_ms == 987654321012);
	assert_null(m.message);
	msg_worker_free(&m);
}

static void
test_image_roundtrip(void **state)
{
	struct msg_image im = {
		.url = "https://cdn.example/x.png?sig=\"a b\"&t=\xe2\x9c\x93",
		.file_path = "/var/lib/t2istage/images/ba/" SHA ".png",
		.thumbnail_path = "/var/lib/t2istage/images/ba/" SHA ".thumb.webp",
		.sha256 = SHA, .mime = "image/png", .width = 2560, .height = 1440,
		.file_size = 5000000000LL,	/* > 2^32: 64-bit all the way */
	};
	struct msg_worker m;
	size_t len = 0;

	(void)state;
	DECODE_OK(msg_encode_image(IMG1, &im, &len), &m);
	assert_int_equal(m.type, MSG_IMAGE);
	assert_string_equal(m.image_id, IMG1);
	assert_string_equal(m.image.url, im.url);
	assert_string_equal(m.image.file_path, im.file_path);
	assert_string_equal(m.image.thumbnail_path, im.thumbnail_path);
	assert_string_equal(m.image.sha256, SHA);
	assert_string_equal(m.image.mime, "image/png");
	assert_int_equal(m.image.width, 2560);
	assert_int_equal(m.image.height, 1440);
	assert_true(m.image.file_size == 5000000000LL);
	msg_worker_free(&m);
	assert_null(m.image.url);

	/* Bytes from the plugin: no URL; no thumbnail. */
	im.url = NULL;
	im.thumbnail_path = NULL;
	im.file_size = 1;
	{
		char *line = msg_encode_image(IMG2, &im, &len);

		assert_non_null(strstr(line, "\"url\":null"));
		assert_non_null(strstr(line, "\"thumbnail_path\":null"));
		decode_ok(line, len, &m);
	}
	assert_int_equal(m.type, MSG_IMAGE);
	assert_string_equal(m.image_id, IMG2);
	assert_null(m.image.url);
	assert_null(m.image.thumbnail_path);
	assert_string_equal(m.image.file_path, im.file_path);
	assert_true(m.image.file_size == 1);
	msg_worker_free(&m);
}

static void
test_result_roundtrip(void **state)
{
	struct msg_worker m;
	size_t len = 0;

	(void)state;
	DECODE_OK(msg_encode_result(IMG1, true, 0, 0, 0, NULL, &len), &m);
	assert_int_equal(m.type, MSG_RESULT);
	assert_string_equal(m.image_id, IMG1);
	assert_true(m.ok);
	assert_int_equal(m.error_class, 0);
	assert_null(m.message);
	msg_worker_free(&m);

	for (int c = T2I_ERR_TRANSIENT; c <= T2I_ERR_QUOTA; c++) {
		const char *text = "HTTP 429: \"slow down\" \xe8\xaf\xb7\xe7\xa8\x8d\xe5\x90\x8e";

		DECODE_OK(msg_encode_result(IMG2, false, c, 400 + c, 1000LL * c + 7, text, &len),
			  &m);
		assert_int_equal(m.type, MSG_RESULT);
		assert_string_equal(m.image_id, IMG2);
		assert_false(m.ok);
		assert_int_equal(m.error_class, c);
		assert_int_equal(m.http_status, 400 + c);
		assert_true(m.retry_after_ms == 1000LL * c + 7);
		assert_string_equal(m.message, text);
		msg_worker_free(&m);
		assert_null(m.message);
	}

	/* An unknown class is sent as transient; a NULL message as "". */
	DECODE_OK(msg_encode_result(IMG2, false, 77, 0, 0, NULL, &len), &m);
	assert_false(m.ok);
	assert_int_equal(m.error_class, T2I_ERR_TRANSIENT);
	assert_string_equal(m.message, "");
	msg_worker_free(&m);

	/* A large retry_after_ms survives. */
	DECODE_OK(msg_encode_result(IMG2, false, T2I_ERR_RATE_LIMITED, 429, INT64_C(1) << 40, "x",
				    &len), &m);
	assert_true(m.retry_after_ms == (INT64_C(1) << 40));
	msg_worker_free(&m);
}

static void
test_fatal_roundtrip(void **state)
{
	struct msg_worker m;
	size_t len = 0;
	const char *text = "/p/x.so: symbol t2i_plugin: ABI version 2, this host speaks 1";

	(void)state;
	DECODE_OK(msg_encode_fatal(text, &len), &m);
	assert_int_equal(m.type, MSG_FATAL);
	assert_string_equal(m.image_id, "");
	assert_string_equal(m.message, text);
	msg_worker_free(&m);
	msg_worker_free(&m);	/* twice is harmless */
}

/* ---- refusals ---- */

static void
worker_refused(const char *line, const char *want)
{
	struct msg_worker m;
	int rc;

	strcpy(err, "(no error)");
	rc = msg_decode_worker(line, strlen(line), &m, err, sizeof(err));
	if (rc == 0 || strstr(err, want) == NULL)
		print_error("line: %s\nwant: %s\ngot:  %s\n", line, want, err);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, want));
	assert_null(strchr(err, '\n'));
	/* Nothing is left allocated on failure. */
	assert_null(m.message);
	assert_null(m.image.url);
	assert_null(m.image.file_path);
	assert_null(m.image.thumbnail_path);
}

#define IMG_OK(extra)                                                                        \
	"{\"type\":\"image\",\"image_id\":\"" IMG1 "\",\"url\":null,\"file_path\":\"/f.png\"," \
	"\"thumbnail_path\":null,\"mime\":\"image/png\"," extra "}"

static void
test_worker_refused(void **state)
{
	(void)state;
	/* The macro itself is a good message. */
	{
		const char *ok = IMG_OK("\"sha256\":\"" SHA "\",\"width\":1,\"height\":1,"
					"\"file_size\":1");
		struct msg_worker m;

		assert_int_equal(msg_decode_worker(ok, strlen(ok), &m, err, sizeof(err)), 0);
		msg_worker_free(&m);
	}

	worker_refused("", "not JSON");
	worker_refused("hello", "not JSON");
	worker_refused("{\"type\":\"begin\",", "not JSON");
	worker_refused("{\"type\":\"begin\",\"image_id\":\"" IMG1 "\"} trailing", "not JSON");
	worker_refused("{\"type\":\"begin\",\"type\":\"begin\",\"image_id\":\"" IMG1 "\"}",
		       "not JSON");	/* duplicate key */
	worker_refused("[1,2]", "not a JSON object");
	worker_refused("{\"a\":1}", "without a type");
	/* jansson without JSON_DECODE_ANY refuses scalars at the top */
	worker_refused("\"begin\"", "not JSON");
	worker_refused("42", "not JSON");
	worker_refused("null", "not JSON");

	/* type */
	worker_refused("{}", "without a type");
	worker_refused("{\"type\":7,\"image_id\":\"" IMG1 "\"}", "without a type");
	worker_refused("{\"type\":\"bogus\",\"image_id\":\"" IMG1 "\"}",
		       "unknown message type 'bogus'");
	worker_refused("{\"type\":\"batch\",\"image_id\":\"" IMG1 "\"}",
		       "unknown message type 'batch'");

	/* image_id: missing, mistyped, too long */
	worker_refused("{\"type\":\"begin\"}", "begin: bad image_id");
	worker_refused("{\"type\":\"begin\",\"image_id\":5}", "bad image_id");
	worker_refused("{\"type\":\"begin\",\"image_id\":null}", "bad image_id");
	worker_refused("{\"type\":\"begin\",\"image_id\":\"" IMG1 "0\"}", "bad image_id");

	/* missing members */
	worker_refused("{\"type\":\"fatal\"}", "member 'message' missing");
	worker_refused("{\"type\":\"begin\",\"image_id\":\"" IMG1 "\"}",
		       "member 'at_ms' missing");
	worker_refused(IMG_OK("\"sha256\":\"" SHA "\",\"width\":1,\"height\":1"),
		       "image: member 'file_size' missing");
	worker_refused("{\"type\":\"result\",\"image_id\":\"" IMG1 "\"}",
		       "result: member 'ok' missing");
	worker_refused("{\"type\":\"result\",\"image_id\":\"" IMG1 "\",\"ok\":false,"
		       "\"class\":\"auth\",\"http_status\":401,\"retry_after_ms\":0}",
		       "member 'message' missing");

	/* unknown members */
	worker_refused("{\"type\":\"begin\",\"image_id\":\"" IMG1 "\",\"x\":1}",
		       "begin: unknown member 'x'");
	worker_refused("{\"type\":\"fatal\",\"message\":\"m\",\"image_id\":\"" IMG1 "\"}",
		       "fatal: unknown member 'image_id'");
	worker_refused(IMG_OK("\"sha256\":\"" SHA "\",\"width\":1,\"height\":1,"
			      "\"file_size\":1,\"api_key\":\"k\""),
		       "image: unknown member 'api_key'");
	/* ok:true with the members of a failure */
	worker_refused("{\"type\":\"result\",\"image_id\":\"" IMG1 "\",\"ok\":true,"
		       "\"class\":\"auth\"}",
		       "result: unknown member 'class'");

	/* wrong member types */
	worker_refused("{\"type\":\"fatal\",\"message\":null}", "member 'message' has the wrong type");
	worker_refused("{\"type\":\"fatal\",\"message\":[\"m\"]}", "wrong type");
	worker_refused(IMG_OK("\"sha256\":\"" SHA "\",\"width\":\"1\",\"height\":1,"
			      "\"file_size\":1"),
		       "member 'width' has the wrong type");
	worker_refused(IMG_OK("\"sha256\":\"" SHA "\",\"width\":1.5,\"height\":1,"
			      "\"file_size\":1"),
		       "member 'width' has the wrong type");
	worker_refused(IMG_OK("\"sha256\":null,\"width\":1,\"height\":1,\"file_size\":1"),
		       "member 'sha256' has the wrong type");
	worker_refused("{\"type\":\"image\",\"image_id\":\"" IMG1 "\",\"url\":3,"
		       "\"file_path\":\"/f.png\",\"thumbnail_path\":null,\"mime\":\"image/png\","
		       "\"sha256\":\"" SHA "\",\"width\":1,\"height\":1,\"file_size\":1}",
		       "member 'url' has the wrong type");
	worker_refused("{\"type\":\"result\",\"image_id\":\"" IMG1 "\",\"ok\":\"yes\"}",
		       "member 'ok' has the wrong type");
	worker_refused("{\"type\":\"result\",\"image_id\":\"" IMG1 "\",\"ok\":false,"
		       "\"class\":\"auth\",\"http_status\":\"401\",\"retry_after_ms\":0,"
		       "\"message\":\"m\"}",
		       "member 'http_status' has the wrong type");

	/* impossible metadata */
	worker_refused(IMG_OK("\"sha256\":\"" SHA "\",\"width\":0,\"height\":1,\"file_size\":1"),
		       "image: impossible metadata");
	worker_refused(IMG_OK("\"sha256\":\"" SHA "\",\"width\":1,\"height\":-5,\"file_size\":1"),
		       "impossible metadata");
	worker_refused(IMG_OK("\"sha256\":\"" SHA "\",\"width\":100001,\"height\":1,"
			      "\"file_size\":1"),
		       "impossible metadata");
	worker_refused(IMG_OK("\"sha256\":\"" SHA "\",\"width\":1,\"height\":1,\"file_size\":0"),
		       "impossible metadata");
	worker_refused(IMG_OK("\"sha256\":\"abc\",\"width\":1,\"height\":1,\"file_size\":1"),
		       "impossible metadata");
	worker_refused(IMG_OK("\"sha256\":\"" SHA "0\",\"width\":1,\"height\":1,"
			      "\"file_size\":1"),
		       "impossible metadata");
	worker_refused(IMG_OK("\"sha256\":\"\",\"width\":1,\"height\":1,\"file_size\":1"),
		       "impossible metadata");
	worker_refused("{\"type\":\"image\",\"image_id\":\"" IMG1 "\",\"url\":null,"
		       "\"file_path\":\"/f.png\",\"thumbnail_path\":null,"
		       "\"mime\":\"image/png; charset=a-very-long-parameter-here\","
		       "\"sha256\":\"" SHA "\",\"width\":1,\"height\":1,\"file_size\":1}",
		       "impossible metadata");

	/* unknown error class */
	worker_refused("{\"type\":\"result\",\"image_id\":\"" IMG1 "\",\"ok\":false,"
		       "\"class\":\"cosmic_rays\",\"http_status\":0,\"retry_after_ms\":0,"
		       "\"message\":\"m\"}",
		       "result: unknown error class");
	worker_refused("{\"type\":\"result\",\"image_id\":\"" IMG1 "\",\"ok\":false,"
		       "\"class\":\"\",\"http_status\":0,\"retry_after_ms\":0,\"message\":\"m\"}",
		       "unknown error class");
}

#define BATCH(items_json)                                                                  \
	"{\"type\":\"batch\",\"plugin_path\":\"/p.so\",\"storage_dir\":\"/s\","             \
	"\"thumbnails\":false,\"timeout\":1,\"connect_timeout\":10,\"provider\":\"p\",\"api_url\":\"\","         \
	"\"api_key\":\"k\",\"model\":\"m\",\"items\":" items_json "}"
#define ITEM(extra)                                                                        \
	"{\"image_id\":\"" IMG1 "\",\"storyboard_id\":\"" SB1 "\",\"index\":1,"             \
	"\"prompt\":\"p\",\"negative_prompt\":\"\",\"width\":1024,\"height\":1024,"          \
	"\"options\":\"{}\",\"idempotency_key\":\"" KEY1 "\"," extra "}"
#define ITEM_RESUME(resume, last) \
	ITEM("\"ratio\":\"1:1\",\"resolution\":\"1k\",\"resume\":" resume ",\"last_attempt\":" last)

static void
batch_refused(const char *line, const char *want)
{
	struct msg_batch b;
	int rc;

	strcpy(err, "(no error)");
	rc = msg_decode_batch(line, strlen(line), &b, err, sizeof(err));
	if (rc == 0 || strstr(err, want) == NULL)
		print_error("line: %s\nwant: %s\ngot:  %s\n", line, want, err);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, want));
	assert_null(b.items);
	assert_null(b.api_key);
}

static void
test_batch_refused(void **state)
{
	(void)state;
	{
		const char *ok = BATCH("[" ITEM_RESUME("\"{\\\"t\\\":1}\"", "false") "]");
		struct msg_batch b;

		assert_int_equal(msg_decode_batch(ok, strlen(ok), &b, err, sizeof(err)), 0);
		assert_int_equal(b.nitems, 1);
		assert_string_equal(b.items[0].resume_json, "{\"t\":1}");
		assert_string_equal(b.items[0].idempotency_key, KEY1);
		assert_false(b.items[0].last_attempt);
		msg_batch_free(&b);
	}
	batch_refused("", "not JSON");
	batch_refused("[]", "not a JSON object");
	batch_refused("{}", "batch: member 'type' missing");
	batch_refused("{\"type\":\"batch\"}", "member 'plugin_path' missing");
	batch_refused(BATCH("[]}"), "not JSON");
	batch_refused(BATCH("{}"), "member 'items' has the wrong type");
#define TAIL ",\"resume\":\"\",\"last_attempt\":true"
	batch_refused(BATCH("[" ITEM("\"ratio\":\"1:1\",\"resolution\":\"1k\",\"x\":0" TAIL) "]"),
		      "batch item: unknown member 'x'");
	batch_refused(BATCH("[" ITEM("\"ratio\":\"1:1\"" TAIL) "]"),
		      "batch item: member 'resolution' missing");
	batch_refused(BATCH("[" ITEM("\"ratio\":\"1:1\",\"resolution\":1" TAIL) "]"),
		      "member 'resolution' has the wrong type");
	batch_refused(BATCH("[" ITEM("\"ratio\":\"1:1:1:1:1\",\"resolution\":\"1k\"" TAIL) "]"),
		      "batch item: a member is too long");
	batch_refused(BATCH("[" ITEM_RESUME("\"\"", "true") ",7]"),
		      "batch item: not a JSON object");
	/* The version 2 members: a resumed state is an object, the rest typed. */
	batch_refused(BATCH("[" ITEM("\"ratio\":\"1:1\",\"resolution\":\"1k\"") "]"),
		      "batch item: member 'resume' missing");
	batch_refused(BATCH("[" ITEM_RESUME("\"[1]\"", "true") "]"),
		      "batch item: resume: not a JSON object");
	batch_refused(BATCH("[" ITEM_RESUME("\"{\"", "true") "]"),
		      "batch item: resume: not JSON");
	batch_refused(BATCH("[" ITEM_RESUME("{}", "true") "]"),
		      "member 'resume' has the wrong type");
	batch_refused(BATCH("[" ITEM_RESUME("\"\"", "1") "]"),
		      "member 'last_attempt' has the wrong type");
#undef TAIL
	/* The type must say batch: a worker message is not a batch. */
	batch_refused("{\"type\":\"begin\",\"plugin_path\":\"/p.so\",\"storage_dir\":\"/s\","
		      "\"thumbnails\":false,\"timeout\":1,\"connect_timeout\":10,\"provider\":\"p\",\"api_url\":\"\","
		      "\"api_key\":\"k\",\"model\":\"m\",\"items\":[]}",
		      "not 'batch'");
	batch_refused("{\"type\":\"batch\",\"plugin_path\":\"/p.so\",\"storage_dir\":\"/s\","
		      "\"thumbnails\":0,\"timeout\":1,\"connect_timeout\":10,\"provider\":\"p\",\"api_url\":\"\","
		      "\"api_key\":\"k\",\"model\":\"m\",\"items\":[]}",
		      "member 'thumbnails' has the wrong type");
	batch_refused("{\"type\":\"batch\",\"plugin_path\":\"/p.so\",\"storage_dir\":\"/s\","
		      "\"thumbnails\":true,\"timeout\":\"1\",\"connect_timeout\":10,\"provider\":\"p\",\"api_url\":\"\","
		      "\"api_key\":\"k\",\"model\":\"m\",\"items\":[]}",
		      "member 'timeout' has the wrong type");
}

static void
test_class_names(void **state)
{
	static const struct {
		int c;
		const char *name;
	} names[] = {
		{ T2I_ERR_TRANSIENT, "transient" }, { T2I_ERR_RATE_LIMITED, "rate_limited" },
		{ T2I_ERR_REJECTED, "rejected" },   { T2I_ERR_AUTH, "auth" },
		{ T2I_ERR_QUOTA, "quota" },	    { MSG_ERR_LOCAL, "local" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_string_equal(msg_class_name(names[i].c), names[i].name);
		assert_int_equal(msg_class_parse(names[i].name), names[i].c);
	}
	assert_null(msg_class_name(T2I_OK));
	assert_null(msg_class_name(-1));
	assert_null(msg_class_name(7));
	assert_null(msg_class_name(1000000));
	assert_int_equal(msg_class_parse(""), -1);
	assert_int_equal(msg_class_parse("Transient"), -1);
	assert_int_equal(msg_class_parse("transient "), -1);
	assert_int_equal(msg_class_parse("ok"), -1);
}

static void
test_checkpoint_roundtrip(void **state)
{
	struct msg_worker m;
	size_t len = 0;
	const char *st = "{\"task_id\":\"7f3a\",\"poll\":\"https://dashscope.example/t/7f3a\","
			 "\"n\":[1,2.5,null],\"\xe4\xbb\xbb\xe5\x8a\xa1\":\"\\n\"}";

	(void)state;
	/* The state travels as the text the plugin gave, not re-encoded. */
	DECODE_OK(msg_encode_checkpoint(IMG1, st, &len), &m);
	assert_int_equal(m.type, MSG_CHECKPOINT);
	assert_string_equal(m.image_id, IMG1);
	assert_string_equal(m.state, st);
	assert_null(m.message);
	msg_worker_free(&m);
	assert_null(m.state);
	DECODE_OK(msg_encode_checkpoint(IMG2, "{}", &len), &m);
	assert_string_equal(m.state, "{}");
	msg_worker_free(&m);
}

static void
test_progress_roundtrip(void **state)
{
	static const struct {
		double in, out;		/* out -1: sent as null, unknown */
	} cases[] = { { 0.0, 0.0 }, { 0.25, 0.25 }, { 1.0, 1.0 }, { -1.0, -1.0 },
		      { -0.0001, -1.0 }, { 1.5, -1.0 }, { NAN, -1.0 } };
	struct msg_worker m;
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *line = msg_encode_progress(IMG1, cases[i].in, "task RUNNING \xe2\x9c\x93", &len);

		if (cases[i].out < 0)
			assert_non_null(strstr(line, "\"fraction\":null"));
		decode_ok(line, len, &m);
		assert_int_equal(m.type, MSG_PROGRESS);
		assert_string_equal(m.image_id, IMG1);
		assert_true(m.fraction == cases[i].out);
		assert_string_equal(m.message, "task RUNNING \xe2\x9c\x93");
		msg_worker_free(&m);
	}
	DECODE_OK(msg_encode_progress(IMG2, 0.5, "", &len), &m);
	assert_string_equal(m.message, "");
	msg_worker_free(&m);
}

static void
test_warning_roundtrip(void **state)
{
	struct msg_worker m;
	size_t len = 0;

	(void)state;
	DECODE_OK(msg_encode_warning(IMG1, "ark: no negative prompt field; it is not sent", &len),
		  &m);
	assert_int_equal(m.type, MSG_WARNING);
	assert_string_equal(m.image_id, IMG1);
	assert_string_equal(m.message, "ark: no negative prompt field; it is not sent");
	msg_worker_free(&m);
}

static void
test_v2_worker_refused(void **state)
{
	char note[MSG_NOTE_MAX + 64];
	char line[T2I_CHECKPOINT_MAX + 512];

	(void)state;
	worker_refused("{\"type\":\"checkpoint\",\"image_id\":\"" IMG1 "\"}",
		       "checkpoint: member 'state' missing");
	worker_refused("{\"type\":\"checkpoint\",\"image_id\":\"" IMG1 "\",\"state\":{}}",
		       "member 'state' has the wrong type");
	worker_refused("{\"type\":\"checkpoint\",\"image_id\":\"" IMG1 "\",\"state\":\"[1]\"}",
		       "checkpoint: state: not a JSON object");
	worker_refused("{\"type\":\"checkpoint\",\"image_id\":\"" IMG1 "\",\"state\":\"{\"}",
		       "checkpoint: state: not JSON");
	worker_refused("{\"type\":\"checkpoint\",\"image_id\":\"" IMG1 "\",\"state\":\"{}\","
		       "\"x\":1}",
		       "checkpoint: unknown member 'x'");
	worker_refused("{\"type\":\"checkpoint\",\"state\":\"{}\"}", "checkpoint: bad image_id");
	snprintf(line, sizeof(line), "{\"type\":\"checkpoint\",\"image_id\":\"" IMG1
		 "\",\"state\":\"{\\\"k\\\":\\\"%0*d\\\"}\"}", T2I_CHECKPOINT_MAX, 0);
	worker_refused(line, "more than the 16384 allowed");

	worker_refused("{\"type\":\"progress\",\"image_id\":\"" IMG1 "\",\"message\":\"m\"}",
		       "progress: member 'fraction' missing");
	worker_refused("{\"type\":\"progress\",\"image_id\":\"" IMG1 "\",\"fraction\":1.5,"
		       "\"message\":\"m\"}",
		       "progress: fraction 1.5 is not from 0 to 1");
	worker_refused("{\"type\":\"progress\",\"image_id\":\"" IMG1 "\",\"fraction\":-1,"
		       "\"message\":\"m\"}",
		       "is not from 0 to 1");
	worker_refused("{\"type\":\"progress\",\"image_id\":\"" IMG1 "\",\"fraction\":\"0.5\","
		       "\"message\":\"m\"}",
		       "member 'fraction' has the wrong type");
	memset(note, 'n', sizeof(note));
	note[MSG_NOTE_MAX + 1] = '\0';
	snprintf(line, sizeof(line), "{\"type\":\"progress\",\"image_id\":\"" IMG1
		 "\",\"fraction\":null,\"message\":\"%s\"}", note);
	worker_refused(line, "progress: message empty or longer than 1024 bytes");
	snprintf(line, sizeof(line), "{\"type\":\"warning\",\"image_id\":\"" IMG1
		 "\",\"message\":\"%s\"}", note);
	worker_refused(line, "warning: message empty or longer");
	worker_refused("{\"type\":\"warning\",\"image_id\":\"" IMG1 "\",\"message\":\"\"}",
		       "warning: message empty");
	worker_refused("{\"type\":\"warning\",\"image_id\":\"" IMG1 "\",\"message\":\"m\","
		       "\"fraction\":0}",
		       "warning: unknown member 'fraction'");
	worker_refused("{\"type\":\"warning\",\"message\":\"m\"}", "warning: bad image_id");
	/* The supervisor's messages are not the worker's. */
	worker_refused("{\"type\":\"ack\",\"image_id\":\"" IMG1 "\",\"ok\":true}",
		       "unknown message type 'ack'");
	worker_refused("{\"type\":\"stop\",\"reason\":\"cancelled\"}", "stop: bad image_id");
}

static void
ctl_ok(char *line, size_t len, struct msg_ctl *c)
{
	assert_one_line(line, len);
	strcpy(err, "(no error)");
	if (msg_decode_ctl(line, len, c, err, sizeof(err)) != 0)
		print_error("line: %s\nerr:  %s\n", line, err);
	free(line);
	assert_string_equal(err, "(no error)");
}

static void
test_ctl_roundtrip(void **state)
{
	static const char *const names[] = { NULL, "cancelled", "deadline", "budget", "shutdown" };
	struct msg_ctl c;
	size_t len = 0;
	char *line;

	(void)state;
	line = msg_encode_ack(IMG1, NULL, &len);
	ctl_ok(line, len, &c);
	assert_int_equal(c.type, MSG_ACK);
	assert_string_equal(c.image_id, IMG1);
	assert_true(c.ok);
	assert_null(c.message);
	msg_ctl_free(&c);

	line = msg_encode_ack(IMG2, "cannot record it: disk I/O error", &len);
	ctl_ok(line, len, &c);
	assert_int_equal(c.type, MSG_ACK);
	assert_false(c.ok);
	assert_string_equal(c.message, "cannot record it: disk I/O error");
	msg_ctl_free(&c);
	assert_null(c.message);

	for (int r = T2I_STOP_CANCELLED; r <= T2I_STOP_SHUTDOWN; r++) {
		assert_string_equal(msg_stop_name(r), names[r]);
		assert_int_equal(msg_stop_parse(names[r]), r);
		line = msg_encode_stop(r, &len);
		ctl_ok(line, len, &c);
		assert_int_equal(c.type, MSG_STOP);
		assert_int_equal(c.reason, r);
		msg_ctl_free(&c);
	}
	/* No stop says "go on". */
	assert_null(msg_stop_name(T2I_STOP_NONE));
	assert_null(msg_stop_name(5));
	assert_null(msg_stop_name(-1));
	assert_null(msg_encode_stop(T2I_STOP_NONE, &len));
	assert_null(msg_encode_stop(9, &len));
	assert_int_equal(msg_stop_parse("none"), -1);
	assert_int_equal(msg_stop_parse("Cancelled"), -1);
	assert_int_equal(msg_stop_parse(""), -1);
}

static void
ctl_refused(const char *line, const char *want)
{
	struct msg_ctl c;
	int rc;

	strcpy(err, "(no error)");
	rc = msg_decode_ctl(line, strlen(line), &c, err, sizeof(err));
	if (rc == 0 || strstr(err, want) == NULL)
		print_error("line: %s\nwant: %s\ngot:  %s\n", line, want, err);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, want));
	assert_null(c.message);
}

static void
test_ctl_refused(void **state)
{
	(void)state;
	ctl_refused("", "not JSON");
	ctl_refused("[]", "not a JSON object");
	ctl_refused("{}", "without a type");
	ctl_refused("{\"type\":\"begin\",\"image_id\":\"" IMG1 "\"}", "unknown message type 'begin'");
	ctl_refused("{\"type\":\"stop\"}", "stop: member 'reason' missing");
	ctl_refused("{\"type\":\"stop\",\"reason\":\"later\"}", "stop: unknown reason 'later'");
	ctl_refused("{\"type\":\"stop\",\"reason\":4}", "member 'reason' has the wrong type");
	ctl_refused("{\"type\":\"stop\",\"reason\":\"budget\",\"x\":1}", "stop: unknown member 'x'");
	ctl_refused("{\"type\":\"ack\",\"ok\":true}", "ack: member 'image_id' missing");
	ctl_refused("{\"type\":\"ack\",\"image_id\":\"" IMG1 "0\",\"ok\":true}", "ack: bad image_id");
	ctl_refused("{\"type\":\"ack\",\"image_id\":\"" IMG1 "\",\"ok\":false}",
		    "ack: member 'message' missing");
	ctl_refused("{\"type\":\"ack\",\"image_id\":\"" IMG1 "\",\"ok\":true,\"message\":\"m\"}",
		    "ack: unknown member 'message'");
	ctl_refused("{\"type\":\"ack\",\"image_id\":\"" IMG1 "\",\"ok\":1}",
		    "member 'ok' has the wrong type");
}

static void
test_state_check(void **state)
{
	char big[T2I_CHECKPOINT_MAX + 16];

	(void)state;
	assert_int_equal(msg_state_check("{}", err, sizeof(err)), 0);
	assert_int_equal(msg_state_check(" {\"task\":\"t\"} ", err, sizeof(err)), 0);
	assert_int_equal(msg_state_check(NULL, err, sizeof(err)), -1);
	assert_int_equal(msg_state_check("", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not JSON"));
	assert_int_equal(msg_state_check("[\"task\"]", err, sizeof(err)), -1);
	assert_string_equal(err, "not a JSON object");
	assert_int_equal(msg_state_check("\"task\"", err, sizeof(err)), -1);
	assert_int_equal(msg_state_check("{\"a\":1,\"a\":2}", err, sizeof(err)), -1);
	assert_int_equal(msg_state_check("{\"a\":1} {}", err, sizeof(err)), -1);
	assert_int_equal(msg_state_check("{\"a\":\"\xff\"}", err, sizeof(err)), -1);
	/* Exactly the limit is allowed, one byte more is not. */
	snprintf(big, sizeof(big), "{\"k\":\"%0*d\"}", T2I_CHECKPOINT_MAX - 8, 0);
	assert_int_equal(strlen(big), T2I_CHECKPOINT_MAX);
	assert_int_equal(msg_state_check(big, err, sizeof(err)), 0);
	snprintf(big, sizeof(big), "{\"k\":\"%0*d\"}", T2I_CHECKPOINT_MAX - 7, 0);
	assert_int_equal(msg_state_check(big, err, sizeof(err)), -1);
	assert_string_equal(err, "16385 bytes, more than the 16384 allowed");
}

static void
test_text_clean(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain", "plain" },
		{ "\xe7\x8c\xab \xf0\x9f\x90\x88 \xc3\xa9", "\xe7\x8c\xab \xf0\x9f\x90\x88 \xc3\xa9" },
		{ "cut \xe7\x8c", "cut ??" },		/* a sequence cut by a buffer */
		{ "\xff\xfe", "??" },
		{ "\xc0\xaf", "??" },			/* overlong '/' */
		{ "\xed\xa0\x80", "???" },		/* a surrogate */
		{ "\xf4\x90\x80\x80", "????" },		/* past U+10FFFF */
		{ "\x80x", "?x" },
		{ "", "" },
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), "%s", cases[i].in);
		msg_text_clean(buf);
		assert_string_equal(buf, cases[i].out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_roundtrip),
		cmocka_unit_test(test_batch_encode_refuses_null),
		cmocka_unit_test(test_begin_roundtrip),
		cmocka_unit_test(test_image_roundtrip),
		cmocka_unit_test(test_result_roundtrip),
		cmocka_unit_test(test_fatal_roundtrip),
		cmocka_unit_test(test_worker_refused),
		cmocka_unit_test(test_batch_refused),
		cmocka_unit_test(test_class_names),
		cmocka_unit_test(test_checkpoint_roundtrip),
		cmocka_unit_test(test_progress_roundtrip),
		cmocka_unit_test(test_warning_roundtrip),
		cmocka_unit_test(test_v2_worker_refused),
		cmocka_unit_test(test_ctl_roundtrip),
		cmocka_unit_test(test_ctl_refused),
		cmocka_unit_test(test_state_check),
		cmocka_unit_test(test_text_clean),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
