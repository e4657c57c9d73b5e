/*
 * dashscope: Alibaba DashScope (Model Studio) text-to-image, Wan and
 * Qwen-Image, which is asynchronous: a task is submitted, which is what is
 * billed, then polled, which is free.  Wire facts are in doc/providers.md;
 * what shapes this file:
 *   - the task id is checkpointed (host->checkpoint) before the first poll,
 *     and an attempt given one (req->resume_json) polls that task first:
 *     it submits again only when DashScope says the task is gone (UNKNOWN)
 *     or ended without images (FAILED, CANCELED).  A crash, a worker
 *     timeout or a kill -9 of the service therefore never pays twice;
 *   - `n` defaults to 4 at DashScope and each image is billed: n is always 1;
 *   - `size` is "W*H", per model family (Wan: 512 to 1440 a side;
 *     qwen-image: five fixed sizes);
 *   - the HTTP status misleads: a 400 Arrearage is spent credit;
 *   - the wire facts offer no way to cancel a running task: a stopped or
 *     abandoned task is left to finish, and the messages say so.
 * Without checkpoints (a host of ABI version 1) the plugin refuses to
 * submit: a task it could not resume would be paid for twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phttp_task.h"
#include "t2istage/plugin.h"

T2I_PLUGIN_FLAGS("dashscope", "1.0", "Alibaba DashScope Wan and Qwen-Image (asynchronous)",
		 T2I_PLUGIN_NEEDS_API_KEY);

#define TAG "dashscope"
#define SUBMIT_PATH "/api/v1/services/aigc/text2image/image-synthesis"
#define TASKS_PATH "/api/v1/tasks/"
#define DEFAULT_MODEL "wan2.2-t2i-flash"
#define POLL_INTERVAL_S 5.0	/* what DashScope asks for */
#define MAX_WAIT_S 1800.0	/* typical tasks take 1-2 minutes */
#define POLL_FAILURES_MAX 3	/* failed polls in a row before the attempt gives up */
#define WAN_SIDE_MIN 512
#define WAN_SIDE_MAX 1440
/* The task then stays committed: a later attempt (a retry, or a later run
 * of the storyboard) polls it and keeps what was paid for. */
#define NO_CANCEL "DashScope offers no way to cancel a running task: it may still finish " \
		  "and be billed, and a later attempt polls it"

static const struct phttp_code codes[] = {
	{"DataInspectionFailed", T2I_ERR_REJECTED},
	{"InvalidParameter*", T2I_ERR_REJECTED},
	{"Arrearage", T2I_ERR_QUOTA},
	{"InvalidApiKey", T2I_ERR_AUTH},
	{"AccessDenied*", T2I_ERR_AUTH},
	{"RequestTimeOut", T2I_ERR_TRANSIENT},
	{"InternalError*", T2I_ERR_TRANSIENT},
	{"Throttling*", T2I_ERR_RATE_LIMITED},
	{NULL, 0},
};

static const struct phttp_size qwen_sizes[] = {
	{1664, 928}, {1472, 1140}, {1328, 1328}, {1140, 1472}, {928, 1664}, {0, 0},
};

/* Options the plugin reads itself and never sends. */
static const char *const own_options[] = {"model", "poll_interval", "max_wait", NULL};

/* One call: the request, the provider's base URL and the task. */
struct call {
	const struct t2i_request *req;
	const struct t2i_host *host;
	char *base;		/* api_url up to /api/v1, without a trailing '/' */
	json_t *opts;
	struct phttp_task task;
	int poll_failures;	/* in a row */
};

/* Poll outcomes. */
enum poll { POLL_WAIT, POLL_DONE, POLL_GONE, POLL_FAIL };

/* ---------------------------------------------------------------- submit */

static json_t *pick_size(const char *model, unsigned w, unsigned h)
{
	struct phttp_size s = {w, h};
	char buf[32];

	if (w == 0 || h == 0)
		return NULL;
	if (strncmp(model, "qwen-image", 10) == 0)
		s = phttp_nearest_size(qwen_sizes, w, h);
	else if (strncmp(model, "wan", 3) == 0)
		s = phttp_fit_sides(s, WAN_SIDE_MIN, WAN_SIDE_MAX);
	snprintf(buf, sizeof(buf), "%u*%u", s.w, s.h);
	return json_string(buf);
}

/* {"model", "input": {"prompt", "negative_prompt"}, "parameters": {"size",
 * "n": 1, and every option but the plugin's own}}. */
static json_t *submit_body(const struct call *c, struct t2i_error *err)
{
	const struct t2i_request *req = c->req;
	const char *model = req->model[0] != '\0' ? req->model : phttp_str(c->opts, "model");
	json_t *input = json_object(), *params = json_object(), *size, *v;
	const char *key;
	int bad = 0;

	model = model != NULL ? model : DEFAULT_MODEL;
	bad |= phttp_put_str(input, "prompt", req->prompt);
	if (req->negative_prompt[0] != '\0')
		bad |= phttp_put_str(input, "negative_prompt", req->negative_prompt);
	json_object_foreach(c->opts, key, v) {
		int own = 0;
		for (const char *const *o = own_options; *o != NULL; o++)
			own |= strcmp(key, *o) == 0;
		if (!own)
			json_object_set(params, key, v);
	}
	if (json_object_get(params, "n") != NULL)
		phttp_log(c->host, T2I_LOG_WARNING, TAG ": option \"n\" is not sent: each image "
			 "is billed, so one is asked for");
	json_object_set_new(params, "n", json_integer(1));
	if (json_object_get(params, "size") == NULL &&
	    (size = pick_size(model, req->width, req->height)) != NULL)
		json_object_set_new(params, "size", size);
	json_t *body = json_object();
	bad |= phttp_put_str(body, "model", model);
	json_object_set_new(body, "input", input);
	json_object_set_new(body, "parameters", params);
	return bad ? phttp_bad_field(body, TAG, err) : body;
}

/* A task id as DashScope makes them, and safe in a URL path. */
static int valid_task_id(const char *id)
{
	size_t n = id != NULL ? strlen(id) : 0;

	if (n == 0 || n >= sizeof(((struct phttp_task *)0)->id))
		return 0;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* {"code", "message", "request_id"} with a real status. */
static int fail_answer(const struct phttp_resp *rs, const json_t *doc, const char *what,
		       struct t2i_error *err)
{
	const char *code = phttp_str(doc, "code"), *msg = phttp_str(doc, "message");

	if (code == NULL && msg == NULL)
		return phttp_fail_status(err, TAG, rs, NULL);
	phttp_fail_code(err, TAG, rs, codes, code, msg);
	if (what != NULL) {
		size_t n = strlen(err->message);
		snprintf(err->message + n, sizeof(err->message) - n, " (%s)", what);
	}
	return -1;
}

/* POSTs the task and commits its id before anything else happens. */
static int submit(struct call *c, struct t2i_error *err)
{
	static const char *const headers[] = {"X-DashScope-Async: enable", NULL};
	struct phttp_req rq;
	struct phttp_resp rs;
	json_t *body = submit_body(c, err), *doc;
	char *url = NULL;
	const char *id;
	int rc = -1;

	if (body == NULL)
		return -1;
	if ((url = phttp_endpoint(c->base, SUBMIT_PATH)) == NULL) {
		json_decref(body);
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
	}
	phttp_req_init(&rq, TAG, c->req);
	rq.url = url;
	rq.bearer = c->req->api_key;
	rq.headers = headers;
	if (phttp_post_body(&rq, body, &rs, err) == 0) {
		doc = phttp_parse_json(&rs, c->req->max_response_bytes);
		id = phttp_str(json_object_get(doc, "output"), "task_id");
		if (rs.status != 200)
			rc = fail_answer(&rs, doc, "submitting the task", err);
		else if (doc == NULL)
			rc = phttp_fail_malformed(err, TAG, &rs, "submit answer is not JSON");
		else if (!valid_task_id(id))
			rc = phttp_fail_malformed(err, TAG, &rs, "submit answer without a usable "
						 "output.task_id");
		else
			rc = 0;
		if (rc == 0) {
			snprintf(c->task.id, sizeof(c->task.id), "%s", id);
			c->task.submitted = (int64_t)time(NULL);
		}
		json_decref(doc);
	}
	phttp_resp_free(&rs);
	free(url);
	if (rc == 0) {
		phttp_log(c->host, T2I_LOG_INFO, TAG ": submitted task %s", c->task.id);
		/* Paid for now: polled even when the checkpoint failed (logged),
		 * since dropping it would waste it for sure. */
		phttp_checkpoint(c->host, TAG, json_pack("{s:s, s:I}", "task_id", c->task.id,
							"submitted", (json_int_t)c->task.submitted));
	}
	return rc;
}

/* ------------------------------------------------------------------ poll */

/* SUCCEEDED: every results[].url to the host.  Items with a code instead
 * are images DashScope withheld (moderation); a task without any image
 * ended as good as failed, and a new one may be submitted. */
static enum poll collect(struct call *c, const json_t *out, const struct phttp_resp *rs,
			 struct t2i_error *err)
{
	const json_t *results = json_object_get(out, "results"), *item, *withheld = NULL;
	size_t i, added = 0;

	json_array_foreach(results, i, item) {
		const char *url = phttp_str(item, "url");
		if (url != NULL && c->host->add_image(c->host->ctx, url, NULL, 0) == 0)
			added++;
		else if (url == NULL && phttp_str(item, "code") != NULL)
			withheld = item;
	}
	if (added > 0)
		return POLL_DONE;
	if (withheld != NULL)
		phttp_fail_code(err, TAG, NULL, codes, phttp_str(withheld, "code"),
				phttp_str(withheld, "message"));
	else if (json_is_array(results) && json_array_size(results) > 0)
		phttp_fail(err, T2I_ERR_TRANSIENT, rs->status, 0, TAG ": task %s: no image could be "
			  "stored", c->task.id);
	else {	/* ended without images: as good as failed */
		phttp_fail_malformed(err, TAG, rs, "SUCCEEDED task without output.results[].url");
		return POLL_GONE;
	}
	return POLL_FAIL;
}

/* What a task status means: WAIT, DONE, or GONE (submitting again may
 * help) with err saying why. */
static enum poll task_state(struct call *c, const json_t *out, const struct phttp_resp *rs,
			    struct t2i_error *err)
{
	const char *st = phttp_str(out, "task_status"), *id = c->task.id;

	if (st == NULL) {
		phttp_fail_malformed(err, TAG, rs, "poll answer without output.task_status");
		return POLL_FAIL;
	}
	if (strcmp(st, "PENDING") == 0 || strcmp(st, "RUNNING") == 0) {
		phttp_progress(c->host, -1, TAG ": task %s %s", id, st);
		return POLL_WAIT;
	}
	if (strcmp(st, "SUCCEEDED") == 0)
		return collect(c, out, rs, err);
	if (strcmp(st, "FAILED") == 0) {
		phttp_fail_code(err, TAG, NULL, codes, phttp_str(out, "code"),
				phttp_str(out, "message"));
		size_t n = strlen(err->message);
		snprintf(err->message + n, sizeof(err->message) - n, " (task %s FAILED)", id);
	} else if (strcmp(st, "CANCELED") == 0) {
		phttp_fail(err, T2I_ERR_TRANSIENT, rs->status, 0, TAG ": task %s was cancelled at "
			  "the provider", id);
	} else if (strcmp(st, "UNKNOWN") == 0) {
		phttp_fail(err, T2I_ERR_TRANSIENT, rs->status, 0, TAG ": task %s is unknown to "
			  "DashScope (task ids expire after 24 hours)", id);
	} else {
		phttp_fail(err, T2I_ERR_TRANSIENT, rs->status, 0, TAG ": task %s: unexpected "
			  "task_status \"%s\"", id, st);
		return POLL_FAIL;
	}
	return POLL_GONE;
}

/* A failed poll costs nothing and the task goes on: a few in a row are
 * waited out, then the attempt ends and the next one polls again. */
static enum poll poll_failed(struct call *c, struct t2i_error *err)
{
	if (err->error_class == T2I_ERR_AUTH || err->error_class == T2I_ERR_QUOTA ||
	    ++c->poll_failures >= POLL_FAILURES_MAX)
		return POLL_FAIL;
	phttp_log(c->host, T2I_LOG_WARNING, "%s (polling task %s; trying again)", err->message,
		 c->task.id);
	return POLL_WAIT;
}

static enum poll poll_once(struct call *c, struct t2i_error *err)
{
	struct phttp_req rq;
	struct phttp_resp rs;
	char *url = phttp_urlf(c->base, TASKS_PATH "%s", c->task.id);
	json_t *doc;
	enum poll p = POLL_FAIL;

	if (url == NULL) {
		phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
		return POLL_FAIL;
	}
	phttp_req_init(&rq, TAG, c->req);
	rq.url = url;
	rq.bearer = c->req->api_key;
	rq.timeout_s = phttp_task_left_s(&c->task);
	if (phttp_request(&rq, &rs, err) == 0) {
		doc = phttp_parse_json(&rs, c->req->max_response_bytes);
		if (rs.status != 200)
			fail_answer(&rs, doc, "polling the task", err);
		else if (doc == NULL)
			phttp_fail_malformed(err, TAG, &rs, "poll answer is not JSON");
		else if (!json_is_object(json_object_get(doc, "output")))
			phttp_fail_malformed(err, TAG, &rs, "poll answer without an output object");
		else
			p = task_state(c, json_object_get(doc, "output"), &rs, err);
		json_decref(doc);
	}
	phttp_resp_free(&rs);
	free(url);
	if (p == POLL_FAIL && err->error_class != T2I_ERR_REJECTED)
		p = poll_failed(c, err);
	else if (p != POLL_FAIL)
		c->poll_failures = 0;
	return p;
}

/* Polls until the task ends or the host says to stop. */
static int wait_task(struct call *c, struct t2i_error *err)
{
	for (;;) {
		int stop = phttp_task_wait(&c->task);
		enum poll p;

		if (stop != T2I_STOP_NONE)
			return phttp_task_stopped(&c->task, stop,
						  phttp_task_abandoned(stop) ? NO_CANCEL : NULL,
						  err);
		memset(err->message, 0, sizeof(err->message));
		if ((p = poll_once(c, err)) == POLL_DONE)
			return 0;
		if (p != POLL_WAIT)
			return -1;
	}
}

/* ---------------------------------------------------------------- resume */

/* The committed task of an earlier attempt: 1 when it is still running
 * (poll it), 0 when it is gone and a new one must be submitted, -1 when
 * the attempt is over (its images added, or err filled). */
static int resume(struct call *c, struct t2i_error *err)
{
	json_t *state = json_loads(phttp_resume_json(c->req), 0, NULL);
	const char *id = phttp_str(state, "task_id");
	json_t *sub = json_object_get(state, "submitted");
	enum poll p;

	if (!valid_task_id(id)) {
		if (phttp_resume_json(c->req)[0] != '\0')
			phttp_log(c->host, T2I_LOG_WARNING, TAG ": the committed state has no usable "
				 "task_id; submitting a new task");
		json_decref(state);
		return 0;
	}
	snprintf(c->task.id, sizeof(c->task.id), "%s", id);
	if (json_is_integer(sub))
		c->task.submitted = json_integer_value(sub);
	json_decref(state);
	phttp_log(c->host, T2I_LOG_INFO, TAG ": polling task %s of an earlier attempt",
		 c->task.id);
	p = poll_once(c, err);
	if (p == POLL_GONE) {
		phttp_log(c->host, T2I_LOG_WARNING, "%s; submitting a new task", err->message);
		c->task.submitted = (int64_t)time(NULL);
		return 0;
	}
	return p == POLL_WAIT ? 1 : p == POLL_DONE ? -2 : -1;
}

/* ------------------------------------------------------------- the call */

/* api_url is the region's base URL (https://dashscope.aliyuncs.com); a URL
 * of one of its endpoints is cut back to it. */
static char *base_url(const char *api_url)
{
	const char *api = strstr(api_url, "/api/v1");
	size_t n = api != NULL ? (size_t)(api - api_url) : strlen(api_url);
	char *s;

	while (n > 0 && api_url[n - 1] == '/')
		n--;
	if ((s = malloc(n + 1)) != NULL) {
		memcpy(s, api_url, n);
		s[n] = '\0';
	}
	return s;
}

static int setup(struct call *c, const struct t2i_request *req, const struct t2i_host *host,
		 struct t2i_error *err)
{
	memset(c, 0, sizeof(*c));
	c->req = req;
	c->host = host;
	if (!phttp_host_v2(host))
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": this host cannot checkpoint "
				 "a task (plugin ABI version 1): a task it could not resume after "
				 "a crash or a timeout would be paid twice, so none is submitted");
	if (req->api_url[0] == '\0')
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": no api_url configured");
	if ((c->opts = json_object()) == NULL || (c->base = base_url(req->api_url)) == NULL)
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
	if (phttp_merge_options(c->opts, req->options_json, NULL, TAG, host, err) != 0)
		return -1;
	return phttp_task_init(&c->task, TAG, req, host, c->opts, POLL_INTERVAL_S, MAX_WAIT_S,
			       err);
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	struct call c;
	int rc;

	if (phttp_check_abi(TAG, req, host, err) != 0)
		return -1;
	if ((rc = setup(&c, req, host, err)) == 0 && (rc = resume(&c, err)) == 0)
		rc = submit(&c, err);
	if (rc >= 0)
		rc = wait_task(&c, err);
	else if (rc == -2)
		rc = 0;		/* the earlier attempt's task had finished */
	json_decref(c.opts);
	free(c.base);
	if (rc != 0)
		phttp_scrub(err, req->api_key);
	return rc;
}
