/*
 * error: refuses a prompt containing "ERROR" (every prompt with option
 * "always": true) with a configurable error, to test each error class's
 * handling: retries with backoff, Retry-After, no retry, fail-over.
 * Options: "class" (transient, rate_limited, rejected, auth, quota; default
 * rejected), "status" (HTTP status, default 400), "retry_after_ms", and
 * "echo": true to end the message with the options text the plugin was
 * given, as providers echo the parameters they refuse; "gate": a prompt
 * with "GATE" waits for that file first (tp_gate), so that a test can hold
 * the other storyboards of a run while it looks at a failed one.
 */
#include <string.h>

#include "common.h"

T2I_PLUGIN("error", "1.0", "test: fails with a chosen error class on ERROR");

static int class_of(const char *name)
{
	static const struct {
		const char *name;
		int cls;
	} map[] = {
		{"transient", T2I_ERR_TRANSIENT}, {"rate_limited", T2I_ERR_RATE_LIMITED},
		{"rejected", T2I_ERR_REJECTED},	  {"auth", T2I_ERR_AUTH},
		{"quota", T2I_ERR_QUOTA},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(name, map[i].name) == 0)
			return map[i].cls;
	return T2I_ERR_REJECTED;
}

static int refuse(const struct t2i_request *req, struct t2i_error *err)
{
	char buf[32];
	const char *opts = req->options_json;
	int cls = class_of(tp_option_str(opts, "class", "rejected", buf, sizeof(buf)));
	double status = tp_option_num(opts, "status", 400);
	double retry = tp_option_num(opts, "retry_after_ms", 0);
	const char *echo = tp_option_num(opts, "echo", 0) != 0 ? opts : NULL;

	tp_err(err, cls, status >= 0 && status < 1000 ? (int)status : 400,
	       "error plugin: refused prompt%s%s", echo != NULL ? "; options " : "",
	       echo != NULL ? echo : "");
	if (err != NULL && err->struct_size >= sizeof(*err) && retry > 0 && retry < 1e12)
		err->retry_after_ms = (int64_t)retry;
	return -1;
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	if (!tp_req_valid(req))
		return tp_ok(req, host, err);	/* reports the bad struct */
	tp_trace(req->options_json, "start", req);
	tp_gate(req);
	if (tp_has(req, "ERROR") || tp_option_num(req->options_json, "always", 0) != 0)
		return tp_end(req, refuse(req, err));
	return tp_end(req, tp_ok(req, host, err));
}
