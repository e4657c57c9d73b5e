/* ipc: line framing on non-blocking pipes.  A reader collects bytes and
 * hands out complete lines, refusing any line longer than its cap (a worker
 * that writes an endless line is misbehaving).  A writer queues bytes and
 * flushes them when the pipe is writable. */
#ifndef T2I_IPC_H
#define T2I_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define IPC_LINE_MAX (256u * 1024)

struct ipc_reader {
	char *buf;
	size_t len, cap;
	size_t start;		/* first byte not yet handed out */
	bool eof;
	size_t max;		/* longest line accepted; 0 for IPC_LINE_MAX */
};

enum ipc_status { IPC_AGAIN = 0, IPC_LINE = 1, IPC_EOF = 2, IPC_ERROR = -1, IPC_TOOLONG = -2 };

/* Reads what the fd has (until EAGAIN or EOF).  Returns IPC_AGAIN, IPC_EOF
 * or IPC_ERROR. */
int ipc_read(struct ipc_reader *r, int fd);

/* The next complete line (without '\n', NUL-terminated in place) in *line:
 * IPC_LINE; IPC_AGAIN when no complete line is buffered; IPC_TOOLONG when the
 * buffered partial line is over the reader's max; at EOF, a trailing partial
 * line is IPC_TOOLONG too (a message must end with '\n'). */
int ipc_next_line(struct ipc_reader *r, char **line, size_t *len);

void ipc_reader_free(struct ipc_reader *r);

struct ipc_writer {
	char *buf;
	size_t len, off;
};

int ipc_queue(struct ipc_writer *w, const char *data, size_t len);
/* Writes what it can: 1 when everything queued is written, 0 when bytes
 * remain (wait for POLLOUT), -1 on error (EPIPE: the reader is gone). */
int ipc_flush(struct ipc_writer *w, int fd);
bool ipc_pending(const struct ipc_writer *w);
void ipc_writer_free(struct ipc_writer *w);

/* Blocking write for the worker side. */
int ipc_write_all(int fd, const char *data, size_t len);

int ipc_set_nonblock(int fd);

#endif
