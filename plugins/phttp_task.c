/*
 * phttp_task: what the plugins of asynchronous providers share around a
 * paid task (ABI version 2): the host's checkpoint, progress and sleep, and
 * the poll loop's wait with its stop reasons.  Compiled into each HTTP
 * plugin with phttp.c.
 */
#include "phttp_task.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/core/jsontext.h"

#define HOST_V2_NEEDS (offsetof(struct t2i_host, sleep) + sizeof(((struct t2i_host *)0)->sleep))
#define REQ_V2_NEEDS \
	(offsetof(struct t2i_request, idempotency_key) + sizeof(const char *))

int phttp_host_v2(const struct t2i_host *host)
{
	return host->abi_version >= 2 && host->struct_size >= HOST_V2_NEEDS &&
	       host->checkpoint != NULL && host->progress != NULL && host->sleep != NULL;
}

const char *phttp_resume_json(const struct t2i_request *req)
{
	return req->struct_size >= REQ_V2_NEEDS && req->resume_json != NULL ? req->resume_json : "";
}

const char *phttp_idempotency_key(const struct t2i_request *req)
{
	return req->struct_size >= REQ_V2_NEEDS && req->idempotency_key != NULL
	       ? req->idempotency_key : "";
}

int phttp_checkpoint(const struct t2i_host *host, const char *tag, json_t *state)
{
	char *text = state != NULL ? jsontext_dumps(state, JSON_COMPACT) : NULL;
	int rc = -1;

	json_decref(state);
	if (text != NULL && phttp_host_v2(host))
		rc = host->checkpoint(host->ctx, text);
	if (rc != 0)
		phttp_log(host, T2I_LOG_WARNING, "%s: the task could not be checkpointed: %s", tag,
			 text == NULL ? "out of memory" : !phttp_host_v2(host)
			 ? "the host has no checkpoints (ABI version 1)" : "the host refused it");
	free(text);
	return rc;
}

void phttp_progress(const struct t2i_host *host, double fraction, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (!phttp_host_v2(host))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	host->progress(host->ctx, fraction, buf);	/* the host cleans plugin text */
}

int64_t phttp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* opts[key] as seconds: def when absent, -1 when not a number > 0. */
static double seconds_option(const json_t *opts, const char *key, double def)
{
	const json_t *v = json_object_get(opts, key);

	if (v == NULL)
		return def;
	return json_is_number(v) && json_number_value(v) > 0 && json_number_value(v) < 1e7
	       ? json_number_value(v) : -1;
}

int phttp_task_init(struct phttp_task *t, const char *tag, const struct t2i_request *req,
		   const struct t2i_host *host, const json_t *opts, double default_interval_s,
		   double default_max_wait_s, struct t2i_error *err)
{
	double interval = seconds_option(opts, "poll_interval", default_interval_s);
	double max_wait = seconds_option(opts, "max_wait", default_max_wait_s);

	memset(t, 0, sizeof(*t));
	t->tag = tag;
	t->req = req;
	t->host = host;
	t->start_ms = phttp_now_ms();
	t->submitted = (int64_t)time(NULL);
	if (interval < 0 || max_wait < 0)
		return phttp_fail(err, T2I_ERR_REJECTED, 0, 0, "%s: options.%s must be a number of "
				 "seconds above 0", tag, interval < 0 ? "poll_interval" : "max_wait");
	/* Up to 1e7 s is taken, more than a uint32_t of milliseconds holds
	 * (49 days): converting a double out of range is undefined. */
	t->interval_ms = interval * 1000 < 1		 ? 1
			 : interval * 1000 >= UINT32_MAX ? UINT32_MAX
							 : (uint32_t)(interval * 1000);
	t->max_wait_s = max_wait;
	return 0;
}

static int64_t budget_left_ms(const struct phttp_task *t)
{
	return (int64_t)(t->req->timeout_s * 1000) - (phttp_now_ms() - t->start_ms);
}

double phttp_task_left_s(const struct phttp_task *t)
{
	int64_t ms = t->req->timeout_s > 0 ? budget_left_ms(t) : 0;

	return ms > 1000 ? (double)ms / 1000 : 1.0;
}

/* A version 1 host has no sleep of its own: nanosleep, which the supervisor
 * can still end by killing the worker. */
static int plain_sleep(uint32_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0)
		;
	return T2I_STOP_NONE;
}

int phttp_task_wait(struct phttp_task *t)
{
	uint32_t ms = t->interval_ms;

	if (t->max_wait_s > 0 && (double)((int64_t)time(NULL) - t->submitted) >= t->max_wait_s)
		return PHTTP_STOP_MAX_WAIT;
	if (phttp_host_v2(t->host))
		return t->host->sleep(t->host->ctx, ms);
	if (t->req->timeout_s > 0) {
		int64_t left = budget_left_ms(t);
		if (left <= 0)
			return PHTTP_STOP_OUT_OF_TIME;
		if (left < (int64_t)ms)
			ms = (uint32_t)left;
	}
	return plain_sleep(ms);
}

int phttp_task_abandoned(int stop)
{
	return stop == T2I_STOP_CANCELLED || stop == T2I_STOP_DEADLINE ||
	       stop == PHTTP_STOP_MAX_WAIT;
}

int phttp_task_stopped(const struct phttp_task *t, int stop, const char *note,
		      struct t2i_error *err)
{
	const char *why = "the host said to stop", *then;
	char buf[96];

	if (stop == T2I_STOP_CANCELLED)
		why = "the run was cancelled";
	else if (stop == T2I_STOP_BUDGET)
		why = "a spending budget is reached";
	else if (stop == T2I_STOP_SHUTDOWN)
		why = "the service is stopping";
	else if (stop == PHTTP_STOP_MAX_WAIT)
		why = buf, snprintf(buf, sizeof(buf), "it waited options.max_wait (%g s) since it "
				    "was submitted", t->max_wait_s);
	else if (stop == T2I_STOP_DEADLINE)
		why = buf, snprintf(buf, sizeof(buf), "the image's time budget (%g s) is used up on "
				    "its last attempt", t->req->timeout_s);
	else if (stop == PHTTP_STOP_OUT_OF_TIME)
		why = buf, snprintf(buf, sizeof(buf), "this attempt's time budget (%g s) is used up",
				    t->req->timeout_s);
	if (phttp_task_abandoned(stop))
		then = note != NULL ? note : "it was not cancelled";
	else if (phttp_host_v2(t->host))
		then = "it continues at the provider, and the next attempt polls it instead of "
		       "submitting again";
	else
		then = "this host cannot resume a task: the next attempt submits it again";
	return phttp_fail(err, T2I_ERR_TRANSIENT, 0, 0, "%s: task %s not finished: %s; %s", t->tag,
			 t->id, why, then);
}
