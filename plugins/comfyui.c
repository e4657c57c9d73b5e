/*
 * comfyui: a self-hosted ComfyUI server running a workflow the provider's
 * options name, exported in ComfyUI's API format.  Wire facts are in
 * doc/providers.md; what shapes this file:
 *   - the prompt, negative prompt, width, height and seed go where the
 *     options say, by node-input paths ("6.inputs.text") or by placeholders
 *     (%prompt%, %negative_prompt%, %width%, %height%, %seed%) anywhere in
 *     the workflow;
 *   - the seed is the storyboard's own (from its id) unless its options
 *     give one, so that a storyboard redone looks like itself;
 *   - ComfyUI queues a prompt and runs it later.  The prompt_id is the
 *     host's idempotency key, so an attempt after a crash or a timeout finds
 *     its prompt in /history or /queue instead of queueing it again;
 *   - a prompt that failed validation is refused with ComfyUI's own words,
 *     also when it answers HTTP 200 with node_errors;
 *   - images come as files, fetched through /view.
 * A host of ABI version 1 has no idempotency key and no checkpoints: the
 * plugin then runs without resume, which costs GPU time on a retry but no
 * money.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <nettle/sha2.h>

#include "phttp_task.h"
#include "t2istage/plugin.h"

T2I_PLUGIN("comfyui", "1.0", "ComfyUI workflows (API format) on a self-hosted server");

#define TAG "comfyui"
#define POLL_INTERVAL_S 1.0	/* a server of our own: polling is cheap */
#define MAX_WAIT_S 3600.0	/* a shared server's queue can be long */
#define WORKFLOW_MAX (16u << 20)
#define ID_MAX 64

/* The five things a workflow receives, in options.inputs and as %name%. */
enum slot { S_PROMPT, S_NEGATIVE, S_WIDTH, S_HEIGHT, S_SEED, S_COUNT };
static const char *const slot_names[S_COUNT] = {"prompt", "negative_prompt", "width",
						"height", "seed"};

/* A workflow with the places of its inputs found. */
struct workflow {
	json_t *graph;			/* node id -> {class_type, inputs} */
	json_t *at[S_COUNT];		/* the object holding each mapped input, borrowed */
	const char *key[S_COUNT];	/* and the input's name in it */
	int has_placeholder[S_COUNT];
	const char *output_node;	/* NULL: every node's output images */
};

/* One call. */
struct call {
	const struct t2i_request *req;
	const struct t2i_host *host;
	json_t *opts;
	char *base;
	const char *headers[2];
	char auth[512];
	struct workflow wf;
	struct phttp_task task;
};

/* ------------------------------------------------------------- options */

static int opt_fail(struct t2i_error *err, const char *fmt, const char *a, const char *b)
{
	return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, fmt, a, b);
}

/* Loads options.workflow: an absolute path to a JSON object of nodes. */
static json_t *load_graph(const json_t *opts, struct t2i_error *err)
{
	const char *path = json_string_value(json_object_get(opts, "workflow"));
	json_error_t je;
	json_t *g;

	if (path == NULL || path[0] == '\0') {
		opt_fail(err, TAG ": options.workflow: missing%s%s (the path of a workflow "
			 "exported in API format)", "", "");
		return NULL;
	}
	if (path[0] != '/') {
		opt_fail(err, TAG ": options.workflow: %s: not an absolute path%s", path, "");
		return NULL;
	}
	if ((g = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		if (je.line > 0)	/* else jansson's text names the path and errno */
			phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": options.workflow: %s:%d:%d: "
				  "not JSON: %s", path, je.line, je.column, je.text);
		else
			opt_fail(err, TAG ": options.workflow: %s%s", je.text, "");
		return NULL;
	}
	if (!json_is_object(g) || json_object_size(g) == 0 ||
	    json_is_array(json_object_get(g, "nodes"))) {
		opt_fail(err, TAG ": options.workflow: %s: not a workflow in API format%s (export it "
			 "with \"Export (API)\", not \"Save\")", path,
			 json_is_array(json_object_get(g, "nodes")) ? ": it is the UI format" : "");
		json_decref(g);
		return NULL;
	}
	return g;
}

/* Every node must be {"class_type": "...", "inputs": {...}}. */
static int check_nodes(const json_t *g, const char *path, struct t2i_error *err)
{
	const char *id;
	json_t *node;

	json_object_foreach((json_t *)g, id, node) {
		if (!json_is_string(json_object_get(node, "class_type")) ||
		    !json_is_object(json_object_get(node, "inputs"))) {
			phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": options.workflow: %s: node "
				  "\"%s\" has no class_type and inputs: not the API format", path,
				  id);
			return -1;
		}
	}
	return 0;
}

/* Resolves "6.inputs.text": the object that holds the input, and its name.
 * The input must exist and hold a value, not a link to another node. */
static int resolve(struct workflow *wf, enum slot s, const char *spec, struct t2i_error *err)
{
	char buf[256], *dot, *name;
	json_t *obj, *node;

	if (strlen(spec) >= sizeof(buf) || (dot = strchr(spec, '.')) == NULL)
		return opt_fail(err, TAG ": options.inputs.%s: \"%s\" is not a node input path "
				"such as \"6.inputs.text\"", slot_names[s], spec);
	memcpy(buf, spec, strlen(spec) + 1);
	buf[dot - spec] = '\0';
	if ((node = json_object_get(wf->graph, buf)) == NULL)
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": options.inputs.%s: \"%s\": "
				 "the workflow has no node \"%s\"", slot_names[s], spec, buf);
	obj = node;
	name = buf + (dot - spec) + 1;
	for (char *next; (next = strchr(name, '.')) != NULL; name = next + 1) {
		*next = '\0';
		obj = json_object_get(obj, name);
		if (!json_is_object(obj))
			break;
	}
	json_t *v = json_is_object(obj) ? json_object_get(obj, name) : NULL;
	const char *cls = json_string_value(json_object_get(node, "class_type"));
	if (v == NULL || json_is_object(v) || json_is_array(v))
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": options.inputs.%s: \"%s\": "
				 "node \"%.*s\" (%s) has no such input%s", slot_names[s], spec,
				 (int)(dot - spec), spec, cls != NULL ? cls : "no class_type",
				 json_is_array(v) ? " value (it is a link to another node)" : "");
	wf->at[s] = obj;
	wf->key[s] = spec + (name - buf);
	return 0;
}

/* Notes which %name% placeholders appear in any string of v. */
static void find_placeholders(const json_t *v, struct workflow *wf)
{
	const char *k;
	json_t *x;
	size_t i;
	char mark[32];

	if (json_is_string(v)) {
		for (int s = 0; s < S_COUNT; s++) {
			snprintf(mark, sizeof(mark), "%%%s%%", slot_names[s]);
			wf->has_placeholder[s] |= strstr(json_string_value(v), mark) != NULL;
		}
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x)
			find_placeholders(x, wf);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			find_placeholders(x, wf);
	}
}

/* options.inputs: an object of slot name -> node input path. */
static int map_inputs(struct workflow *wf, const json_t *opts, struct t2i_error *err)
{
	const json_t *inputs = json_object_get(opts, "inputs"), *v;
	const char *k;

	if (inputs != NULL && !json_is_object(inputs))
		return opt_fail(err, TAG ": options.inputs: not a group of node input paths%s%s",
				"", "");
	json_object_foreach((json_t *)inputs, k, v) {
		int s = 0;
		while (s < S_COUNT && strcmp(k, slot_names[s]) != 0)
			s++;
		if (s == S_COUNT)
			return opt_fail(err, TAG ": options.inputs.%s: unknown (%s)", k, "prompt, "
					"negative_prompt, width, height or seed");
		if (!json_is_string(v))
			return opt_fail(err, TAG ": options.inputs.%s: not a string%s", k, "");
		if (resolve(wf, (enum slot)s, json_string_value(v), err) != 0)
			return -1;
	}
	return 0;
}

static int check_scalars(const json_t *opts, const struct workflow *wf, struct t2i_error *err)
{
	const json_t *seed = json_object_get(opts, "seed"), *out, *hdr;

	if (seed != NULL && !(json_is_integer(seed) && json_integer_value(seed) >= 0))
		return opt_fail(err, TAG ": options.seed: not an integer of 0 or more%s%s", "", "");
	if ((out = json_object_get(opts, "output_node")) != NULL &&
	    (!json_is_string(out) || json_object_get(wf->graph, json_string_value(out)) == NULL))
		return opt_fail(err, TAG ": options.output_node: %s%s", json_is_string(out)
				? "the workflow has no such node" : "not a node id", "");
	if ((hdr = json_object_get(opts, "auth_header")) != NULL &&
	    (!json_is_string(hdr) || json_string_length(hdr) == 0 ||
	     strpbrk(json_string_value(hdr), ": \t\r\n") != NULL))
		return opt_fail(err, TAG ": options.auth_header: not a header name%s%s", "", "");
	return 0;
}

/* Everything the options say about the workflow, checked. */
static int workflow_load(struct workflow *wf, const json_t *opts, struct t2i_error *err)
{
	const char *path = json_string_value(json_object_get(opts, "workflow"));

	memset(wf, 0, sizeof(*wf));
	if ((wf->graph = load_graph(opts, err)) == NULL || check_nodes(wf->graph, path, err) != 0 ||
	    map_inputs(wf, opts, err) != 0 || check_scalars(opts, wf, err) != 0)
		return -1;
	find_placeholders(wf->graph, wf);
	if (wf->at[S_PROMPT] == NULL && !wf->has_placeholder[S_PROMPT])
		return opt_fail(err, TAG ": options.workflow: %s: no place for the prompt: set "
				"options.inputs.prompt (such as \"6.inputs.text\") or put %s in the "
				"workflow", path, "%prompt%");
	wf->output_node = json_string_value(json_object_get(opts, "output_node"));
	return 0;
}

static json_t *parse_options(const char *options_json, struct t2i_error *err)
{
	json_t *opts = json_object();

	if (opts == NULL) {
		phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
		return NULL;
	}
	if (phttp_merge_options(opts, options_json, NULL, TAG, NULL, err) != 0) {
		json_decref(opts);
		return NULL;
	}
	return opts;
}

int t2i_check_options(const struct t2i_request *req, struct t2i_error *err)
{
	struct phttp_task t;
	struct workflow wf;
	json_t *opts = parse_options(req->options_json, err);
	int rc = -1;

	if (opts != NULL && workflow_load(&wf, opts, err) == 0 &&
	    phttp_task_init(&t, TAG, req, NULL, opts, POLL_INTERVAL_S, MAX_WAIT_S, err) == 0)
		rc = 0;
	if (opts != NULL)
		json_decref(wf.graph);
	json_decref(opts);
	return rc;
}

/* ------------------------------------------------------ the prompt sent */

/* The storyboard's own seed: 48 bits of SHA-256 of its id, exact in JSON
 * readers that hold numbers as doubles. */
static json_int_t storyboard_seed(const struct t2i_request *req)
{
	struct sha256_ctx h;
	uint8_t d[SHA256_DIGEST_SIZE];
	const char *id = req->storyboard_id[0] != '\0' ? req->storyboard_id : req->prompt;
	json_int_t seed = 0;

	sha256_init(&h);
	sha256_update(&h, strlen("t2istage seed "), (const uint8_t *)"t2istage seed ");
	sha256_update(&h, strlen(id), (const uint8_t *)id);
	sha256_digest(&h, sizeof(d), d);
	for (int i = 0; i < 6; i++)
		seed = seed << 8 | d[i];
	return seed;
}

/* The values of the five slots for this request: 0, or -1 when a text is
 * not valid UTF-8 (jansson refuses it). */
static int slot_values(const struct call *c, json_t *vals[S_COUNT])
{
	const json_t *seed = json_object_get(c->opts, "seed");

	vals[S_PROMPT] = json_string(c->req->prompt);
	vals[S_NEGATIVE] = json_string(c->req->negative_prompt);
	/* Stable Diffusion's latent space is a multiple of 8 pixels. */
	vals[S_WIDTH] = json_integer(c->req->width & ~7u);
	vals[S_HEIGHT] = json_integer(c->req->height & ~7u);
	vals[S_SEED] = json_is_integer(seed) ? json_copy((json_t *)seed)
					     : json_integer(storyboard_seed(c->req));
	for (int s = 0; s < S_COUNT; s++)
		if (vals[s] == NULL)
			return -1;
	return 0;
}

/* s with every %name% replaced; an exact "%width%" becomes the number. */
static json_t *substitute(const char *s, json_t *vals[S_COUNT])
{
	char *out = strdup(s), mark[32];

	for (int k = 0; k < S_COUNT && out != NULL; k++) {
		snprintf(mark, sizeof(mark), "%%%s%%", slot_names[k]);
		if (strcmp(out, mark) == 0) {
			free(out);
			return json_copy(vals[k]);
		}
		char text[32], *p;
		const char *v = json_is_string(vals[k]) ? json_string_value(vals[k]) : text;
		snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(vals[k]));
		while (out != NULL && (p = strstr(out, mark)) != NULL) {
			char *next;
			if (asprintf(&next, "%.*s%s%s", (int)(p - out), out, v, p + strlen(mark)) < 0)
				next = NULL;
			free(out);
			out = next;
		}
	}
	json_t *r = out != NULL ? json_string(out) : NULL;
	free(out);
	return r;
}

/* Replaces the placeholders in every string of v, in place. */
static void fill_placeholders(json_t *v, json_t *vals[S_COUNT])
{
	const char *k;
	json_t *x;
	size_t i;

	json_object_foreach(v, k, x) {
		if (json_is_string(x))
			json_object_set_new(v, k, substitute(json_string_value(x), vals));
		else
			fill_placeholders(x, vals);
	}
	json_array_foreach(v, i, x) {
		if (json_is_string(x))
			json_array_set_new(v, i, substitute(json_string_value(x), vals));
		else
			fill_placeholders(x, vals);
	}
}

/* Puts this storyboard's values into the workflow (loaded for this call). */
static int fill_workflow(struct call *c, struct t2i_error *err)
{
	json_t *vals[S_COUNT];
	struct workflow *wf = &c->wf;
	int rc = slot_values(c, vals), any = 0;

	for (int s = 0; rc == 0 && s < S_COUNT; s++) {
		if (wf->at[s] != NULL)
			json_object_set(wf->at[s], wf->key[s], vals[s]);
		any |= wf->has_placeholder[s];
	}
	if (rc == 0 && any)
		fill_placeholders(wf->graph, vals);
	for (int s = 0; s < S_COUNT; s++)
		json_decref(vals[s]);
	if (rc != 0)
		phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": the prompt is not valid UTF-8");
	return rc;
}

/* ----------------------------------------------------------------- HTTP */

static const char *or_unknown(const char *s)
{
	return s != NULL ? s : "?";
}

/* One request to the server; *doc is its JSON answer (NULL if none). */
static int call_json(struct call *c, const char *method, const char *url, json_t *body,
		     struct phttp_resp *rs, json_t **doc, struct t2i_error *err)
{
	struct phttp_req rq;
	int rc;

	phttp_req_init(&rq, TAG, c->req);
	rq.url = url;
	rq.method = method;
	rq.headers = c->headers[0] != NULL ? c->headers : NULL;
	if (c->auth[0] == '\0')
		rq.bearer = c->req->api_key;
	rq.timeout_s = phttp_task_left_s(&c->task);
	rc = body != NULL ? phttp_post_body(&rq, body, rs, err) : phttp_request(&rq, rs, err);
	*doc = rc == 0 ? phttp_parse_json(rs, c->req->max_response_bytes) : NULL;
	return rc;
}

/* GET base+path as a JSON object: 0 with *doc, or -1 with err filled. */
static int get_object(struct call *c, const char *path, json_t **doc, struct t2i_error *err)
{
	struct phttp_resp rs;
	char *url = phttp_urlf(c->base, "%s", path);
	int rc = -1;

	*doc = NULL;
	if (url == NULL)
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
	if (call_json(c, NULL, url, NULL, &rs, doc, err) == 0) {
		if (rs.status != 200)
			rc = phttp_fail_status(err, TAG, &rs, NULL);
		else if (!json_is_object(*doc))
			rc = phttp_fail_malformed(err, TAG, &rs, path);
		else
			rc = 0;
	}
	if (rc != 0) {
		json_decref(*doc);
		*doc = NULL;
	}
	phttp_resp_free(&rs);
	free(url);
	return rc;
}

/* "node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: ..." for
 * each node of node_errors, appended to buf. */
static void node_errors_text(const json_t *ne, char *buf, size_t n)
{
	const char *id;
	json_t *e;

	json_object_foreach((json_t *)ne, id, e) {
		const json_t *first = json_array_get(json_object_get(e, "errors"), 0);
		const char *msg = phttp_str(first, "message"), *det = phttp_str(first, "details");
		size_t o = strlen(buf);
		snprintf(buf + o, n - o, "; node %s (%s): %s%s%s", id,
			 or_unknown(json_string_value(json_object_get(e, "class_type"))),
			 msg ? msg : "invalid", det ? ": " : "", det ? det : "");
	}
}

/* ComfyUI's refusal of a prompt, in its own words. */
static int refused(const struct phttp_resp *rs, const json_t *doc, struct t2i_error *err)
{
	const json_t *e = json_object_get(doc, "error");
	char buf[T2I_ERROR_MESSAGE_MAX] = "";
	const char *msg = json_is_string(e) ? json_string_value(e) : phttp_str(e, "message");
	const char *det = phttp_str(e, "details");

	const json_t *ne = json_object_get(doc, "node_errors");

	snprintf(buf, sizeof(buf), "%s%s%s", msg ? msg : "prompt refused", det ? ": " : "",
		 det ? det : "");
	node_errors_text(ne, buf, sizeof(buf));
	if (rs->status >= 500 || rs->status == 429 || (msg == NULL && json_object_size(ne) == 0))
		return phttp_fail_status(err, TAG, rs, msg != NULL ? buf : NULL);
	return phttp_fail(err, T2I_ERR_REJECTED, rs->status, 0, TAG ": HTTP %ld: %s", rs->status,
			 buf);
}

/* ------------------------------------------------------------- a prompt */

static int valid_id(const char *id)
{
	size_t n = id != NULL ? strlen(id) : 0;

	return n > 0 && n < ID_MAX &&
	       strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == n;
}

/* A random lower-case UUID (version 4), for a host without idempotency keys
 * and for a prompt queued again after the first one failed. */
static int random_id(char out[ID_MAX])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
	snprintf(out, ID_MAX, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

/* Which list of /queue holds id: "running", "pending" or NULL.  Each item
 * is [number, prompt_id, prompt, extra_data, outputs_to_execute]. */
static const char *queue_state(const json_t *q, const char *id)
{
	static const char *const lists[] = {"queue_running", "queue_pending"};
	size_t i;
	json_t *item;

	for (int k = 0; k < 2; k++)
		json_array_foreach(json_object_get(q, lists[k]), i, item) {
			const char *pid = json_string_value(json_array_get(item, 1));
			if (pid != NULL && strcmp(pid, id) == 0)
				return k == 0 ? "running" : "pending";
		}
	return NULL;
}

enum where { W_DONE, W_QUEUED, W_GONE, W_FAIL };

/* history[id] when the server has it, else NULL. */
static enum where history(struct call *c, json_t **entry, struct t2i_error *err)
{
	char path[ID_MAX + 16];
	json_t *h;

	snprintf(path, sizeof(path), "/history/%s", c->task.id);
	if (get_object(c, path, &h, err) != 0)
		return W_FAIL;
	if ((*entry = json_object_get(h, c->task.id)) != NULL)
		json_incref(*entry);
	json_decref(h);
	return *entry != NULL ? W_DONE : W_GONE;
}

/* Where the prompt is.  /history is {} both while it waits and for an id
 * the server never saw; /queue tells them apart, and /history is asked
 * again in case the prompt finished between the two. */
static enum where locate(struct call *c, json_t **entry, const char **state,
			 struct t2i_error *err)
{
	enum where w;
	json_t *q;

	*state = NULL;
	if ((w = history(c, entry, err)) != W_GONE)
		return w;
	if (get_object(c, "/queue", &q, err) != 0)
		return W_FAIL;
	*state = queue_state(q, c->task.id);
	json_decref(q);
	return *state != NULL ? W_QUEUED : history(c, entry, err);
}

/* An execution_error or execution_interrupted message of a failed prompt. */
static int failed(struct call *c, const json_t *status, struct t2i_error *err)
{
	size_t i;
	json_t *m;

	json_array_foreach(json_object_get(status, "messages"), i, m) {
		const char *kind = json_string_value(json_array_get(m, 0));
		const json_t *d = json_array_get(m, 1);
		const char *et = phttp_str(d, "exception_type"), *em = phttp_str(d, "exception_message");
		if (kind != NULL && strcmp(kind, "execution_interrupted") == 0)
			return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": prompt %s was "
					 "interrupted at the server", c->task.id);
		if (kind == NULL || strcmp(kind, "execution_error") != 0)
			continue;
		/* Most failures are the workflow's own (a missing model, a bad
		 * value) and fail again; running out of GPU memory may not. */
		int oom = (et && strstr(et, "OutOfMemory")) || (em && strstr(em, "out of memory"));
		return phttp_fail(err, oom ? T2I_ERR_TRANSIENT : T2I_ERR_REJECTED, 0, 0,
				 TAG ": prompt %s failed in node %s (%s): %s: %s", c->task.id,
				 or_unknown(phttp_str(d, "node_id")), or_unknown(phttp_str(d, "node_type")),
				 et ? et : "error", em ? em : "(no message)");
	}
	return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": prompt %s failed at the server "
			 "without saying why", c->task.id);
}

/* One output image, fetched through /view and handed to the host. */
static int view(struct call *c, const json_t *img)
{
	const char *name = phttp_str(img, "filename"), *sub = json_string_value(json_object_get(
		img, "subfolder"));
	char *en = phttp_escape(name ? name : ""), *es = phttp_escape(sub ? sub : ""), *url = NULL;
	struct phttp_resp rs = {0};
	struct t2i_error e = {.abi_version = T2I_ABI_VERSION, .struct_size = sizeof(e)};
	json_t *doc;
	int rc = -1;

	if (name != NULL && en != NULL && es != NULL)
		url = phttp_urlf(c->base, "/view?filename=%s&subfolder=%s&type=output", en, es);
	if (url != NULL && call_json(c, NULL, url, NULL, &rs, &doc, &e) == 0) {
		json_decref(doc);
		if (rs.status == 200 && rs.len > 0)
			rc = c->host->add_image(c->host->ctx, url, rs.body, rs.len);
		else
			phttp_fail_status(&e, TAG, &rs, NULL);
	}
	if (rc != 0 && e.message[0] != '\0')
		phttp_log(c->host, T2I_LOG_WARNING, "%s (fetching %s)", e.message, name);
	phttp_resp_free(&rs);
	free(url);
	free(en);
	free(es);
	return rc;
}

/* A finished prompt: its output images (of options.output_node only, when
 * set), in node order; previews (type "temp") are not kept.  Returns 0,
 * FAILED_AT_SERVER when the history says the prompt failed, else -1. */
#define FAILED_AT_SERVER (-2)

static int finish(struct call *c, const json_t *entry, struct t2i_error *err)
{
	const json_t *status = json_object_get(entry, "status"), *out, *img;
	const char *node, *st = phttp_str(status, "status_str");
	size_t i, seen = 0, added = 0;

	if (st != NULL && strcmp(st, "error") == 0) {
		failed(c, status, err);
		return FAILED_AT_SERVER;
	}
	json_object_foreach(json_object_get(entry, "outputs"), node, out) {
		if (c->wf.output_node != NULL && strcmp(node, c->wf.output_node) != 0)
			continue;
		json_array_foreach(json_object_get(out, "images"), i, img) {
			const char *type = phttp_str(img, "type");
			if (type == NULL || strcmp(type, "output") != 0)
				continue;
			seen++;
			added += view(c, img) == 0;
		}
	}
	if (added > 0)
		return 0;
	if (seen > 0)
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": prompt %s: no image could "
				 "be stored", c->task.id);
	return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": prompt %s finished without an "
			 "output image (does the workflow end in a SaveImage node?)", c->task.id);
}

/* POST a JSON body to base+path; the status, or -1 when no answer came. */
static long post(struct call *c, const char *path, json_t *body, struct t2i_error *err)
{
	struct phttp_resp rs;
	char *url = phttp_urlf(c->base, "%s", path);
	json_t *doc = NULL;
	long status = -1;

	if (url != NULL && call_json(c, NULL, url, body, &rs, &doc, err) == 0)
		status = rs.status;
	else if (url == NULL)
		json_decref(body);
	json_decref(doc);
	phttp_resp_free(&rs);
	free(url);
	return status;
}

/* Asks the server to drop the prompt: the jobs API of v0.26 and later, else
 * a delete from the queue while it waits or an interrupt while it runs.
 * Returns what became of it, for the message. */
static const char *cancel(struct call *c)
{
	struct t2i_error e = {.abi_version = T2I_ABI_VERSION, .struct_size = sizeof(e)};
	char path[ID_MAX + 32];
	const char *state;
	json_t *q;
	long st;

	snprintf(path, sizeof(path), "/api/jobs/%s/cancel", c->task.id);
	if ((st = post(c, path, json_object(), &e)) >= 200 && st < 300)
		return "it was cancelled at the server";
	if (st != 404 && st != 405)
		return "the server did not cancel it";
	if (get_object(c, "/queue", &q, &e) != 0)
		return "the server could not be asked to cancel it";
	state = queue_state(q, c->task.id);
	json_decref(q);
	if (state == NULL)
		return "it had already left the server's queue";
	if (strcmp(state, "pending") == 0)
		st = post(c, "/queue", json_pack("{s:[s]}", "delete", c->task.id), &e);
	else
		st = post(c, "/interrupt", json_pack("{s:s}", "prompt_id", c->task.id), &e);
	return st >= 200 && st < 300 ? (strcmp(state, "pending") == 0
					? "it was removed from the server's queue"
					: "it was interrupted at the server")
	       : "the server did not cancel it";
}

/* Commits the prompt's id, on a host that keeps checkpoints. */
static void commit(struct call *c)
{
	if (phttp_host_v2(c->host))
		phttp_checkpoint(c->host, TAG, json_pack("{s:s, s:I}", "prompt_id", c->task.id,
							"submitted", (json_int_t)c->task.submitted));
}

/* Queues the workflow under c->task.id and commits the id. */
static int submit(struct call *c, struct t2i_error *err)
{
	struct phttp_resp rs;
	json_t *body, *doc, *ne;
	char *url = phttp_urlf(c->base, "/prompt");
	const char *id;
	int rc = -1;

	if (url == NULL || fill_workflow(c, err) != 0) {
		free(url);
		return url == NULL ? phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory")
				   : -1;
	}
	body = json_pack("{s:O, s:s, s:s}", "prompt", c->wf.graph, "client_id", "t2istage",
			 "prompt_id", c->task.id);
	if (call_json(c, NULL, url, body, &rs, &doc, err) == 0) {
		id = phttp_str(doc, "prompt_id");
		ne = json_object_get(doc, "node_errors");
		if (rs.status != 200)
			rc = refused(&rs, doc, err);
		else if (!valid_id(id))
			rc = phttp_fail_malformed(err, TAG, &rs, "answer to /prompt without a "
						 "usable prompt_id");
		else
			rc = 0;
		if (rc == 0 && strcmp(id, c->task.id) != 0) {
			/* A server before v0.25 picks its own id. */
			phttp_log(c->host, T2I_LOG_INFO, TAG ": the server named the prompt %s", id);
			snprintf(c->task.id, sizeof(c->task.id), "%s", id);
		}
		if (rc == 0 && json_object_size(ne) > 0) {
			/* Outputs that passed are queued anyway: not wanted now. */
			rc = refused(&rs, doc, err);
			phttp_log(c->host, T2I_LOG_INFO, TAG ": prompt %s: %s", c->task.id, cancel(c));
		}
		json_decref(doc);
	}
	phttp_resp_free(&rs);
	free(url);
	if (rc == 0) {
		c->task.submitted = (int64_t)time(NULL);
		commit(c);
	}
	return rc;
}

/* ------------------------------------------------------------- the call */

#define POLL_FAILURES_MAX 3	/* unanswered polls in a row before giving up */

/* A stop from the host: an abandoned prompt is cancelled at the server,
 * and the log says so (a cancelled run reports no error of its own). */
static int stopped(struct call *c, int stop, struct t2i_error *err)
{
	const char *note = NULL;

	if (phttp_task_abandoned(stop)) {
		note = cancel(c);
		phttp_log(c->host, T2I_LOG_INFO, TAG ": prompt %s given up: %s", c->task.id, note);
		if (phttp_host_v2(c->host))	/* no later attempt is to wait for it */
			phttp_checkpoint(c->host, TAG, json_object());
	}
	return phttp_task_stopped(&c->task, stop, note, err);
}

/* Polls until the prompt is in the history, or the host says to stop. */
static int wait_prompt(struct call *c, struct t2i_error *err)
{
	int failures = 0;

	for (;;) {
		int stop = phttp_task_wait(&c->task);
		const char *state;
		json_t *entry = NULL;
		enum where w;

		if (stop != T2I_STOP_NONE)
			return stopped(c, stop, err);
		if ((w = locate(c, &entry, &state, err)) == W_DONE) {
			int rc = finish(c, entry, err);
			json_decref(entry);
			return rc == 0 ? 0 : -1;
		}
		if (w == W_GONE)
			return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": prompt %s is neither "
					 "in the history nor in the queue of the server (did it "
					 "restart?); the next attempt queues it again", c->task.id);
		if (w == W_FAIL && ++failures >= POLL_FAILURES_MAX)
			return -1;
		if (w == W_FAIL)
			phttp_log(c->host, T2I_LOG_WARNING, "%s (polling prompt %s; trying again)",
				 err->message, c->task.id);
		else
			failures = 0;
		if (w == W_QUEUED)
			phttp_progress(c->host, -1, TAG ": prompt %s %s", c->task.id, state);
	}
}

/* The prompt this storyboard already has at the server, if any: the one
 * the last attempt committed, else the one named by the idempotency key
 * (queued by an attempt that died before its checkpoint).  Returns 1 to
 * wait for it, 0 when the attempt is over (images added), -1 on error. */
static int start(struct call *c, struct t2i_error *err)
{
	json_t *state = json_loads(phttp_resume_json(c->req), 0, NULL), *entry = NULL;
	const char *id = phttp_str(state, "prompt_id"), *qs;
	json_t *sub = json_object_get(state, "submitted");
	int committed = valid_id(id);
	enum where w = W_GONE;

	if (!committed)
		id = phttp_idempotency_key(c->req);
	if (json_is_integer(sub))
		c->task.submitted = json_integer_value(sub);
	if (valid_id(id)) {
		snprintf(c->task.id, sizeof(c->task.id), "%s", id);
		w = locate(c, &entry, &qs, err);
	} else if (random_id(c->task.id) != 0) {
		w = W_FAIL;
		phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": getrandom: %s", strerror(errno));
	}
	json_decref(state);
	if (w == W_QUEUED && !committed)	/* queued by an attempt that died before */
		commit(c);
	if (w == W_FAIL || w == W_QUEUED)
		return w == W_QUEUED ? 1 : -1;
	if (w == W_DONE) {
		int rc = finish(c, entry, err);
		json_decref(entry);
		if (rc != FAILED_AT_SERVER || err->error_class == T2I_ERR_REJECTED)
			return rc == 0 ? 0 : -1;
		/* It failed at the server: a new prompt, under a new id. */
		phttp_log(c->host, T2I_LOG_WARNING, "%s; queueing it again", err->message);
		if (random_id(c->task.id) != 0)
			return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": getrandom: %s",
					 strerror(errno));
	}
	return submit(c, err) == 0 ? 1 : -1;
}

/* The api key, when there is one, goes as options.auth_header (for a proxy
 * in front of the server) or as a bearer token. */
static void set_auth(struct call *c)
{
	const char *hdr = json_string_value(json_object_get(c->opts, "auth_header"));

	if (hdr != NULL && c->req->api_key[0] != '\0') {
		snprintf(c->auth, sizeof(c->auth), "%s: %s", hdr, c->req->api_key);
		c->headers[0] = c->auth;
	}
}

static int setup(struct call *c, const struct t2i_request *req, const struct t2i_host *host,
		 struct t2i_error *err)
{
	size_t n = strlen(req->api_url);

	memset(c, 0, sizeof(*c));
	c->req = req;
	c->host = host;
	if (n == 0)
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, TAG ": no api_url configured");
	while (n > 0 && req->api_url[n - 1] == '/')
		n--;
	if ((c->base = strndup(req->api_url, n)) == NULL)
		return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, TAG ": out of memory");
	if ((c->opts = parse_options(req->options_json, err)) == NULL ||
	    workflow_load(&c->wf, c->opts, err) != 0)
		return -1;
	set_auth(c);
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
	if ((rc = setup(&c, req, host, err)) == 0 && (rc = start(&c, err)) == 1)
		rc = wait_prompt(&c, err);
	json_decref(c.wf.graph);
	json_decref(c.opts);
	free(c.base);
	memset(c.auth, 0, sizeof(c.auth));
	if (rc != 0)
		phttp_scrub(err, req->api_key);
	return rc;
}
