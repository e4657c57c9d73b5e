/* spawner: a small process that forks the workers.
 *
 * Why not fork() in the supervisor: measured, every page the supervisor
 * wrote while workers were alive was copied on write, each copy with a TLB
 * shootdown, and that cost grew with the runs held in memory (10,000
 * storyboards ran at ~130/s).  exec() of a fresh binary costs ~4 ms here
 * before the first instruction.  The spawner is forked once, early, writes
 * almost nothing, and forks each worker from its own small image.
 *
 * The supervisor hands it the worker's two pipe ends (SCM_RIGHTS) and gets
 * the pid back; the spawner reaps its children and reports each exit
 * status on a second socket that the supervisor polls.  If the supervisor
 * dies the spawner dies (PR_SET_PDEATHSIG), and with it every worker. */
#ifndef T2I_SPAWNER_H
#define T2I_SPAWNER_H

#include <stdbool.h>
#include <sys/types.h>

struct spawner {
	pid_t pid;
	int ctl;		/* requests and replies, in order */
	int exits;		/* {pid, status} per reaped worker, non-blocking */
};

int spawner_start(struct spawner *sp);
/* Forks a worker with batch_fd as its stdin and msg_fd as WORKER_MSG_FD,
 * from the template of plugin (see template.h; flags are SPAWNMSG_*) when
 * one is ready, else from the spawner itself.  plugin may be NULL. */
pid_t spawner_spawn(struct spawner *sp, int batch_fd, int msg_fd, const char *plugin,
		    unsigned flags);
/* Asks for the template of plugin to be started now (see template.h), with
 * spares workers forked ahead: the caller expects that many batches for it
 * soon.  No answer. */
void spawner_warm(struct spawner *sp, const char *plugin, unsigned flags, int spares);
/* 1 with *pid and *status filled, 0 when nothing is waiting, -1 when the
 * spawner is gone (its workers died with it). */
int spawner_read_exit(struct spawner *sp, pid_t *pid, int *status);
/* Closes the spawner's sockets and waits for it.  It ends its templates
 * and their spares first and waits for them, so that when this returns no
 * process of the tree is left (systemd would otherwise kill them). */
void spawner_stop(struct spawner *sp);

#endif
