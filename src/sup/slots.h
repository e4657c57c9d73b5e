/* slots: the slot table of worker processes.  Written only by the
 * supervisor: spawn (through the spawner), kill, reap, and the pipes' I/O.  What a
 * worker's messages mean for a run is outcome.c's business. */
#ifndef T2I_SLOTS_H
#define T2I_SLOTS_H

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
	int to_fd;		/* batch, then acks and stops, to the worker; -1 once gone */
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
	bool bad;		/* killed for a bad message: nothing more it says counts */
	bool stopping;		/* stopped (cancel, shutdown): nothing it held failed */
	int stop_sent;		/* enum t2i_stop sent, T2I_STOP_NONE until one was */
	int64_t kill_at_ms;	/* monotonic: after a stop, kill past this; 0 none */
	char stop_cause[64];	/* the cause of that kill */
	bool reaped;
	bool done;		/* every item reported: exiting, no longer busy */
	int status;		/* waitpid status once reaped */
	char cause[160];	/* why we killed it */
	struct msg_image images[SLOT_IMAGES_MAX];
	int nimages;
	char lease_token[37];	/* a shared run's batch: the lease it holds, "" none */
	bool stale;		/* its run was dropped (sup.c resync): what it says is ignored */
};

struct slots {
	struct spawner *spawner; /* forks the workers; see spawner.h */
	struct slot *slots;
	int nslots;
	int max_busy;		/* workers.max; nslots never shrinks */
	int busy;		/* workers with items left to report */
	int *provider_busy;	/* workers per provider (their limits: pace.h) */
	int nproviders;
};

/* Slots for max busy workers: each may leave one exiting behind it. */
#define SLOTS_FOR(max) (2 * (max))

int slots_init(struct slots *w, struct spawner *sp, int max, int nproviders);

/* A new configuration: slot provider indices go through map (old index to
 * new), the slot table grows for workers_max if needed (it never shrinks). */
int slots_reconfigure(struct slots *w, int workers_max, const int *map, int nproviders);

/* Requests of provider p in flight (workers that began a storyboard and
 * have not answered it), but for the one in slot except. */
int slots_in_flight(const struct slots *w, int p, const struct slot *except);
void slots_free(struct slots *w);

/* A free slot index, or -1. */
int slots_free_slot(const struct slots *w);

/* What a worker is forked for. */
struct spawn_batch {
	struct run *run;
	int provider;
	const char *plugin;	/* the provider's .so: selects the template */
	unsigned flags;		/* SPAWNMSG_* */
	int *items;		/* taken over on success */
	int nitems;
	const char *line;	/* the batch message */
	size_t len;
	int64_t deadline_ms;
	const char *lease_token; /* a shared run's claim, or NULL */
};

/* Forks a worker into slot i with batch b.  Returns 0, or -1 with nothing
 * changed. */
int slots_spawn(struct slots *w, int i, const struct spawn_batch *b);

/* The worker has reported its last item and is exiting: its slot stops
 * counting against workers.max and the provider's concurrency, so that the
 * next batch starts without waiting for the exit.  It is still reaped, and
 * killed if it outlives its deadline. */
void slots_slot_done(struct slots *w, struct slot *s);

/* True while any worker process is not yet reaped. */
bool slots_alive(const struct slots *w);

/* Kills the worker's process group with SIGKILL and records why. */
void slots_kill(struct slot *s, const char *cause);

/* Queues line for the worker and writes what the pipe takes (the rest on
 * POLLOUT).  -1 when the worker's pipe is gone. */
int slots_send(struct slot *s, const char *line, size_t len);

/* Writes what is queued for the worker; closes the pipe when the worker is
 * gone. */
void slots_flush(struct slot *s);

/* Stops the worker: tells it why (enum t2i_stop, once), which a plugin
 * waiting in host->sleep() hears at once, marks it stopping (what it held
 * is put back, not failed), and kills it with cause after grace_ms (at
 * once for 0; never for a negative grace, when the caller kills it later),
 * unless it exits first.  A second stop can only shorten the grace. */
void slots_stop(struct slot *s, int reason, int64_t grace_ms, const char *cause);

/* One exited worker (as the spawner reports it): its slot index, or -1 when
 * none is waiting.  The slot's pipe is drained afterwards by the caller. */
int slots_reap(struct slots *w);

/* The fd that becomes readable when a worker has exited. */
int slots_poll_fd(const struct slots *w);

/* Frees the slot once it is reaped and its messages are handled. */
void slots_release(struct slots *w, int i);

/* "worker crashed: signal 11" / "worker exited with status 3". */
void slots_describe_exit(const struct slot *s, char *out, size_t outlen);

/* When a worker given timeout_s per image is killed: a little later than
 * the budget, so that a plugin that enforces it itself (with a clearer
 * message, like curl's "timed out") is heard first. */
int64_t slots_deadline(double timeout_s);

#endif
