/* fdpass: SCM_RIGHTS messages. */
#include "fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

union fdpass_cmsg {
	char buf[CMSG_SPACE(FDPASS_MAX * sizeof(int))];
	struct cmsghdr align;
};

int
fdpass_send(int sock, const int *fds, int nfds, const void *data, size_t len)
{
	union fdpass_cmsg u;
	struct iovec iov = { (void *)data, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	ssize_t n;

	if (nfds < 1 || nfds > FDPASS_MAX || len == 0) {
		errno = EINVAL;
		return -1;
	}
	memset(u.buf, 0, sizeof(u.buf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	while ((n = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n == (ssize_t)len ? 0 : -1;
}

static void
close_received(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t j = 0; j < k; j++) {
			memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
			close(fd);
		}
	}
}

ssize_t
fdpass_recv(int sock, int *fds, int *nfds, void *data, size_t cap)
{
	union fdpass_cmsg u;
	struct iovec iov = { data, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;

	if (*nfds < 1 || *nfds > FDPASS_MAX) {
		errno = EINVAL;
		return -1;
	}
	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n <= 0)
		return n;
	c = CMSG_FIRSTHDR(&mh);
	if (c == NULL && !(mh.msg_flags & MSG_TRUNC)) {
		*nfds = 0;
		return n;
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || c == NULL ||
	    c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN((size_t)*nfds * sizeof(int)) ||
	    CMSG_NXTHDR(&mh, c) != NULL) {
		close_received(&mh);
		errno = EPROTO;
		return -1;
	}
	memcpy(fds, CMSG_DATA(c), (size_t)*nfds * sizeof(int));
	return n;
}
