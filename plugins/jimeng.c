/*
 * jimeng: Jimeng (Dreamina) through the open-source jimeng-api proxy
 * [iptag/jimeng-api], an OpenAI-style images endpoint.  Wire facts are in
 * doc/providers.md; the two that shape this file:
 *   - the proxy refuses a request carrying size, width or height, so the
 *     picture is chosen by ratio and resolution only;
 *   - failures mostly come back as HTTP 200 with {"code": <negative>,
 *     "message"}, so the status alone says little.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "t2istage/plugin.h"

T2I_PLUGIN("jimeng", "1.0", "Jimeng images through the jimeng-api proxy");

#define TAG "jimeng"
#define DEFAULT_MODEL "jimeng-4.5"

static const char *const refused[] = {"size", "width", "height", NULL};

/* Request fields first, then the provider options (which cannot override
 * them); the model comes from the request, else the options, else the
 * default. */
static json_t *build_body(const struct t2i_request *req, const struct t2i_host *host,
			  struct t2i_error *err)
{
	json_t *opts = json_object(), *body = json_object();
	const char *model;
	int bad = 0;

	if (opts == NULL || body == NULL ||
	    http_merge_options(opts, req->options_json, refused, TAG, host, err) != 0) {
		if (opts == NULL || body == NULL)
			http_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
		json_decref(opts);
		json_decref(body);
		return NULL;
	}
	model = req->model[0] != '\0' ? req->model : http_str(opts, "model");
	bad |= http_put_str(body, "model", model != NULL ? model : DEFAULT_MODEL);
	bad |= http_put_str(body, "prompt", req->prompt);
	bad |= http_put_str(body, "negative_prompt", req->negative_prompt);
	if (req->ratio[0] != '\0')
		bad |= http_put_str(body, "ratio", req->ratio);
	if (req->resolution[0] != '\0')
		bad |= http_put_str(body, "resolution", req->resolution);
	json_object_update_missing(body, opts);
	json_decref(opts);
	return bad ? http_bad_field(body, TAG, err) : body;
}

/* The proxy's error codes, from its source (doc/providers.md). */
static int code_class(long long code, const char *msg)
{
	switch (code) {
	case -2001: /* upstream failure: the message says which kind */
		if (strstr(msg, "请求频率限制") != NULL)
			return T2I_ERR_RATE_LIMITED;
		return T2I_ERR_TRANSIENT; /* 服务器错误, 请求超时 and the rest */
	case -2002: /* session id expired */
		return T2I_ERR_AUTH;
	case -2006: /* content blocked */
	case -1000: /* system / parameter error: bad ratio, forbidden size */
	case -1001:
	case -2000: /* parameter validation */
		return T2I_ERR_REJECTED;
	case -2009: /* credits exhausted */
		return T2I_ERR_QUOTA;
	case -2007: /* generation failed */
	default:
		return T2I_ERR_TRANSIENT;
	}
}

/* The code as a number whether it came as one or as a string; 0 if absent. */
static long long code_value(const json_t *code)
{
	if (json_is_string(code))
		return strtoll(json_string_value(code), NULL, 10);
	return (long long)json_number_value(code);
}

static int fail_code(const struct http_resp *rs, long long code, const char *msg,
		     struct t2i_error *err)
{
	int cls = code_class(code, msg);
	int64_t ra = cls == T2I_ERR_RATE_LIMITED ? rs->retry_after_ms : 0;

	return http_fail(err, cls, rs->status, ra, TAG ": %lld %s", code,
			 msg[0] != '\0' ? msg : "(no message)");
}

/* A 2xx answer is a success only without a (non-zero) code and with a
 * non-empty data array. */
static int handle(const struct t2i_request *req, const struct t2i_host *host,
		  const struct http_resp *rs, struct t2i_error *err)
{
	json_t *doc, *code, *data;
	int rc;

	if (rs->status < 200 || rs->status > 299)
		return http_fail_status(err, TAG, rs, NULL);
	doc = http_parse_json(rs, req->max_response_bytes);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return http_fail_malformed(err, TAG, rs, "malformed response");
	}
	code = json_object_get(doc, "code");
	data = json_object_get(doc, "data");
	if (code != NULL && !json_is_null(code) && code_value(code) != 0) {
		const char *msg = json_string_value(json_object_get(doc, "message"));
		rc = fail_code(rs, code_value(code), msg != NULL ? msg : "", err);
	} else if (!json_is_array(data) || json_array_size(data) == 0) {
		rc = http_fail_malformed(err, TAG, rs, "response without images");
	} else {
		http_log(host, T2I_LOG_DEBUG, TAG ": %zu image(s) returned", json_array_size(data));
		rc = http_add_images(host, TAG, data, rs->status, err);
	}
	json_decref(doc);
	return rc;
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	static const struct http_plugin pl = { .tag = TAG, .build_body = build_body,
					       .handle = handle, };

	return http_generate(&pl, req, host, err);
}
