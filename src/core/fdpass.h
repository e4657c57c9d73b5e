/* fdpass: one message with file descriptors attached (SCM_RIGHTS) over a
 * SOCK_SEQPACKET socket, as the spawner and the plugin templates pass a
 * worker's two pipe ends along. */
#ifndef T2I_FDPASS_H
#define T2I_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

#define FDPASS_MAX 2

/* Sends data (len >= 1) with nfds descriptors.  0, or -1 with errno. */
int fdpass_send(int sock, const int *fds, int nfds, const void *data, size_t len);

/* Receives one message into data (at most cap bytes) with either no
 * descriptors or exactly *nfds of them (close-on-exec); *nfds says which.
 * Returns the data length (>= 1), 0 at EOF, -1 on error, on any other
 * number of descriptors (those received are closed) or on a truncated
 * message. */
ssize_t fdpass_recv(int sock, int *fds, int *nfds, void *data, size_t cap);

#endif
