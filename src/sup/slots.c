/* slots: spawn, kill and reap worker processes. */
#include "slots.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "msg.h"
#include "spawner.h"
#include "t2istage/plugin.h"
#include "worker.h"


int64_t
slots_deadline(double timeout_s)
{
	double margin = timeout_s * 0.1;

	if (margin < 2.0)
		margin = 2.0;
	if (margin > 30.0)
		margin = 30.0;
	return clock_now_ms() + (int64_t)((timeout_s + margin) * 1000.0);
}

int
slots_init(struct slots *w, struct spawner *sp, int max, int nproviders)
{
	size_t np = (size_t)(nproviders > 0 ? nproviders : 1);
	int nslots = SLOTS_FOR(max);

	memset(w, 0, sizeof(*w));
	w->slots = calloc((size_t)nslots, sizeof(*w->slots));
	w->provider_busy = calloc(np, sizeof(int));
	if (w->slots == NULL || w->provider_busy == NULL) {
		slots_free(w);
		return -1;
	}
	w->nslots = nslots;
	w->max_busy = max;
	w->nproviders = nproviders;
	w->spawner = sp;
	for (int i = 0; i < nslots; i++)
		w->slots[i].to_fd = w->slots[i].from_fd = -1;
	return 0;
}

void
slots_free(struct slots *w)
{
	for (int i = 0; w->slots != NULL && i < w->nslots; i++)
		if (w->slots[i].pid > 0)
			slots_release(w, i);
	free(w->slots);
	free(w->provider_busy);
	memset(w, 0, sizeof(*w));
}

int
slots_reconfigure(struct slots *w, int workers_max, const int *map, int nproviders)
{
	size_t np = (size_t)(nproviders > 0 ? nproviders : 1);
	int nslots = SLOTS_FOR(workers_max);
	int *busy = calloc(np, sizeof(int));
	struct slot *slots = nslots > w->nslots ? calloc((size_t)nslots, sizeof(*slots)) : NULL;

	if (busy == NULL || (nslots > w->nslots && slots == NULL)) {
		free(busy), free(slots);
		return -1;
	}
	for (int i = 0; i < w->nslots; i++) {
		struct slot *s = &w->slots[i];

		if (s->pid > 0)
			s->provider = map[s->provider];
		if (s->pid > 0 && !s->done)
			busy[s->provider]++;
	}
	if (slots != NULL) {
		memcpy(slots, w->slots, (size_t)w->nslots * sizeof(*slots));
		for (int i = w->nslots; i < nslots; i++)
			slots[i].to_fd = slots[i].from_fd = -1;
		free(w->slots);
		w->slots = slots;
		w->nslots = nslots;
	}
	free(w->provider_busy);
	w->provider_busy = busy;
	w->nproviders = nproviders;
	w->max_busy = workers_max;
	return 0;
}

int
slots_in_flight(const struct slots *w, int p, const struct slot *except)
{
	int n = 0;

	for (int i = 0; i < w->nslots; i++) {
		const struct slot *s = &w->slots[i];

		if (s != except && s->pid > 0 && !s->reaped && s->provider == p && s->current >= 0)
			n++;
	}
	return n;
}

int
slots_free_slot(const struct slots *w)
{
	if (w->busy >= w->max_busy)
		return -1;	/* a reload lowered workers.max */
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].pid == 0)
			return i;
	return -1;
}

int
slots_spawn(struct slots *w, int i, const struct spawn_batch *b)
{
	struct slot *s = &w->slots[i];
	int to[2], from[2];
	pid_t pid;

	if (pipe2(to, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(from, O_CLOEXEC) < 0) {
		close(to[0]);
		close(to[1]);
		return -1;
	}
	ipc_set_nonblock(to[1]);
	ipc_set_nonblock(from[0]);
	memset(s, 0, sizeof(*s));
	s->to_fd = to[1];
	s->from_fd = from[0];
	/* The batch goes into the pipe before the fork: a batch fits the
	 * pipe's buffer, and the worker then reads it at once rather than
	 * after our next loop iteration.  A longer one is flushed as usual. */
	if (ipc_queue(&s->wr, b->line, b->len) < 0 || ipc_flush(&s->wr, s->to_fd) < 0 ||
	    (pid = spawner_spawn(w->spawner, to[0], from[1], b->plugin, b->flags)) < 0) {
		close(to[0]);
		close(from[1]);
		slots_release(w, i);
		return -1;
	}
	close(to[0]);
	close(from[1]);
	/* The batch pipe stays open: acks and stops follow the batch. */
	s->pid = pid;
	s->run = b->run;
	s->provider = b->provider;
	s->items = b->items;
	s->nitems = b->nitems;
	s->current = -1;
	s->deadline_ms = b->deadline_ms;
	snprintf(s->lease_token, sizeof(s->lease_token), "%s",
		 b->lease_token != NULL ? b->lease_token : "");
	w->busy++;
	w->provider_busy[b->provider]++;
	return 0;
}

void
slots_kill(struct slot *s, const char *cause)
{
	if (s->pid <= 0 || s->killed || s->reaped)
		return;
	snprintf(s->cause, sizeof(s->cause), "%s", cause);
	s->killed = true;
	/* The worker leads its own process group: anything a plugin started
	 * goes with it. */
	if (kill(-s->pid, SIGKILL) < 0 && errno == ESRCH)
		kill(s->pid, SIGKILL);
}

int
slots_send(struct slot *s, const char *line, size_t len)
{
	if (s->to_fd < 0 || ipc_queue(&s->wr, line, len) < 0)
		return -1;
	slots_flush(s);
	return s->to_fd >= 0 ? 0 : -1;
}

void
slots_flush(struct slot *s)
{
	/* A worker gone (EPIPE) is reaped as usual. */
	if (s->to_fd >= 0 && ipc_flush(&s->wr, s->to_fd) < 0) {
		close(s->to_fd);
		s->to_fd = -1;
	}
}

void
slots_stop(struct slot *s, int reason, int64_t grace_ms, const char *cause)
{
	int64_t at = clock_now_ms() + grace_ms;
	size_t len;
	char *line;

	if (s->pid <= 0 || s->killed || s->reaped)
		return;
	s->stopping = true;
	if (s->stop_sent == T2I_STOP_NONE && (line = msg_encode_stop(reason, &len)) != NULL) {
		s->stop_sent = reason;
		(void)slots_send(s, line, len);
		free(line);
	}
	if (grace_ms == 0) {
		slots_kill(s, cause);
	} else if (grace_ms > 0 && (s->kill_at_ms == 0 || at < s->kill_at_ms)) {
		s->kill_at_ms = at;
		snprintf(s->stop_cause, sizeof(s->stop_cause), "%s", cause);
	}
}

static int
slot_of(const struct slots *w, pid_t pid)
{
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].pid == pid && !w->slots[i].reaped)
			return i;
	return -1;
}

/* The spawner died, and its workers with it (PR_SET_PDEATHSIG): every live
 * slot counts as killed, and a new spawner takes over. */
static int
spawner_lost(struct slots *w)
{
	log_errx("the worker spawner died; restarting it");
	spawner_stop(w->spawner);
	for (int i = 0; i < w->nslots; i++) {
		struct slot *s = &w->slots[i];

		if (s->pid > 0 && !s->reaped) {
			slots_kill(s, "worker lost: the spawner died");
			s->reaped = true;
			s->status = SIGKILL;
			return i;
		}
	}
	if (spawner_start(w->spawner) < 0)
		fatal("cannot restart the worker spawner");
	return -1;
}

int
slots_reap(struct slots *w)
{
	pid_t pid;
	int status, i;

	for (;;) {
		int rc = spawner_read_exit(w->spawner, &pid, &status);

		if (rc < 0)
			return spawner_lost(w);
		if (rc == 0)
			return -1;
		if ((i = slot_of(w, pid)) >= 0) {
			w->slots[i].reaped = true;
			w->slots[i].status = status;
			return i;
		}
	}
}

int
slots_poll_fd(const struct slots *w)
{
	return w->spawner->exits;
}

void
slots_release(struct slots *w, int i)
{
	struct slot *s = &w->slots[i];

	if (s->to_fd >= 0)
		close(s->to_fd);
	if (s->from_fd >= 0)
		close(s->from_fd);
	ipc_reader_free(&s->rd);
	ipc_writer_free(&s->wr);
	for (int k = 0; k < s->nimages; k++)
		msg_image_free(&s->images[k]);
	free(s->items);
	if (s->pid > 0)
		slots_slot_done(w, s);
	memset(s, 0, sizeof(*s));
	s->to_fd = s->from_fd = -1;
}

void
slots_slot_done(struct slots *w, struct slot *s)
{
	if (s->done)
		return;
	s->done = true;
	w->busy--;
	w->provider_busy[s->provider]--;
}

bool
slots_alive(const struct slots *w)
{
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].pid > 0)
			return true;
	return false;
}

void
slots_describe_exit(const struct slot *s, char *out, size_t outlen)
{
	if (s->killed)
		snprintf(out, outlen, "%s", s->cause);
	else if (WIFSIGNALED(s->status))
		snprintf(out, outlen, "worker crashed: signal %d", WTERMSIG(s->status));
	else if (WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0)
		snprintf(out, outlen, "worker exited before finishing its batch");
	else
		snprintf(out, outlen, "worker exited with status %d",
			 WIFEXITED(s->status) ? WEXITSTATUS(s->status) : -1);
}
