/* wchan: the worker's pipes to the supervisor. */
#include "wchan.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "t2istage/plugin.h"

void
wchan_init(struct wchan *ch, int in, int out, int fail_status)
{
	memset(ch, 0, sizeof(*ch));
	ch->in = in;
	ch->out = out;
	ch->fail_status = fail_status;
	if (ipc_set_nonblock(in) < 0)
		log_warn("batch pipe: fcntl O_NONBLOCK");
}

void
wchan_free(struct wchan *ch)
{
	ipc_reader_free(&ch->rd);
}

void
wchan_send(struct wchan *ch, char *line)
{
	if (line == NULL || ipc_write_all(ch->out, line, strlen(line)) < 0) {
		/* The supervisor is gone or we are out of memory: nobody is
		 * left to report to. */
		_exit(ch->fail_status);
	}
	free(line);
}

/* Reads what the batch pipe holds, after waiting at most timeout_ms for
 * something to come. */
static void
fill(struct wchan *ch, int timeout_ms)
{
	struct pollfd p = { .fd = ch->in, .events = POLLIN };
	int st;

	if (ch->gone)
		return;
	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR) {
		log_warn("poll on the batch pipe");
		_exit(ch->fail_status);
	}
	st = ipc_read(&ch->rd, ch->in);
	if (st == IPC_EOF || st == IPC_ERROR)
		ch->gone = true;
}

static _Noreturn void
broken(struct wchan *ch, const char *why)
{
	log_errx("bad message from the supervisor: %s", why);
	_exit(ch->fail_status);
}

static void
handle(struct wchan *ch, const char *line, size_t len)
{
	struct msg_ctl c;
	char err[256];

	if (msg_decode_ctl(line, len, &c, err, sizeof(err)) < 0)
		broken(ch, err);
	if (c.type == MSG_STOP) {
		if (ch->stop == T2I_STOP_NONE)
			ch->stop = c.reason;
	} else {
		if (ch->have_ack)
			broken(ch, "a second ack before the first was taken");
		ch->have_ack = true;
		memcpy(ch->ack_id, c.image_id, sizeof(ch->ack_id));
		snprintf(ch->ack_why, sizeof(ch->ack_why), "%s",
			 c.ok ? "" : c.message != NULL && c.message[0] != '\0' ? c.message
									   : "refused");
	}
	msg_ctl_free(&c);
}

void
wchan_wait(struct wchan *ch, int timeout_ms)
{
	char *line;
	size_t len;
	int st;

	fill(ch, timeout_ms);
	while ((st = ipc_next_line(&ch->rd, &line, &len)) == IPC_LINE)
		handle(ch, line, len);
	if (st == IPC_TOOLONG)
		broken(ch, "a line too long");
	/* The supervisor closed the pipe, or died: stop as for a shutdown,
	 * leaving any provider task for the next attempt. */
	if (ch->gone && ch->stop == T2I_STOP_NONE)
		ch->stop = T2I_STOP_SHUTDOWN;
}

char *
wchan_batch(struct wchan *ch, size_t max, size_t *len)
{
	char *line;
	int st;

	ch->rd.max = max;
	for (;;) {
		st = ipc_next_line(&ch->rd, &line, len);
		if (st == IPC_LINE) {
			ch->rd.max = 0;
			return line;
		}
		if (st == IPC_TOOLONG && !ch->gone) {
			log_errx("batch: longer than %zu bytes", max);
			return NULL;
		}
		if (ch->gone) {
			log_errx("batch: the pipe closed before a whole line");
			return NULL;
		}
		fill(ch, -1);
	}
}

int
wchan_ack(struct wchan *ch, const char *image_id)
{
	while (!ch->have_ack) {
		if (ch->gone) {
			snprintf(ch->ack_why, sizeof(ch->ack_why), "the supervisor is gone");
			return -1;
		}
		wchan_wait(ch, -1);
	}
	ch->have_ack = false;
	if (strcmp(ch->ack_id, image_id) != 0)
		broken(ch, "an ack for another image");
	return ch->ack_why[0] == '\0' ? 0 : -1;
}
