/*
 * jimeng: Jimeng (Dreamina) through the open-source jimeng-api proxy
 * [iptag/jimeng-api], an OpenAI-style images endpoint.  Wire facts are in
 * doc/providers.md; the two that shape this file:
 *   - the proxy refuses a request carrying size, width or height, so the
 *     picture is chosen by ratio and resolution only;
 *   - failures mostly come back as HTTP 200 with {"code": <negative>,
 *     "message"}, so the status alone says little, and the same code can
 *     mean a retryable network failure or a bad request: only the message
 *     tells them apart.
 */
#include <stdlib.h>
#include <string.h>

#include "phttp.h"
#include "t2istage/plugin.h"

/* The proxy answers a request without a session id with -2000: a provider
 * without a key is a configuration error, found before any run. */
T2I_PLUGIN_FLAGS("jimeng", "1.1", "Jimeng images through the jimeng-api proxy",
		 T2I_PLUGIN_NEEDS_API_KEY);

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
	    phttp_merge_options(opts, req->options_json, refused, TAG, host, err) != 0) {
		if (opts == NULL || body == NULL)
			phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
		json_decref(opts);
		json_decref(body);
		return NULL;
	}
	model = req->model[0] != '\0' ? req->model : phttp_str(opts, "model");
	bad |= phttp_put_str(body, "model", model != NULL ? model : DEFAULT_MODEL);
	bad |= phttp_put_str(body, "prompt", req->prompt);
	bad |= phttp_put_str(body, "negative_prompt", req->negative_prompt);
	if (req->ratio[0] != '\0')
		bad |= phttp_put_str(body, "ratio", req->ratio);
	if (req->resolution[0] != '\0')
		bad |= phttp_put_str(body, "resolution", req->resolution);
	json_object_update_missing(body, opts);
	json_decref(opts);
	return bad ? phttp_bad_field(body, TAG, err) : body;
}

/* The proxy's -1000 is its catch-all: every exception that is not one of
 * its own API errors, so both a bad parameter (in Chinese, from its own
 * checks) and a failure of its request to the upstream site.  The latter
 * carries Node's text, which names the system error code (getaddrinfo
 * ENOTFOUND host, connect ECONNREFUSED addr, read ECONNRESET, ...) or is one
 * of the phrases Node and axios use for a dropped or timed-out request. */
static const char *const node_codes[] = {
	"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "ETIMEDOUT",
	"ESOCKETTIMEDOUT", "EPIPE", "ENETUNREACH", "ENETDOWN", "EHOSTUNREACH", "EHOSTDOWN",
	NULL
};
static const char *const node_phrases[] = {
	"socket hang up", "timeout of ", "Client network socket disconnected", NULL
};

static int is_code_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whether code appears in msg as a word of its own (not inside a longer
 * upper-case token). */
static int has_code(const char *msg, const char *code)
{
	size_t n = strlen(code);

	for (const char *p = strstr(msg, code); p != NULL; p = strstr(p + 1, code))
		if ((p == msg || !is_code_char(p[-1])) && !is_code_char(p[n]))
			return 1;
	return 0;
}

static int is_network_failure(const char *msg)
{
	for (size_t i = 0; node_codes[i] != NULL; i++)
		if (has_code(msg, node_codes[i]))
			return 1;
	for (size_t i = 0; node_phrases[i] != NULL; i++)
		if (strstr(msg, node_phrases[i]) != NULL)
			return 1;
	return 0;
}

/* The proxy's error codes, from its source (doc/providers.md). */
static int code_class(long long code, const char *msg)
{
	switch (code) {
	case -1000: /* catch-all: the proxy's network failure, or a bad parameter */
		return is_network_failure(msg) ? T2I_ERR_TRANSIENT : T2I_ERR_REJECTED;
	case -2000: /* parameter validation; no Bearer token is a missing key */
		return strstr(msg, "headers.authorization") != NULL ? T2I_ERR_AUTH
								    : T2I_ERR_REJECTED;
	case -2001: /* upstream failure: the message says which kind */
		if (strstr(msg, "请求频率限制") != NULL)
			return T2I_ERR_RATE_LIMITED;
		return T2I_ERR_TRANSIENT; /* 服务器错误, 请求超时 and the rest */
	case -2002: /* session id expired */
		return T2I_ERR_AUTH;
	case -2006: /* content blocked */
	case -1001: /* parameter validation */
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

static int fail_code(const struct phttp_resp *rs, long long code, const char *msg,
		     struct t2i_error *err)
{
	int cls = code_class(code, msg);
	int64_t ra = cls == T2I_ERR_RATE_LIMITED ? rs->retry_after_ms : 0;

	return phttp_fail(err, cls, rs->status, ra, TAG ": %lld %s", code,
			 msg[0] != '\0' ? msg : "(no message)");
}

/* A 2xx answer is a success only without a (non-zero) code and with a
 * non-empty data array. */
static int handle(const struct t2i_request *req, const struct t2i_host *host,
		  const struct phttp_resp *rs, struct t2i_error *err)
{
	json_t *doc, *code, *data;
	int rc;

	if (rs->status < 200 || rs->status > 299)
		return phttp_fail_status(err, TAG, rs, NULL);
	doc = phttp_parse_json(rs, req->max_response_bytes);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return phttp_fail_malformed(err, TAG, rs, "malformed response");
	}
	code = json_object_get(doc, "code");
	data = json_object_get(doc, "data");
	if (code != NULL && !json_is_null(code) && code_value(code) != 0) {
		const char *msg = json_string_value(json_object_get(doc, "message"));
		rc = fail_code(rs, code_value(code), msg != NULL ? msg : "", err);
	} else if (!json_is_array(data) || json_array_size(data) == 0) {
		rc = phttp_fail_malformed(err, TAG, rs, "response without images");
	} else {
		phttp_log(host, T2I_LOG_DEBUG, TAG ": %zu image(s) returned", json_array_size(data));
		rc = phttp_add_images(host, TAG, data, rs->status, err);
	}
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
