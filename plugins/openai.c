/*
 * openai: the OpenAI Images API (POST /v1/images/generations) and services
 * that copy it.  Wire facts are in doc/providers.md.  The API takes a size from a
 * short per-model list instead of a ratio, so the expected width x height is
 * mapped to the allowed size nearest in aspect ratio; it has no negative
 * prompt; only the dall-e models accept response_format, only the GPT image
 * models output_format.  gpt-image-1 (dall-e-2 and 3 were retired in May
 * 2026) is the default.  Errors are classed by code where the status
 * misleads (a 429 insufficient_quota is spent credit), and a rate limit
 * without Retry-After waits for the x-ratelimit-reset-* durations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phttp.h"
#include "t2istage/plugin.h"

T2I_PLUGIN_FLAGS("openai", "1.2", "OpenAI Images API and compatible services",
		 T2I_PLUGIN_NEEDS_API_KEY);

#define TAG "openai"
#define DEFAULT_MODEL "gpt-image-1"

static const struct phttp_size gpt_sizes[] = {{1024, 1024}, {1536, 1024}, {1024, 1536}, {0, 0}};
static const struct phttp_size dalle3_sizes[] = {{1024, 1024}, {1792, 1024}, {1024, 1792},
						 {0, 0}};

enum family { GPT_IMAGE, DALLE2, DALLE3, OTHER };

static enum family model_family(const char *model)
{
	if (strstr(model, "dall-e-2") != NULL)
		return DALLE2;
	if (strstr(model, "dall-e-3") != NULL)
		return DALLE3;
	if (strstr(model, "gpt-image") != NULL)
		return GPT_IMAGE;
	return OTHER;
}

/* The size to ask for when the options name none.  Models the plugin does
 * not know (compatible services such as Seedream) get the exact pixels. */
static json_t *pick_size(enum family fam, unsigned w, unsigned h)
{
	char buf[32];
	struct phttp_size s = {1024, 1024};

	if (fam == OTHER) {
		if (w == 0 || h == 0)
			return NULL;
		snprintf(buf, sizeof(buf), "%ux%u", w, h);
		return json_string(buf);
	}
	if (fam == DALLE2) {
		unsigned side = w > h ? w : h;
		s.w = s.h = side == 0 || side > 512 ? 1024 : side > 256 ? 512 : 256;
	} else if (w != 0 && h != 0) {
		s = phttp_nearest_size(fam == DALLE3 ? dalle3_sizes : gpt_sizes, w, h);
	}
	snprintf(buf, sizeof(buf), "%ux%u", s.w, s.h);
	return json_string(buf);
}

/* GPT image models always answer in base64 and refuse response_format;
 * output_format (png, jpeg, webp) is theirs alone. */
static void set_formats(json_t *opts, enum family fam, const struct t2i_host *host)
{
	if (fam == DALLE2 || fam == DALLE3) {
		if (phttp_str(opts, "response_format") == NULL)
			json_object_set_new(opts, "response_format", json_string("url"));
		if (json_object_get(opts, "output_format") != NULL) {
			phttp_log(host, T2I_LOG_WARNING, TAG ": output_format is not sent: only GPT "
				 "image models take it");
			json_object_del(opts, "output_format");
		}
	} else if (fam == GPT_IMAGE && json_object_get(opts, "response_format") != NULL) {
		phttp_log(host, T2I_LOG_WARNING, TAG ": response_format is not sent: GPT image "
			 "models always return base64");
		json_object_del(opts, "response_format");
	}
}

/* model (the request's, else the options', else gpt-image-1), prompt, n,
 * size and response_format, then the other options (quality,
 * output_format, background, style, ...) as given. */
static json_t *build_body(const struct t2i_request *req, const struct t2i_host *host,
			  struct t2i_error *err)
{
	json_t *opts, *body, *size;
	const char *model;
	enum family fam;
	int bad = 0;

	if (phttp_body_start(&opts, &body, req, NULL, TAG, host, err) != 0)
		return NULL;
	model = req->model[0] != '\0' ? req->model : phttp_str(opts, "model");
	model = model != NULL ? model : DEFAULT_MODEL;
	fam = model_family(model);
	phttp_warn_no_negative(req, host, TAG ": the Images API has no negative prompt; it is "
			       "not sent");
	set_formats(opts, fam, host);
	bad |= phttp_put_str(body, "model", model);
	bad |= phttp_put_str(body, "prompt", req->prompt);
	if (json_object_get(opts, "n") == NULL)
		json_object_set_new(body, "n", json_integer(1));
	size = json_object_get(opts, "size");
	if (size == NULL && (size = pick_size(fam, req->width, req->height)) != NULL)
		json_object_set_new(body, "size", size);
	json_object_update_missing(body, opts);
	json_decref(opts);
	return bad ? phttp_bad_field(body, TAG, err) : body;
}

/* OpenAI's error codes that the status alone would misclass. */
static const struct phttp_code codes[] = {
	{"insufficient_quota", T2I_ERR_QUOTA},		/* a 429, but no rate limit */
	{"billing_hard_limit_reached", T2I_ERR_QUOTA},
	{"moderation_blocked", T2I_ERR_REJECTED},	/* gpt-image-1's safety system */
	{"content_policy_violation", T2I_ERR_REJECTED},
	{"invalid_api_key", T2I_ERR_AUTH},
	{NULL, 0},
};

/* x-ratelimit-reset-* values are durations: "6m30s", "1s", "120ms",
 * "1h2m3.5s".  Milliseconds, or -1 for anything else. */
static int64_t duration_ms(const char *s)
{
	double total = 0;
	char *end;

	if (*s == '\0')
		return -1;
	while (*s != '\0') {
		double v, unit;
		if ((*s < '0' || *s > '9') && *s != '.')
			return -1;
		v = strtod(s, &end);
		if (strncmp(end, "ms", 2) == 0)
			unit = 1, end++;
		else if (*end == 'h')
			unit = 3600e3;
		else if (*end == 'm')
			unit = 60e3;
		else if (*end == 's')
			unit = 1e3;
		else
			return -1;
		total += v * unit;
		s = end + 1;
	}
	return total < 86400e3 ? (int64_t)total : 86400000;
}

/* When the limit that was hit resets: the reset of a limit whose remaining
 * count is 0, else the later of the two; -1 without the headers. */
static int64_t reset_ms(const struct phttp_resp *rs)
{
	static const char *const limits[] = {"requests", "tokens"};
	int64_t later = -1, spent = -1;
	char name[48], v[64];

	for (size_t i = 0; i < 2; i++) {
		int64_t d;
		snprintf(name, sizeof(name), "x-ratelimit-reset-%s", limits[i]);
		if (phttp_header(rs, name, v, sizeof(v)) != 0 || (d = duration_ms(v)) < 0)
			continue;
		later = d > later ? d : later;
		snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", limits[i]);
		if (phttp_header(rs, name, v, sizeof(v)) == 0 && strcmp(v, "0") == 0)
			spent = d > spent ? d : spent;
	}
	return spent >= 0 ? spent : later;
}

/* {"error": {"message", "type", "code"}} with a real status; a few
 * compatibles send "error" as a plain string. */
static int fail_error(const struct phttp_resp *rs, const json_t *doc, struct t2i_error *err)
{
	const json_t *e = json_object_get(doc, "error");
	const char *msg = json_is_string(e) ? json_string_value(e) : phttp_str(e, "message");
	const char *code = phttp_str(e, "code"), *type = phttp_str(e, "type");
	int cls = phttp_code_class(codes, code, rs->status);
	int64_t ra = 0;

	if (msg == NULL || msg[0] == '\0')
		return phttp_fail_status(err, TAG, rs, NULL);
	if (rs->status == 429 && type != NULL && strcmp(type, "insufficient_quota") == 0)
		cls = T2I_ERR_QUOTA;
	if (cls == T2I_ERR_RATE_LIMITED || cls == T2I_ERR_TRANSIENT)
		ra = rs->retry_after_ms;
	if (cls == T2I_ERR_RATE_LIMITED && ra <= 0)
		ra = reset_ms(rs);
	return phttp_fail(err, cls, rs->status, ra, TAG ": %s%s%s%s", msg, code ? " (" : "",
			 code ? code : "", code ? ")" : "");
}

static int handle(const struct t2i_request *req, const struct t2i_host *host,
		  const struct phttp_resp *rs, struct t2i_error *err)
{
	json_t *doc = phttp_parse_json(rs, req->max_response_bytes);
	json_t *data = json_object_get(doc, "data"), *error = json_object_get(doc, "error");
	int rc;

	/* SiliconFlow answers with images[] instead of data[]. */
	if (!json_is_array(data))
		data = json_object_get(doc, "images");
	if (rs->status < 200 || rs->status > 299 || (error != NULL && !json_is_null(error)))
		rc = fail_error(rs, doc, err);
	else if (json_is_array(data) && json_array_size(data) > 0)
		rc = phttp_add_images(host, TAG, data, rs->status, err);
	else
		rc = phttp_fail_malformed(err, TAG, rs, doc != NULL ? "response without images"
								 : "malformed response");
	json_decref(doc);
	return rc;
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	static const struct phttp_plugin pl = { .tag = TAG, .build_body = build_body,
					       .handle = handle, };

	return phttp_generate(&pl, req, host, err);
}
