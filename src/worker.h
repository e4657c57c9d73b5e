/* worker: the child side of a batch.  Runs after fork() in a process that
 * exists for one batch: reads the batch from fd 0, loads the plugin, calls
 * generate_image() per storyboard, stores the images and reports JSON lines
 * on fd WORKER_MSG_FD.  Never touches the database. */
#ifndef T2I_WORKER_H
#define T2I_WORKER_H

/* The worker's message pipe.  A fixed, documented number: test plugins that
 * deliberately corrupt the protocol write here. */
#define WORKER_MSG_FD 3

enum worker_exit {
	WORKER_EXIT_OK = 0,
	WORKER_EXIT_INTERNAL = 1,	/* bad batch, out of memory, pipe gone */
	WORKER_EXIT_FATAL = 2		/* the plugin cannot run: do not retry the batch */
};

/* Resets what the child inherited from the supervisor (signals, fds,
 * environment) and moves the pipes to 0 and WORKER_MSG_FD.  Then runs the
 * batch and _exit()s. */
_Noreturn void worker_start(int batch_fd, int msg_fd);

/* A worker forked before it has a batch (a template's spare): resets what
 * it can, then waits on sock for one message carrying its two pipe ends
 * (batch, messages) and goes on as worker_start().  Exits quietly when sock
 * closes first. */
_Noreturn void worker_spare(int sock);

#endif
