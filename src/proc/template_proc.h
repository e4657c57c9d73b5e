/* template_proc: the template process itself (see template.h for why it
 * exists): loads a plugin once, keeps a few spare workers forked ahead of
 * need, and hands each request's pipe ends to a spare (or forks a worker)
 * and answers its pid.  The spawner side of the protocol is template.c. */
#ifndef T2I_TEMPLATE_PROC_H
#define T2I_TEMPLATE_PROC_H

#include <sys/types.h>

/* Its protocol with the spawner is in spawnmsg.h. */

/* In the child just forked by the spawner: sock is the template's end of
 * its socket, exits_fd the socket where worker exits are reported.  Never
 * returns. */
_Noreturn void template_proc_main(int sock, int exits_fd, pid_t parent, const char *path,
				  unsigned flags, int spares);

#endif
