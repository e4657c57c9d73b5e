/* api_run: runs and their event streams. */
#include "api_run.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "http_page.h"
#include "service.h"
#include "sse.h"
#include "store.h"
#include "urlsig.h"

#define RUNS_PAGE 50
#define EVENTS_PAGE 100

struct run_body {
	json_t *ids;		/* storyboard_ids, or NULL for all */
	bool no_cache;
	bool only_missing;	/* those without a completed image (as `retry`) */
};

static int
check_ids(json_t *v, char *err, size_t errlen)
{
	size_t i;
	json_t *id;

	if (!json_is_array(v)) {
		snprintf(err, errlen, "storyboard_ids: must be an array of storyboard ids");
		return -1;
	}
	json_array_foreach(v, i, id) {
		if (!json_is_string(id)) {
			snprintf(err, errlen, "storyboard_ids[%zu]: must be a string", i);
			return -1;
		}
	}
	return 0;
}

static int
check_bool(const char *key, json_t *v, bool *out, char *err, size_t errlen)
{
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "%s: must be true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

static int
check_member(const char *key, json_t *v, struct run_body *b, char *err, size_t errlen)
{
	if (json_is_null(v))
		return 0;	/* null counts as absent, as in project files */
	if (strcmp(key, "storyboard_ids") == 0) {
		if (check_ids(v, err, errlen) < 0)
			return -1;
		b->ids = json_incref(v);
		return 0;
	}
	if (strcmp(key, "no_cache") == 0)
		return check_bool(key, v, &b->no_cache, err, errlen);
	if (strcmp(key, "only_missing") == 0)
		return check_bool(key, v, &b->only_missing, err, errlen);
	snprintf(err, errlen,
		 "unknown member '%.64s' (known: storyboard_ids, no_cache, only_missing)", key);
	return -1;
}

/* The optional body {"storyboard_ids": [...], "no_cache": false,
 * "only_missing": false}. */
static int
parse_run_body(struct http_req *rq, struct run_body *b, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o, *v;
	const char *key;
	int rc = 0;

	*b = (struct run_body){ NULL, false, false };
	if (api_req_blank(rq))
		return 0;
	if ((o = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", je.line, je.column,
			 je.text);
		return -1;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen, "the body must be a JSON object");
		rc = -1;
	}
	json_object_foreach(o, key, v) {
		if (rc == 0 && check_member(key, v, b, err, errlen) < 0)
			rc = -1;
	}
	json_decref(o);
	if (rc < 0) {
		json_decref(b->ids);
		b->ids = NULL;
	}
	return rc;
}

static enum MHD_Result
reply_stream(struct http_req *rq, const char *run_id, const char *project_id, int64_t after)
{
	struct MHD_Response *resp =
		sse_response(service_sse(api_req_service(rq)), rq->conn, run_id, project_id, after,
			     (struct sse_client **)&rq->stream);

	return http_reply_stream(rq, resp);
}

static bool
wants_stream(struct http_req *rq)
{
	const char *accept = http_header(rq, MHD_HTTP_HEADER_ACCEPT);

	return accept != NULL && strcasestr(accept, "text/event-stream") != NULL;
}

/* Asks for JSON and not for a stream: the events route then answers a page
 * of the stored events (EventSource, curl and fetch() send text/event-stream
 * or * / *, and get the stream as before). */
static bool
wants_json(struct http_req *rq)
{
	const char *accept = http_header(rq, MHD_HTTP_HEADER_ACCEPT);

	return accept != NULL && strcasestr(accept, "application/json") != NULL &&
	       !wants_stream(rq);
}

/* A page of events: each the event as it was emitted, its image URLs
 * signed now (as a stream's replay signs them). */
static json_t *
fetch_events(void *arg, const char *after, int limit, char next[HTTP_PAGE_CURSOR_MAX],
	     bool *bad_cursor)
{
	struct api_list *l = arg;
	json_t *rows = store_page_events(service_store(l->sv), l->id, after, limit, next,
					 bad_cursor), *out, *row;
	size_t i;

	if (rows == NULL)
		return NULL;
	out = json_array();
	json_array_foreach(rows, i, row) {
		const char *type = json_string_value(json_object_get(row, "type"));
		const char *body = json_string_value(json_object_get(row, "body"));
		char *signed_body = body != NULL ? urlsig_event(service_urlsig(l->sv), type, body,
								(int64_t)time(NULL)) : NULL;
		json_t *ev = json_loads(signed_body != NULL ? signed_body : body != NULL ? body : "",
					JSON_DECODE_ANY, NULL);

		free(signed_body);
		json_array_append_new(out, ev != NULL ? ev : json_null());
	}
	json_decref(rows);
	return out;
}

static enum MHD_Result
events_page(struct http_req *rq, const char *run_id)
{
	static const struct http_page how = { .fetch = fetch_events };

	/* The token may ride in the URL for EventSource only. */
	if (rq->query_token)
		return http_reply_error(rq, MHD_HTTP_UNAUTHORIZED,
					"token in the wrong place: ?access_token= is taken by the"
					" event streams only; send Authorization: Bearer TOKEN");
	memcpy(rq->id, run_id, sizeof(rq->id));
	return api_req_page(rq, json_pack("{ss}", "run_id", run_id), "events", EVENTS_PAGE,
			    API_PAGE_MAX, &how);
}

enum MHD_Result
api_run_start(struct http_req *rq)
{
	char run_id[37], err[512];
	struct run_body b;
	bool queued = false;
	int status;

	if (parse_run_body(rq, &b, err, sizeof(err)) < 0)
		return http_reply_error(rq, MHD_HTTP_BAD_REQUEST, "%s", err);
	status = service_start(api_req_service(rq), rq->id, b.ids, b.no_cache, b.only_missing,
			       run_id, &queued, err, sizeof(err));
	json_decref(b.ids);
	if (status != MHD_HTTP_ACCEPTED)
		return http_reply_error(rq, (unsigned)status, "%s", err);
	/* The original Django view answered with the run's stream. */
	if (wants_stream(rq))
		return reply_stream(rq, run_id, rq->id, 0);
	return http_reply_json(rq, MHD_HTTP_ACCEPTED,
			       json_pack("{ss ss ss}", "run_id", run_id, "project_id", rq->id,
					 "status", queued ? "queued" : "processing"));
}

/* Last-Event-ID: the seq of the last event the client has; -1 when bad. */
static int64_t
last_event_id(struct http_req *rq)
{
	const char *v = http_header(rq, MHD_HTTP_HEADER_LAST_EVENT_ID);
	char *end;
	long long seq;

	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	seq = strtoll(v, &end, 10);
	/* Bounded so that the cursor (seq + 1) cannot overflow. */
	if (!isdigit((unsigned char)*v) || *end != '\0' || errno != 0 || seq > INT64_MAX / 2)
		return -1;
	return seq;
}

/* The client has every event of a run that is over: `done`, or the last
 * event of a run that ended without one (interrupted) and is not going on
 * anywhere. */
static bool
has_it_all(struct http_req *rq, json_t *run, int64_t after, int64_t done_seq)
{
	const char *status = json_string_value(json_object_get(run, "status"));

	if (after <= 0)
		return false;
	if (done_seq > 0)
		return after >= done_seq;
	return status != NULL && strcmp(status, "processing") != 0 &&
	       !service_run_live(api_req_service(rq),
				 json_string_value(json_object_get(run, "id"))) &&
	       after >= json_integer_value(json_object_get(run, "last_seq"));
}

/* The stream of a run from after Last-Event-ID.  A reconnect of a client
 * that has it all is told 204, which per the WHATWG spec stops an
 * EventSource from reconnecting: without it the browser comes back every
 * retry interval, for ever, to an empty stream. */
static enum MHD_Result
stream_run(struct http_req *rq, json_t *run)
{
	const char *run_id = json_string_value(json_object_get(run, "id"));
	const char *project_id = json_string_value(json_object_get(run, "project_id"));
	int64_t after = last_event_id(rq), done_seq;
	enum MHD_Result r;

	if (wants_json(rq) && run_id != NULL) {
		char id[37];

		snprintf(id, sizeof(id), "%s", run_id);
		json_decref(run);
		return events_page(rq, id);
	}
	if (after < 0)
		r = http_reply_error(rq, MHD_HTTP_BAD_REQUEST,
				     "Last-Event-ID: expected the seq of an event");
	else if ((done_seq = store_run_done_seq(api_req_store(rq), run_id)) < 0)
		r = http_reply_json(rq, 500, NULL);
	else if (has_it_all(rq, run, after, done_seq))
		r = http_reply_empty(rq, MHD_HTTP_NO_CONTENT);
	else
		r = reply_stream(rq, run_id, project_id, after);
	json_decref(run);
	return r;
}

enum MHD_Result
api_run_latest_events(struct http_req *rq)
{
	struct store *st = api_req_store(rq);
	char run_id[37];
	json_t *run;
	int rc;

	if (!store_project_exists(st, rq->id))
		return api_req_no_project(rq);
	if ((rc = store_run_latest(st, rq->id, run_id)) < 0)
		return http_reply_json(rq, 500, NULL);
	if (rc == 0)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "project %s has no run", rq->id);
	if ((run = store_query_run_view(st, run_id)) == NULL)
		return http_reply_json(rq, 500, NULL);
	return stream_run(rq, run);
}

enum MHD_Result
api_run_events(struct http_req *rq)
{
	json_t *run = store_query_run_view(api_req_store(rq), rq->id);

	if (run == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "run %s not found", rq->id);
	return stream_run(rq, run);
}

enum MHD_Result
api_run_cancel(struct http_req *rq)
{
	char run_id[37], err[512];
	int status;

	if (!api_req_no_arguments(rq, err, sizeof(err)))
		return http_reply_error(rq, MHD_HTTP_BAD_REQUEST, "%s", err);
	status = service_cancel(api_req_service(rq), rq->id, run_id, err, sizeof(err));
	if (status != MHD_HTTP_ACCEPTED)
		return http_reply_error(rq, (unsigned)status, "%s", err);
	return http_reply_json(rq, MHD_HTTP_ACCEPTED,
			       json_pack("{ss ss}", "run_id", run_id, "status", "cancelling"));
}

static json_t *
fetch_runs(void *arg, const char *after, int limit, char next[HTTP_PAGE_CURSOR_MAX],
	   bool *bad_cursor)
{
	struct api_list *l = arg;

	return store_page_runs(service_store(l->sv), l->id, after, limit, next, bad_cursor);
}

enum MHD_Result
api_run_list(struct http_req *rq)
{
	static const struct http_page how = { .fetch = fetch_runs };

	if (!store_project_exists(api_req_store(rq), rq->id))
		return api_req_no_project(rq);
	return api_req_page(rq, json_pack("{ss}", "project_id", rq->id), "runs", RUNS_PAGE,
			    API_PAGE_MAX, &how);
}

enum MHD_Result
api_run_get(struct http_req *rq)
{
	json_t *run = store_query_run_view(api_req_store(rq), rq->id);

	if (run == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "run %s not found", rq->id);
	return http_reply_json(rq, MHD_HTTP_OK, run);
}
