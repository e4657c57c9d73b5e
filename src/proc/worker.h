/* worker: the child side of a batch.  Runs after fork() in a process that
 * exists for one batch: reads the batch, the first line on fd 0, loads the
 * plugin, calls generate_image() per storyboard (host.h), stores the images
 * and reports JSON lines on fd WORKER_MSG_FD; fd 0 then carries the
 * supervisor's acks and stops (wchan.h).  Never touches the database. */
#ifndef T2I_WORKER_H
#define T2I_WORKER_H

#include <stdbool.h>
#include <sys/types.h>

/* The worker's message pipe.  A fixed, documented number: test plugins that
 * deliberately corrupt the protocol write here. */
#define WORKER_MSG_FD 3

enum worker_exit {
	WORKER_EXIT_OK = 0,
	WORKER_EXIT_INTERNAL = 1,	/* bad batch or control line, out of memory, pipe gone */
	WORKER_EXIT_FATAL = 2		/* the plugin cannot run: do not retry the batch */
};

/* True for the error classes after which a worker begins no more items of
 * its batch, and the supervisor puts them back: auth and quota (the
 * provider is unusable), rate_limited (the provider wants fewer requests)
 * and local (MSG_ERR_LOCAL: every image would be lost the same way). */
bool worker_ends_batch(int error_class);

/* fork(); in the child, resets what it inherited (signals, process group,
 * fds, environment), moves the pipes to 0 and WORKER_MSG_FD, runs the batch
 * and _exit()s.  The child leads its own process group (the supervisor
 * kills workers by group).  The child's pid, or -1 with errno. */
pid_t worker_fork(int batch_fd, int msg_fd);

/* fork() of a worker before it has a batch (a template's spare): the child
 * resets what it can, then waits on sock for one message carrying its two
 * pipe ends (batch, messages) and goes on as above.  It exits quietly when
 * sock closes first. */
pid_t worker_fork_spare(int sock);

#endif
