/* spawnmsg: what the spawner, its templates and the supervisor say to each
 * other, in one place so that none of them includes another's internals
 * (OpenBSD daemons keep their imsg types in one header the same way).
 *
 * - A spawn request carries flags (SPAWNMSG_*) chosen by the supervisor.
 * - A template sends SPAWNMSG_READY once its plugin is loaded; its requests
 *   are a message with the worker's two pipe ends (answered with an int32
 *   pid, or -errno), or a byte without descriptors: the number of spares to
 *   keep, at most SPAWNMSG_SPARES_MAX (no answer).
 * - The spawner and every template report each reaped worker as one
 *   struct spawnmsg_exit on the exit socket the supervisor polls. */
#ifndef T2I_SPAWNMSG_H
#define T2I_SPAWNMSG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SPAWNMSG_THUMBS 0x1u	/* also preload the thumbnail module */

static inline unsigned
spawnmsg_flags(bool thumbnails)
{
	return thumbnails ? SPAWNMSG_THUMBS : 0;
}

#define SPAWNMSG_READY 'R'
#define SPAWNMSG_SPARES_MAX 16

struct spawnmsg_exit {
	int32_t pid;
	int32_t status;		/* as waitpid() gives it */
};

/* Reports one reaped worker on the exit socket fd. */
void spawnmsg_send_exit(int fd, pid_t pid, int status);

#endif
