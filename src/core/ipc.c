/* ipc: line framing with a size cap, and write queues. */
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
ipc_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

static size_t
reader_max(const struct ipc_reader *r)
{
	return r->max > 0 ? r->max : IPC_LINE_MAX;
}

/* Drops bytes already handed out, then makes room for at least 4 KiB. */
static int
reader_room(struct ipc_reader *r)
{
	size_t ncap;
	char *nb;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->len -= r->start;
		r->start = 0;
	}
	if (r->cap - r->len >= 4096)
		return 0;
	ncap = r->cap == 0 ? 16384 : r->cap * 2;
	if (ncap > reader_max(r) + 8192)
		ncap = reader_max(r) + 8192;
	if (ncap <= r->cap)
		return 0;	/* full: ipc_next_line reports the long line */
	if ((nb = realloc(r->buf, ncap)) == NULL)
		return -1;
	r->buf = nb;
	r->cap = ncap;
	return 0;
}

int
ipc_read(struct ipc_reader *r, int fd)
{
	for (;;) {
		ssize_t n;

		if (reader_room(r) < 0)
			return IPC_ERROR;
		if (r->cap - r->len <= 1)
			return IPC_AGAIN;	/* a line too long is pending */
		n = read(fd, r->buf + r->len, r->cap - r->len - 1);
		if (n > 0) {
			r->len += (size_t)n;
			continue;
		}
		if (n == 0) {
			r->eof = true;
			return IPC_EOF;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return IPC_AGAIN;
		return IPC_ERROR;
	}
}

int
ipc_next_line(struct ipc_reader *r, char **line, size_t *len)
{
	char *p = r->buf + r->start;
	size_t avail = r->len - r->start;
	char *nl = avail > 0 ? memchr(p, '\n', avail) : NULL;

	if (nl == NULL) {
		if (avail > reader_max(r) || (r->eof && avail > 0))
			return IPC_TOOLONG;
		return IPC_AGAIN;
	}
	if ((size_t)(nl - p) > reader_max(r))
		return IPC_TOOLONG;
	*nl = '\0';
	*line = p;
	*len = (size_t)(nl - p);
	r->start += *len + 1;
	return IPC_LINE;
}

void
ipc_reader_free(struct ipc_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

int
ipc_queue(struct ipc_writer *w, const char *data, size_t len)
{
	char *nb;

	if (w->off > 0 && w->off == w->len) {
		w->off = 0;
		w->len = 0;
	}
	if ((nb = realloc(w->buf, w->len + len)) == NULL)
		return -1;
	w->buf = nb;
	memcpy(w->buf + w->len, data, len);
	w->len += len;
	return 0;
}

int
ipc_flush(struct ipc_writer *w, int fd)
{
	while (w->off < w->len) {
		ssize_t n = write(fd, w->buf + w->off, w->len - w->off);

		if (n > 0) {
			w->off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	return 1;
}

bool
ipc_pending(const struct ipc_writer *w)
{
	return w->off < w->len;
}

void
ipc_writer_free(struct ipc_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

int
ipc_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}
