/* spawnmsg: the exit report, the one message both the spawner and the
 * templates send. */
#include "spawnmsg.h"

#include <errno.h>
#include <sys/socket.h>

void
spawnmsg_send_exit(int fd, pid_t pid, int status)
{
	struct spawnmsg_exit m = { .pid = pid, .status = status };

	/* A full socket means the supervisor is stuck or gone; the message is
	 * small and the buffer holds thousands. */
	while (send(fd, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}
