/*
 * sdwebui: AUTOMATIC1111 / Forge txt2img (server started with --api).
 * Wire facts are in doc/providers.md.  The server answers with every image as
 * plain base64 PNG in one JSON body, and reports errors as
 * {"error", "detail", "body", "errors"} (or FastAPI's {"detail": [...]} for
 * validation) with a real status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phttp.h"
#include "t2istage/plugin.h"

T2I_PLUGIN("sdwebui", "1.0", "AUTOMATIC1111 / Forge Stable Diffusion WebUI txt2img");

#define TAG "sdwebui"
#define ENDPOINT "/sdapi/v1/txt2img"

/* api_url is the server's base URL; the full endpoint is accepted too. */
static char *endpoint_url(const char *api_url)
{
	return phttp_endpoint(api_url, ENDPOINT);
}

/* Request fields first (options cannot override them), then every option
 * (sampler_name, batch_size, n_iter, override_settings, ...), then the
 * defaults for what neither gave.  Sizes are rounded down to multiples of 8,
 * which Stable Diffusion's latent space needs. */
static json_t *build_body(const struct t2i_request *req, const struct t2i_host *host,
			  struct t2i_error *err)
{
	json_t *body = json_object();

	if (body == NULL) {
		phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
		return NULL;
	}
	if (phttp_put_str(body, "prompt", req->prompt) != 0 ||
	    phttp_put_str(body, "negative_prompt", req->negative_prompt) != 0)
		return phttp_bad_field(body, TAG, err);
	if (req->width >= 8 && req->height >= 8) {
		json_object_set_new(body, "width", json_integer(req->width & ~7u));
		json_object_set_new(body, "height", json_integer(req->height & ~7u));
	}
	if (phttp_merge_options(body, req->options_json, NULL, TAG, host, err) != 0) {
		json_decref(body);
		return NULL;
	}
	phttp_set_default(body, "steps", json_integer(30));
	phttp_set_default(body, "cfg_scale", json_integer(7));
	phttp_set_default(body, "seed", json_integer(-1));
	return body;
}

/* "body.steps: value is not a valid integer" from FastAPI's first
 * validation item {"loc": [...], "msg": "..."}. */
static const char *validation_msg(const json_t *item, char *buf, size_t n)
{
	const char *msg = phttp_str(item, "msg");
	const json_t *part;
	size_t i, o = 0;

	if (msg == NULL)
		return NULL;
	buf[0] = '\0';
	json_array_foreach(json_object_get(item, "loc"), i, part) {
		if (o >= n)
			break;
		if (json_is_string(part))
			o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? "." : "",
					      json_string_value(part));
		else if (json_is_integer(part))
			o += (size_t)snprintf(buf + o, n - o, "[%lld]",
					      (long long)json_integer_value(part));
	}
	if (o < n)
		snprintf(buf + o, n - o, "%s%s", o ? ": " : "", msg);
	return buf;
}

/* The most telling text of an error body, or NULL. */
static const char *error_text(const json_t *doc, char *buf, size_t n)
{
	const json_t *detail = json_object_get(doc, "detail");
	const char *error = phttp_str(doc, "error"), *errors = phttp_str(doc, "errors");

	if (json_is_string(detail) && json_string_length(detail) > 0)
		return json_string_value(detail);
	if (json_is_array(detail) && json_array_size(detail) > 0 &&
	    validation_msg(json_array_get(detail, 0), buf, n) != NULL)
		return buf;
	if (errors != NULL && error != NULL) {
		snprintf(buf, n, "%s: %s", error, errors);
		return buf;
	}
	return errors != NULL ? errors : error;
}

static int handle(const struct t2i_request *req, const struct t2i_host *host,
		  const struct phttp_resp *rs, struct t2i_error *err)
{
	json_t *doc = phttp_parse_json(rs, req->max_response_bytes);
	json_t *images = json_object_get(doc, "images");
	char buf[384];
	int rc;

	if (rs->status < 200 || rs->status > 299)
		rc = phttp_fail_status(err, TAG, rs, error_text(doc, buf, sizeof(buf)));
	else if (json_is_array(images) && json_array_size(images) > 0)
		rc = phttp_add_images(host, TAG, images, rs->status, err);
	else
		rc = phttp_fail_malformed(err, TAG, rs, doc != NULL ? "response without images"
								 : "malformed response");
	json_decref(doc);
	return rc;
}

/* A1111's --api-auth is HTTP Basic "user:pass"; a key without a colon is
 * sent as a bearer token, for a reverse proxy in front of the WebUI. */
static void set_auth(struct phttp_req *rq, const char *key)
{
	if (strchr(key, ':') != NULL)
		rq->basic = key;
	else if (key[0] != '\0')
		rq->bearer = key;
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	static const struct phttp_plugin pl = { .tag = TAG, .build_body = build_body,
					       .handle = handle, .endpoint = endpoint_url, .auth = set_auth, };

	return phttp_generate(&pl, req, host, err);
}
