/* A provider plugin's handling of its provider's answers, without a
 * network: the plugin and plugins/phttp.c are linked unchanged, with
 * fake_curl.c in place of libcurl's transfers.  One binary per plugin
 * (fuzz_plugin_NAME), from this file.
 *
 * The input is text:
 *
 *   options JSON (one line; "" for {})      @WORKFLOW@ names a workflow file
 *   resume JSON (one line; "" for none)
 *   %%
 *   STATUS                                  0: the transfer fails to connect
 *   Header: value ...
 *                                           a blank line, then the body
 *   BODY
 *   %%
 *   the next answer ...
 *
 * What must hold whatever the answers: no crash, an error class within
 * the five and a message on every failure.  The fake host answers as the
 * real one (src/proc/host.c) does: it refuses a checkpoint that holds the
 * api key (a provider may echo the key, and the fuzzer finds the key's
 * bytes); log lines and errors it redacts itself, so a key echoed there
 * is no plugin's fault. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_curl.h"
#include "fuzz.h"
#include "t2istage/plugin.h"

#define KEY "sk-fuzz-0123456789abcdef"
#define ANSWERS_MAX 16
#define SEP "\n%%\n"

/* ComfyUI's default text-to-image workflow, exported in API format. */
static const char workflow[] =
	"{\"3\": {\"class_type\": \"KSampler\", \"inputs\": {\"seed\": 0, \"steps\": 20,"
	" \"cfg\": 7.0, \"sampler_name\": \"euler\", \"scheduler\": \"normal\", \"denoise\": 1.0,"
	" \"model\": [\"4\", 0], \"positive\": [\"6\", 0], \"negative\": [\"7\", 0],"
	" \"latent_image\": [\"5\", 0]}},"
	" \"4\": {\"class_type\": \"CheckpointLoaderSimple\", \"inputs\": {\"ckpt_name\": \"a.ckpt\"}},"
	" \"5\": {\"class_type\": \"EmptyLatentImage\", \"inputs\": {\"width\": 512, \"height\": 512,"
	" \"batch_size\": 1}},"
	" \"6\": {\"class_type\": \"CLIPTextEncode\", \"inputs\": {\"text\": \"\", \"clip\": [\"4\", 1]}},"
	" \"7\": {\"class_type\": \"CLIPTextEncode\", \"inputs\": {\"text\": \"\", \"clip\": [\"4\", 1]}},"
	" \"8\": {\"class_type\": \"VAEDecode\", \"inputs\": {\"samples\": [\"3\", 0], \"vae\": [\"4\", 2]}},"
	" \"9\": {\"class_type\": \"SaveImage\", \"inputs\": {\"filename_prefix\": \"t2i\","
	" \"images\": [\"8\", 0]}}}";

static char workflow_path[4200];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *f;

	(void)argc;
	(void)argv;
	snprintf(workflow_path, sizeof(workflow_path), "%s/workflow.json", fuzz_tmpdir());
	if ((f = fopen(workflow_path, "w")) == NULL || fputs(workflow, f) < 0 || fclose(f) != 0)
		abort();
	return 0;
}

static int
host_add_image(void *ctx, const char *url, const void *bytes, size_t size)
{
	(void)ctx;
	if (url == NULL && bytes == NULL)
		abort();	/* the ABI: one of them */
	return bytes == NULL || size > 0 ? 0 : -1;
}

__attribute__((format(printf, 3, 4))) static void
host_log(void *ctx, int level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	(void)ctx;
	(void)level;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
}

static int
host_checkpoint(void *ctx, const char *state)
{
	json_t *o = json_loads(state, 0, NULL);
	int ok = json_is_object(o) && strstr(state, KEY) == NULL;

	(void)ctx;
	json_decref(o);
	return ok ? 0 : -1;
}

static void
host_progress(void *ctx, double fraction, const char *message)
{
	(void)ctx;
	(void)fraction;
	if (message == NULL)
		abort();
}

/* Polls go on while answers are left; then the service stops (the task is
 * kept for the next attempt). */
static int
host_sleep(void *ctx, uint32_t ms)
{
	(void)ctx;
	(void)ms;
	return fake_curl_left() > 0 ? T2I_STOP_NONE : T2I_STOP_SHUTDOWN;
}

/* One answer's text: "STATUS\nheaders\n\nbody". */
static void
parse_answer(char *s, size_t len, struct fake_answer *a)
{
	char *end = s + len, *nl = memchr(s, '\n', len), *blank;

	*a = (struct fake_answer){ .status = 200 };
	if (nl == NULL) {
		a->body = s;
		a->len = len;
		return;
	}
	*nl = '\0';
	a->status = strtol(s, NULL, 10);
	if (a->status < 0 || a->status > 999)
		a->status = 200;
	s = nl + 1;
	blank = memmem(s, (size_t)(end - s), "\n\n", 2);
	if (s < end && *s == '\n') {		/* no header */
		a->body = s + 1;
	} else if (blank != NULL) {
		a->headers = s;
		a->hlen = (size_t)(blank - s);
		a->body = blank + 2;
	} else {
		a->headers = s;
		a->hlen = (size_t)(end - s);
		a->body = end;
	}
	a->len = (size_t)(end - a->body);
}

/* The options line with @WORKFLOW@ replaced by the workflow's path. */
static char *
options(const char *line)
{
	const char *at = strstr(line, "@WORKFLOW@");
	size_t n = strlen(line) + strlen(workflow_path) + 1;
	char *out = malloc(n);

	if (out == NULL)
		abort();
	if (at == NULL)
		snprintf(out, n, "%s", line[0] != '\0' ? line : "{}");
	else
		snprintf(out, n, "%.*s%s%s", (int)(at - line), line, workflow_path, at + 10);
	return out;
}

static void
run(const char *opts, const char *resume, const struct fake_answer *answers, size_t n)
{
	struct t2i_request req = {
		.abi_version = T2I_ABI_VERSION, .struct_size = sizeof(req),
		.api_url = "http://provider.invalid/api", .api_key = KEY, .model = "model-1",
		.prompt = "a red fox in the snow", .negative_prompt = "blurry",
		.ratio = "16:9", .resolution = "1k", .width = 1024, .height = 576,
		.options_json = opts, .timeout_s = 30, .storyboard_id =
		"6f1c2a4e-8d2b-4c1a-9e3f-0a1b2c3d4e5f", .storyboard_index = 1,
		.connect_timeout_s = 5, .max_response_bytes = 1u << 20,
		.resume_json = resume, .idempotency_key = "0b7e3d3e-5c1a-8f00-8a00-000000000001",
	};
	struct t2i_host host = {
		.abi_version = T2I_ABI_VERSION, .struct_size = sizeof(host),
		.add_image = host_add_image, .log = host_log, .checkpoint = host_checkpoint,
		.progress = host_progress, .sleep = host_sleep,
	};
	struct t2i_error err = { .abi_version = T2I_ABI_VERSION, .struct_size = sizeof(err) };
	int rc;

	fake_curl_script(answers, n);
	rc = generate_image(&req, &host, &err);
	/* FUZZ_VERBOSE=1: what became of the input, to check a new seed. */
	if (getenv("FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "generate_image: %d, %zu answers left: %s\n", rc, fake_curl_left(),
			rc != 0 ? err.message : "ok");
	if (rc != 0) {
		if (err.error_class < T2I_ERR_TRANSIENT || err.error_class > T2I_ERR_QUOTA ||
		    memchr(err.message, '\0', sizeof(err.message)) == NULL || err.message[0] == '\0')
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), *end = s + size, *nl, *resume = "", *rest = NULL, *o;
	struct fake_answer answers[ANSWERS_MAX];
	size_t n = 0;

	if ((nl = memchr(s, '\n', size)) != NULL) {
		*nl = '\0';
		resume = nl + 1;
		if ((nl = memchr(resume, '\n', (size_t)(end - resume))) != NULL) {
			*nl = '\0';
			rest = nl + 1;
		}
	}
	/* rest: "%%\nANSWER\n%%\nANSWER..."; an answer may hold any byte. */
	while (rest != NULL && n < ANSWERS_MAX && end - rest >= 3 && memcmp(rest, "%%\n", 3) == 0) {
		char *start = rest + 3, *next = memmem(start, (size_t)(end - start), SEP, 4);

		parse_answer(start, (size_t)((next != NULL ? next : end) - start), &answers[n++]);
		rest = next != NULL ? next + 1 : NULL;
	}
	o = options(s);
	run(o, resume, answers, n);
	free(o);
	free(s);
	return 0;
}
