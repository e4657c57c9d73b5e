/*
 * phttp_task: the pieces of ABI version 2 that the plugins of asynchronous
 * providers (dashscope, comfyui) share: a provider accepts a paid task, the
 * plugin checkpoints it, then polls it through host->sleep until it ends or
 * the host says to stop.
 */
#ifndef T2I_PLUGIN_PHTTP_TASK_H
#define T2I_PLUGIN_PHTTP_TASK_H

#include "phttp.h"

/* Whether the host serves checkpoint, progress and sleep (ABI version 2;
 * a version 1 host's struct ends before them). */
PHTTP_HIDDEN int phttp_host_v2(const struct t2i_host *host);

/* req->resume_json and req->idempotency_key, or "" from an older host. */
PHTTP_HIDDEN const char *phttp_resume_json(const struct t2i_request *req);
PHTTP_HIDDEN const char *phttp_idempotency_key(const struct t2i_request *req);

/* Commits state (whose reference this takes) through host->checkpoint:
 * 0 once committed, -1 (logged) when the host has no checkpoints or refused. */
PHTTP_HIDDEN int phttp_checkpoint(const struct t2i_host *host, const char *tag, json_t *state);

/* host->progress, when the host has it. */
PHTTP_HIDDEN void phttp_progress(const struct t2i_host *host, double fraction, const char *fmt,
			       ...) __attribute__((format(printf, 3, 4)));

PHTTP_HIDDEN int64_t phttp_now_ms(void);	/* CLOCK_MONOTONIC */

/* A submitted (paid) task being polled. */
struct phttp_task {
	const char *tag;
	const struct t2i_request *req;
	const struct t2i_host *host;
	char id[128];			/* the provider's task id */
	int64_t start_ms;		/* phttp_now_ms() when generate_image() began */
	int64_t submitted;		/* unix seconds of the submission */
	uint32_t interval_ms;		/* between polls */
	double max_wait_s;		/* since the submission, over all attempts; 0: none */
};

/* Also returned by phttp_task_wait(): the task waited max_wait_s since it
 * was submitted; and, on a version 1 host only, which cannot say whether
 * another attempt follows, this call's time budget is used up. */
#define PHTTP_STOP_MAX_WAIT 100
#define PHTTP_STOP_OUT_OF_TIME 101

/* Sets t up from the request, the options' "poll_interval" (seconds,
 * default default_interval_s) and "max_wait" (seconds, default
 * default_max_wait_s).  -1 with a rejected error for a bad value. */
PHTTP_HIDDEN int phttp_task_init(struct phttp_task *t, const char *tag,
			       const struct t2i_request *req, const struct t2i_host *host,
			       const json_t *opts, double default_interval_s,
			       double default_max_wait_s, struct t2i_error *err);

/* Waits one poll interval through host->sleep, which says
 * T2I_STOP_DEADLINE once the budget is used up on the storyboard's last
 * attempt and lets the worker be killed at its deadline on earlier ones (the
 * next attempt resumes the task).  On a version 1 host: nanosleep, never past
 * this call's budget (req->timeout_s).  Returns T2I_STOP_NONE to poll again,
 * the host's enum t2i_stop, PHTTP_STOP_MAX_WAIT or PHTTP_STOP_OUT_OF_TIME. */
PHTTP_HIDDEN int phttp_task_wait(struct phttp_task *t);

/* Seconds left of this call's budget (at least 1): a poll's time limit. */
PHTTP_HIDDEN double phttp_task_left_s(const struct phttp_task *t);

/* Whether a stop abandons the task, so that the provider should be asked
 * to cancel it: the run was cancelled, the last attempt's budget is used up
 * (T2I_STOP_DEADLINE), or the task waited past max_wait.  Any other stop (a
 * spending budget, the service stopping, the end of a version 1 host's
 * attempt) keeps it, committed, for the next attempt to poll. */
PHTTP_HIDDEN int phttp_task_abandoned(int stop);

/* Fills err for a stop of phttp_task_wait() and returns -1, saying what
 * becomes of the task; note (for an abandoned task) says whether the
 * provider cancelled it. */
PHTTP_HIDDEN int phttp_task_stopped(const struct phttp_task *t, int stop, const char *note,
				  struct t2i_error *err);

#endif /* T2I_PLUGIN_PHTTP_TASK_H */
