/* workers: the slot table of worker processes.  Written only by the
 * supervisor: spawn (through the spawner), kill, reap, and the pipes' I/O.  What a
 * worker's messages mean for a run is batch.c's business. */
#ifndef T2I_WORKERS_H
#define T2I_WORKERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc.h"
#include "msg.h"
#include "spawner.h"

struct run;

#define SLOT_IMAGES_MAX 17	/* primary + 16 variants */

struct slot {
	pid_t pid;		/* 0: free */
	int to_fd;		/* batch to the worker, -1 once written */
	int from_fd;		/* messages from the worker, -1 at EOF */
	struct ipc_reader rd;
	struct ipc_writer wr;
	struct run *run;
	int provider;
	int *items;		/* run item indices, in batch order */
	int nitems;
	int next;		/* position of the next item to begin */
	int current;		/* position of the item begun, -1 between items */
	int64_t deadline_ms;	/* monotonic: kill past this */
	bool killed;
	bool stopping;		/* killed for a shutdown: nothing it held failed */
	bool reaped;
	bool done;		/* every item reported: exiting, no longer busy */
	int status;		/* waitpid status once reaped */
	char cause[160];	/* why we killed it */
	struct msg_image images[SLOT_IMAGES_MAX];
	int nimages;
};

struct workers {
	struct spawner *spawner; /* forks the workers; see spawner.h */
	struct slot *slots;
	int nslots;
	int max_busy;		/* workers.max; nslots never shrinks */
	int busy;		/* workers with items left to report */
	int *provider_busy;	/* workers per provider */
	int *provider_limit;	/* current cap: concurrency, lowered while rate limited */
	int *provider_max;	/* configured concurrency */
	int nproviders;
};

/* Slots for max busy workers: each may leave one exiting behind it. */
#define WORKERS_SLOTS(max) (2 * (max))

int workers_init(struct workers *w, struct spawner *sp, int max, int nproviders,
		 const int *concurrency);

/* A new configuration: slot provider indices go through map (old index to
 * new), the slot table grows for workers_max if needed (it never shrinks),
 * caps start afresh. */
int workers_reconfigure(struct workers *w, int workers_max, const int *map, int nproviders,
			const int *concurrency);

/* True when provider p may have one more worker. */
bool workers_provider_free(const struct workers *w, int p);
/* A 429 halves the provider's cap (at least 1); each success raises it by
 * one back towards its configured concurrency. */
int workers_rate_limited(struct workers *w, int p);	/* the new cap, 0 if unchanged */
void workers_provider_ok(struct workers *w, int p);
void workers_free(struct workers *w);

/* A free slot index, or -1. */
int workers_free_slot(const struct workers *w);

/* What a worker is forked for. */
struct spawn_batch {
	struct run *run;
	int provider;
	const char *plugin;	/* the provider's .so: selects the template */
	unsigned flags;		/* TEMPLATE_* */
	int *items;		/* taken over on success */
	int nitems;
	const char *line;	/* the batch message */
	size_t len;
	int64_t deadline_ms;
};

/* Forks a worker into slot i with batch b.  Returns 0, or -1 with nothing
 * changed. */
int workers_spawn(struct workers *w, int i, const struct spawn_batch *b);

/* The worker has reported its last item and is exiting: its slot stops
 * counting against workers.max and the provider's concurrency, so that the
 * next batch starts without waiting for the exit.  It is still reaped, and
 * killed if it outlives its deadline. */
void workers_slot_done(struct workers *w, struct slot *s);

/* True while any worker process is not yet reaped. */
bool workers_alive(const struct workers *w);

/* Kills the worker's process group with SIGKILL and records why. */
void workers_kill(struct slot *s, const char *cause);

/* One exited worker (as the spawner reports it): its slot index, or -1 when
 * none is waiting.  The slot's pipe is drained afterwards by the caller. */
int workers_reap(struct workers *w);

/* The fd that becomes readable when a worker has exited. */
int workers_poll_fd(const struct workers *w);

/* Frees the slot once it is reaped and its messages are handled. */
void workers_release(struct workers *w, int i);

/* "worker crashed: signal 11" / "worker exited with status 3". */
void workers_describe_exit(const struct slot *s, char *out, size_t outlen);

int64_t workers_now_ms(void);

/* When a worker given timeout_s per image is killed: a little later than
 * the budget, so that a plugin that enforces it itself (with a clearer
 * message, like curl's "timed out") is heard first. */
int64_t workers_deadline(double timeout_s);

#endif
