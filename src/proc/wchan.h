/* wchan: a worker's two pipes to the supervisor.
 *
 * Out: one JSON line per message (msg.h) on the message pipe.  In: the
 * batch pipe carries the batch, its first line, and then stays open for
 * the supervisor's answers: the ack of each begin and of each checkpoint,
 * and stops.  Those
 * are read only when the worker is waiting anyway (in host->checkpoint()
 * and host->sleep(), and between storyboards): a stop is latched and every
 * later wait returns at once.  When the batch pipe reaches EOF the
 * supervisor is gone, which counts as a stop for shutdown.
 *
 * A worker has nobody left to report to when the message pipe fails, and a
 * bad line from the supervisor is a bug: both end the worker with the exit
 * status given to wchan_init(). */
#ifndef T2I_WCHAN_H
#define T2I_WCHAN_H

#include <stdbool.h>
#include <stddef.h>

#include "ipc.h"

struct wchan {
	int in, out;
	int fail_status;	/* _exit() status when the channel breaks */
	struct ipc_reader rd;
	int stop;		/* enum t2i_stop latched; T2I_STOP_NONE until one came */
	bool gone;		/* EOF on the batch pipe */
	bool have_ack;
	char ack_id[37];
	char ack_why[256];	/* "" when the ack said committed */
};

/* in is made non-blocking: waits are poll()s with a timeout. */
void wchan_init(struct wchan *ch, int in, int out, int fail_status);
void wchan_free(struct wchan *ch);

/* Sends line (NUL-terminated, ending in '\n') and frees it; a NULL line
 * (out of memory while encoding) or a failed write ends the worker. */
void wchan_send(struct wchan *ch, char *line);

/* The batch, the first line of the batch pipe, of at most max bytes; NULL
 * (with why logged) at EOF or when it is longer.  The line stays valid
 * until the next call on ch. */
char *wchan_batch(struct wchan *ch, size_t max, size_t *len);

/* Waits at most timeout_ms (0: only what is there, -1: until something
 * comes) and handles what came: a stop is latched in ch->stop, an ack is
 * kept for wchan_ack(). */
void wchan_wait(struct wchan *ch, int timeout_ms);

/* Waits for the ack of image_id's checkpoint: 0 once committed, -1 when the
 * supervisor refused it or is gone (why in ch->ack_why). */
int wchan_ack(struct wchan *ch, const char *image_id);

#endif
