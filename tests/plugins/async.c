/*
 * async: an asynchronous provider, the way DashScope or ComfyUI work, with
 * a "provider" that is a directory (option "tasks"): a submission (what is
 * paid for) creates TASK.task there; the task is done once option "task_ms"
 * (default 0) has passed since and, when option "gate" names a file, that
 * file exists.  The plugin does what ABI version 2 asks of a polling
 * plugin: it polls the task in req->resume_json when there is one (and
 * submits again only when it is gone), checkpoints a new task before it
 * polls, waits only through host->sleep() (option "poll_ms", default 50),
 * reports progress, and on a stop cancels the task only for
 * T2I_STOP_CANCELLED and T2I_STOP_DEADLINE.
 *
 * Everything it does is a line in TASKS/log, one write() each:
 *   EVENT STORYBOARD_ID IDEMPOTENCY_KEY TASK PID [DETAIL]
 * with EVENT one of call (DETAIL: the task resumed, or -), submit, resume,
 * lost (the resumed task is gone), poll (DETAIL: CLOCK_MONOTONIC in ns),
 * done, stop (DETAIL: the reason),
 * cancel, left, badckpt (DETAIL: the return codes), burst (DETAIL: its
 * length in ns).  Submissions are the `submit` lines.
 *
 * Triggers in the prompt: WARN logs a warning-level line (the same for
 * every storyboard); BADCKPT first tries checkpoints the host must refuse;
 * PROGRESS first sends two bursts of progress a second apart; CRASH dies of
 * signal 11 right after its checkpoint returned, when it submitted.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

T2I_PLUGIN("async", "1.0", "test: an asynchronous provider in a directory");

struct job {
	const struct t2i_request *req;
	const struct t2i_host *host;
	char dir[2048];
	char gate[2048];
	double task_ms;
	double poll_ms;
	char task[160];		/* the task being polled, "" before one */
};

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void note(const struct job *j, const char *event, const char *detail)
{
	char path[2100], line[1024];
	int fd, n;

	snprintf(path, sizeof(path), "%s/log", j->dir);
	n = snprintf(line, sizeof(line), "%s %s %s %s %ld%s%s\n", event, j->req->storyboard_id,
		     j->req->idempotency_key[0] ? j->req->idempotency_key : "-",
		     j->task[0] ? j->task : "-", (long)getpid(), detail ? " " : "",
		     detail ? detail : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return;
	while (write(fd, line, (size_t)n) < 0 && errno == EINTR)
		;
	close(fd);
}

static void task_path(const struct job *j, const char *task, char *out, size_t size)
{
	snprintf(out, size, "%s/%s.task", j->dir, task);
}

/* The task file holds "SUBMITTED_NS STATE". */
static int task_read(const struct job *j, const char *task, long long *submitted, char *st)
{
	char path[2400];
	FILE *f;
	int n;

	task_path(j, task, path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fscanf(f, "%lld %15s", submitted, st);
	fclose(f);
	return n == 2 ? 0 : -1;
}

static int task_write(const struct job *j, long long submitted, const char *st)
{
	char path[2400];
	FILE *f;

	task_path(j, j->task, path, sizeof(path));
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f, "%lld %s\n", submitted, st);
	return fclose(f);
}

static int fail(struct t2i_error *err, int cls, const char *fmt, const char *arg)
{
	tp_err(err, cls, 0, fmt, arg);
	return -1;
}

/* The task named by resume_json, when the provider still has it running:
 * then it is polled, not submitted again. */
static void resume(struct job *j)
{
	json_t *o = json_loads(j->req->resume_json, 0, NULL);
	const char *task = json_string_value(json_object_get(o, "task"));
	long long submitted;
	char st[16];

	note(j, "call", task != NULL ? task : "-");
	if (task != NULL && strlen(task) < sizeof(j->task)) {
		snprintf(j->task, sizeof(j->task), "%s", task);
		if (task_read(j, task, &submitted, st) == 0 && strcmp(st, "running") == 0) {
			note(j, "resume", NULL);
		} else {
			note(j, "lost", NULL);
			j->task[0] = '\0';
		}
	}
	json_decref(o);
}

static int submit(struct job *j, struct t2i_error *err)
{
	long long t = now_ns();
	char state[256];

	snprintf(j->task, sizeof(j->task), "%s-%ld-%lld", j->req->storyboard_id, (long)getpid(),
		 t);
	if (task_write(j, t, "running") < 0)
		return fail(err, T2I_ERR_TRANSIENT, "async: cannot create task in %s", j->dir);
	note(j, "submit", NULL);
	snprintf(state, sizeof(state), "{\"task\":\"%s\",\"submitted_ns\":%lld}", j->task, t);
	if (j->host->checkpoint(j->host->ctx, state) != 0)
		return fail(err, T2I_ERR_TRANSIENT, "async: task %s: checkpoint failed", j->task);
	return 0;
}

/* 1 done, 0 running, -1 gone. */
static int task_done(const struct job *j, double *fraction)
{
	long long submitted;
	char st[16];
	double ran;

	if (task_read(j, j->task, &submitted, st) < 0 || strcmp(st, "running") != 0)
		return -1;
	ran = (double)(now_ns() - submitted) / 1e6;
	*fraction = j->task_ms > 0 && ran < j->task_ms ? ran / j->task_ms : 1.0;
	if (ran < j->task_ms)
		return 0;
	return j->gate[0] == '\0' || access(j->gate, F_OK) == 0 ? 1 : 0;
}

static int stopped(struct job *j, int why, struct t2i_error *err)
{
	static const char *const names[] = { "none", "cancelled", "deadline", "budget",
					     "shutdown" };
	const char *name = why >= 0 && why <= 4 ? names[why] : "unknown";
	char msg[400];

	note(j, "stop", name);
	if (why == T2I_STOP_CANCELLED || why == T2I_STOP_DEADLINE) {
		/* Abandoned for good: nobody will poll it again. */
		task_write(j, 0, "cancelled");
		note(j, "cancel", NULL);
		j->host->checkpoint(j->host->ctx, "{}");
		snprintf(msg, sizeof(msg), "stopped (%s); task %s cancelled at the provider", name,
			 j->task);
	} else {
		note(j, "left", NULL);
		snprintf(msg, sizeof(msg), "stopped (%s); task %s left for the next attempt", name,
			 j->task);
	}
	return fail(err, T2I_ERR_TRANSIENT, "async: %s", msg);
}

static int poll_task(struct job *j, struct t2i_error *err)
{
	for (;;) {
		double fraction = 0;
		int rc = task_done(j, &fraction);
		char what[200], at[32];

		snprintf(at, sizeof(at), "%lld", now_ns());
		note(j, "poll", at);
		if (rc < 0)
			return fail(err, T2I_ERR_TRANSIENT, "async: task %s is gone", j->task);
		if (rc > 0) {
			note(j, "done", NULL);
			return tp_ok(j->req, j->host, err);
		}
		snprintf(what, sizeof(what), "task %s running", j->task);
		j->host->progress(j->host->ctx, fraction, what);
		if ((rc = j->host->sleep(j->host->ctx, (uint32_t)j->poll_ms)) != T2I_STOP_NONE)
			return stopped(j, rc, err);
	}
}

/* Checkpoints the host must refuse, each named in the log. */
static void bad_checkpoints(struct job *j)
{
	static char big[T2I_CHECKPOINT_MAX + 64];
	char detail[64], with_key[300];

	snprintf(big, sizeof(big), "{\"pad\":\"%0*d\"}", T2I_CHECKPOINT_MAX, 0);
	snprintf(with_key, sizeof(with_key), "{\"auth\":\"%s\"}", j->req->api_key);
	snprintf(detail, sizeof(detail), "%d,%d,%d,%d,%d",
		 j->host->checkpoint(j->host->ctx, "[\"task\"]"),
		 j->host->checkpoint(j->host->ctx, "not json"),
		 j->host->checkpoint(j->host->ctx, big),
		 j->host->checkpoint(j->host->ctx, with_key),
		 j->host->checkpoint(j->host->ctx, NULL));
	note(j, "badckpt", detail);
}

/* Two bursts of progress, the second a little over a second later. */
static void bursts(struct job *j)
{
	for (int b = 0; b < 2; b++) {
		long long t0 = now_ns();
		char span[32];

		for (int i = 0; i < 100; i++)
			j->host->progress(j->host->ctx, (b * 100 + i) / 200.0, "burst");
		snprintf(span, sizeof(span), "%lld", now_ns() - t0);
		note(j, "burst", span);
		if (b == 0)
			j->host->sleep(j->host->ctx, 1100);
	}
}

static int setup(struct job *j, const struct t2i_request *req, const struct t2i_host *host,
		 struct t2i_error *err)
{
	memset(j, 0, sizeof(*j));
	j->req = req;
	j->host = host;
	if (req->struct_size < sizeof(*req) || host->struct_size < sizeof(*host))
		return fail(err, T2I_ERR_REJECTED, "async: %s", "needs a version 2 host");
	if (tp_option_str(req->options_json, "tasks", NULL, j->dir, sizeof(j->dir)) == NULL)
		return fail(err, T2I_ERR_REJECTED, "async: %s", "option \"tasks\" is missing");
	tp_option_str(req->options_json, "gate", "", j->gate, sizeof(j->gate));
	j->task_ms = tp_option_num(req->options_json, "task_ms", 0);
	j->poll_ms = tp_option_num(req->options_json, "poll_ms", 50);
	return 0;
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	struct job j;

	if (setup(&j, req, host, err) < 0)
		return -1;
	resume(&j);
	if (tp_has(req, "WARN"))
		host->log(host->ctx, T2I_LOG_WARNING,
			  "async: this provider has no negative prompt field; it is not sent");
	if (tp_has(req, "BADCKPT"))
		bad_checkpoints(&j);
	if (tp_has(req, "PROGRESS"))
		bursts(&j);
	if (j.task[0] == '\0') {
		if (submit(&j, err) < 0)
			return -1;
		if (tp_has(req, "CRASH"))
			tp_crash();
	}
	return poll_task(&j, err);
}
