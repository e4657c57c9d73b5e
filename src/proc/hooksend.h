/* hooksend: the webhook sender, a process of its own that POSTs the
 * supervisor's webhook deliveries, several at once.
 *
 * Why a process: the supervisor never uses libcurl, and its loop must never
 * wait on a receiver that hangs, answers slowly or drops the connection.
 * The sender does the waiting; the supervisor talks to it over a
 * non-blocking socket inside its poll() loop.
 *
 * Why exec rather than fork: it is started with posix_spawn() of this very
 * binary (/proc/self/exe, so an upgrade on disk cannot pair two versions),
 * so it begins from a fresh image: nothing of the supervisor's memory (the
 * configuration and its secrets, database pages) is in the process that
 * talks to the network, and a restart costs the supervisor no copy of its
 * page tables.  It dies with the supervisor (PR_SET_PDEATHSIG).
 *
 * Where the signature is made: in the supervisor, which holds the secrets
 * anyway.  The sender gets the headers ready-made and never a secret.
 *
 * Messages, one JSON object per line each way (decoded strictly: a line
 * that does not decode is a bug of the other side, which is then ended):
 *   request {"tag": 7, "url": "https://...", "headers": ["webhook-id: msg_...", ...],
 *            "body": "<the event JSON>", "connect_timeout": 10, "timeout": 30}
 *   answer  {"tag": 7, "status": 204}            a 2xx answer
 *           {"tag": 7, "status": 500, "kind": "http", "error": "answered HTTP 500"}
 *           {"tag": 7, "status": 0, "kind": "timeout", "error": "..."}
 * Answers come in the order transfers finish, not the order of requests. */
#ifndef T2I_HOOKSEND_H
#define T2I_HOOKSEND_H

#include <stddef.h>
#include <sys/types.h>

#include "ipc.h"

/* The hidden command that makes the binary a sender. */
#define HOOKSEND_COMMAND "__webhook-sender"
/* A request carries an event: `done` lists every image id of its run. */
#define HOOKSEND_LINE_MAX (16u << 20)
#define HOOKSEND_HEADERS_MAX 8

struct hooksend_request {
	unsigned long long tag;
	const char *url;
	const char *headers[HOOKSEND_HEADERS_MAX];	/* "Name: value" */
	size_t nheaders;
	const char *body;
	size_t body_len;
	double connect_timeout, timeout;	/* seconds */
};

struct hooksend_answer {
	unsigned long long tag;
	long status;		/* HTTP status, 0 when none came */
	char kind[16];		/* "" for a 2xx answer */
	char error[256];
};

struct hooksend {
	pid_t pid;		/* 0: not running */
	int fd;			/* requests out, answers in; non-blocking */
	struct ipc_reader rd;
	struct ipc_writer wr;
};

/* Starts the sender.  conf_path (may be NULL) only goes on its command
 * line, so that ps shows whose sender it is.  0, or -1 with errno. */
int hooksend_start(struct hooksend *h, const char *conf_path);
/* Queues a request; hooksend_flush() writes it when the socket takes it. */
int hooksend_queue(struct hooksend *h, const struct hooksend_request *rq);
/* 1 when everything queued is written, 0 when bytes remain, -1 when the
 * sender is gone. */
int hooksend_flush(struct hooksend *h);
/* Reads what the sender wrote: IPC_AGAIN, IPC_EOF or IPC_ERROR. */
int hooksend_read(struct hooksend *h);
/* The next answer read: 1, 0 when none is complete, -1 for a line that
 * does not decode. */
int hooksend_next(struct hooksend *h, struct hooksend_answer *a);
/* Kills it (nothing it holds is worth waiting for: the deliveries are in
 * the database) and reaps it; *status as waitpid() gives it. */
void hooksend_stop(struct hooksend *h, int *status);

#endif
