/* host: the host side of the plugin ABI in a worker, for one storyboard:
 * the struct t2i_request a plugin is given and the struct t2i_host calls it
 * may make (include/t2istage/plugin.h says what each promises).
 *
 * - add_image stores the bytes (downloading a URL first) and reports them.
 * - log writes a log line; a warning-level line also goes to the
 *   supervisor, which makes it a `warning` event once per run.
 * - checkpoint refuses state that is not a JSON object, is larger than
 *   T2I_CHECKPOINT_MAX or holds the api key; otherwise it sends the state
 *   and blocks until the supervisor says it is committed.
 * - progress goes to the supervisor at most once a second.
 * - sleep waits on the batch pipe, so that a stop ends it at once.  On the
 *   storyboard's last attempt on this provider (no retry follows a failure)
 *   it also says T2I_STOP_DEADLINE once the image's time budget is used up,
 *   before the supervisor's kill; on earlier attempts it does not: the
 *   worker is killed at its deadline and the next attempt resumes the
 *   provider task. */
#ifndef T2I_HOST_H
#define T2I_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"
#include "t2istage/plugin.h"
#include "wchan.h"

struct host_call {
	const struct msg_batch *batch;
	const struct msg_item *item;
	const char *plugin;		/* the plugin's name, for logs */
	struct wchan *ch;
	int nimages;			/* images stored so far */
	int64_t deadline_ms;		/* T2I_STOP_DEADLINE from then on; 0: never */
	bool progressed;
	int64_t progress_ms;		/* when the last progress went out */
	char error[T2I_ERROR_MESSAGE_MAX]; /* why the last add_image failed */
	bool local;			/* an image came but could not be stored (storage.h) */
};

/* Starts the call for item it of batch b: the call, the request and the
 * host table a plugin is given (all three valid while c is). */
void host_begin(struct host_call *c, const struct msg_batch *b, const struct msg_item *it,
		const char *plugin, struct wchan *ch, struct t2i_request *req,
		struct t2i_host *host);

/* Masks every occurrence of key (when it is at least 4 bytes long) in s, so
 * that a provider echoing it does not leak it into events or logs. */
void host_redact(char *s, const char *key);

#endif
