/*
 * ark: Volcengine Ark Seedream, the official and paid form of the model
 * family behind Jimeng (POST {base}/api/v3/images/generations, OpenAI-
 * shaped, synchronous).  Wire facts are in doc/providers.md; what shapes
 * this file:
 *   - the host's width x height goes in `size` as "WxH", within what each
 *     model takes: Seedream 4.5 and 5.0 need at least 2560x1440 pixels in
 *     all (a 1k request becomes the 2K size of its ratio), 4.0 at least
 *     1280x720 (Ark's documentation; a 1k request is scaled up to it),
 *     3.0-t2i takes 512 to 2048 per side;
 *   - `watermark` defaults to true at Ark: it is sent false unless the
 *     provider's options say otherwise;
 *   - there is no negative prompt field: one warning says so;
 *   - errors carry a real status and a code, and the code decides the
 *     class (a 403 AccountOverdueError is spent credit, not a bad key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phttp.h"
#include "t2istage/plugin.h"

T2I_PLUGIN_FLAGS("ark", "1.0", "Volcengine Ark Seedream (official API)",
		 T2I_PLUGIN_NEEDS_API_KEY);

#define TAG "ark"
#define ENDPOINT "/images/generations"
#define DEFAULT_MODEL "doubao-seedream-4-0-250828"
#define MIN_PIXELS_45 (2560u * 1440u)	/* Seedream 4.5 and 5.0 */
#define MIN_PIXELS_40 (1280u * 720u)	/* Seedream 4.0, from Ark's documentation */
#define SIDE_MIN_30 512u		/* Seedream 3.0-t2i */
#define SIDE_MAX_30 2048u

/* The recommended 2K sizes, which equal the jimeng 2k table. */
static const struct {
	const char *ratio;
	unsigned w, h;
} sizes_2k[] = {
	{"1:1", 2048, 2048}, {"4:3", 2304, 1728}, {"3:4", 1728, 2304}, {"16:9", 2560, 1440},
	{"9:16", 1440, 2560}, {"3:2", 2496, 1664}, {"2:3", 1664, 2496}, {"21:9", 3024, 1296},
};

/* Ark error codes and what they mean for us (doc/providers.md). */
static const struct phttp_code codes[] = {
	{"*SensitiveContentDetected", T2I_ERR_REJECTED},
	{"SensitiveContentDetected*", T2I_ERR_REJECTED},
	{"*RiskDetection", T2I_ERR_REJECTED},
	{"InvalidParameter*", T2I_ERR_REJECTED},
	{"MissingParameter", T2I_ERR_REJECTED},
	{"AuthenticationError", T2I_ERR_AUTH},
	{"AccountOverdueError", T2I_ERR_QUOTA},
	{"OperationDenied.ServiceOverdue", T2I_ERR_QUOTA},
	{"AccessDenied", T2I_ERR_AUTH},
	{"OperationDenied.ServiceNotOpen", T2I_ERR_AUTH},
	{"ModelNotOpen", T2I_ERR_AUTH},
	{"InvalidEndpointOrModel*", T2I_ERR_AUTH},
	{"RateLimitExceeded*", T2I_ERR_RATE_LIMITED},
	{"ModelAccountIpmRateLimitExceeded", T2I_ERR_RATE_LIMITED},
	{"QuotaExceeded", T2I_ERR_QUOTA},
	{"SetLimitExceeded", T2I_ERR_QUOTA},
	{"ServerOverloaded", T2I_ERR_TRANSIENT},
	{"InternalServiceError", T2I_ERR_TRANSIENT},
	{NULL, 0},
};

/* w x h scaled up, ratio kept, in steps of 1/8, to min_pixels or more. */
static struct phttp_size scale_up(struct phttp_size s, unsigned long long min_pixels)
{
	unsigned num = 8;

	while ((unsigned long long)s.w * num / 8 * (s.h * num / 8) < min_pixels)
		num++;
	return (struct phttp_size){s.w * num / 8, s.h * num / 8};
}

/* Seedream 4.5 and later want 2K or more: the 2K size of the ratio, or (for
 * a ratio outside the table) w x h scaled up. */
static struct phttp_size at_least_2k(const char *ratio, struct phttp_size s)
{
	if ((unsigned long long)s.w * s.h >= MIN_PIXELS_45)
		return s;
	for (size_t i = 0; i < sizeof(sizes_2k) / sizeof(sizes_2k[0]); i++)
		if (strcmp(ratio, sizes_2k[i].ratio) == 0)
			return (struct phttp_size){sizes_2k[i].w, sizes_2k[i].h};
	return scale_up(s, MIN_PIXELS_45);
}

/* The size to send for the request's width x height; endpoint ids (ep-...)
 * and models not listed get the pixels as they are. */
static json_t *pick_size(const char *model, const struct t2i_request *req)
{
	struct phttp_size s = {req->width, req->height};
	char buf[32];

	if (s.w == 0 || s.h == 0)
		return NULL;	/* Ark's own default size */
	if (strstr(model, "seedream-4-5") != NULL || strstr(model, "seedream-5-0") != NULL)
		s = at_least_2k(req->ratio, s);
	else if (strstr(model, "seedream-4-0") != NULL)
		s = scale_up(s, MIN_PIXELS_40);
	else if (strstr(model, "seedream-3-0") != NULL)
		s = phttp_fit_sides(s, SIDE_MIN_30, SIDE_MAX_30);
	snprintf(buf, sizeof(buf), "%ux%u", s.w, s.h);
	return json_string(buf);
}

/* model, prompt and size from the request; then the options (seed,
 * guidance_scale, sequential_image_generation, max_images, ...); then
 * watermark false and response_format url unless the options set them. */
static json_t *build_body(const struct t2i_request *req, const struct t2i_host *host,
			  struct t2i_error *err)
{
	json_t *opts, *body, *size;
	const char *model;
	int bad = 0;

	if (phttp_body_start(&opts, &body, req, NULL, TAG, host, err) != 0)
		return NULL;
	model = req->model[0] != '\0' ? req->model : phttp_str(opts, "model");
	model = model != NULL ? model : DEFAULT_MODEL;
	phttp_warn_no_negative(req, host, TAG ": Ark has no negative prompt field; the negative "
			       "prompt is not sent");
	bad |= phttp_put_str(body, "model", model);
	bad |= phttp_put_str(body, "prompt", req->prompt);
	if (json_object_get(opts, "size") == NULL && (size = pick_size(model, req)) != NULL)
		json_object_set_new(body, "size", size);
	json_object_update_missing(body, opts);
	json_decref(opts);
	phttp_set_default(body, "watermark", json_false());
	phttp_set_default(body, "response_format", json_string("url"));
	return bad ? phttp_bad_field(body, TAG, err) : body;
}

/* {"error": {"code", "message", "param", "type"}} with a real status. */
static int fail_error(const struct phttp_resp *rs, const json_t *doc, struct t2i_error *err)
{
	const json_t *e = json_object_get(doc, "error");
	const char *code = phttp_str(e, "code"), *msg = phttp_str(e, "message");

	if (code == NULL && msg == NULL)
		return phttp_fail_status(err, TAG, rs, NULL);
	return phttp_fail_code(err, TAG, rs, codes, code, msg);
}

static int handle(const struct t2i_request *req, const struct t2i_host *host,
		  const struct phttp_resp *rs, struct t2i_error *err)
{
	json_t *doc = phttp_parse_json(rs, req->max_response_bytes);
	json_t *data = json_object_get(doc, "data"), *error = json_object_get(doc, "error");
	int rc;

	if (rs->status < 200 || rs->status > 299 || (error != NULL && !json_is_null(error)))
		rc = fail_error(rs, doc, err);
	else if (json_is_array(data) && json_array_size(data) > 0)
		rc = phttp_add_images(host, TAG, data, rs->status, err);
	else
		rc = phttp_fail_malformed(err, TAG, rs, json_is_object(doc) ? "response without "
					 "images" : "malformed response");
	json_decref(doc);
	return rc;
}

static char *endpoint_url(const char *api_url)
{
	return phttp_endpoint(api_url, ENDPOINT);
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	static const struct phttp_plugin pl = { .tag = TAG, .build_body = build_body,
					       .handle = handle, .endpoint = endpoint_url, };

	return phttp_generate(&pl, req, host, err);
}
