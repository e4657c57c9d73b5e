/* msg: the JSON messages between the supervisor and a worker, one per line.
 *
 * supervisor -> worker, first: {"type":"batch", ...}   (struct msg_batch)
 *               then, any time: {"type":"ack","image_id","ok":true}
 *                               {"type":"ack","image_id","ok":false,"message"}
 *                               {"type":"stop","reason":"cancelled"|"deadline"|
 *                                "budget"|"shutdown"}           (struct msg_ctl)
 * worker -> supervisor:        {"type":"begin","image_id","at_ms"}
 *                              {"type":"image","image_id", url, file_path, ...}
 *                              {"type":"checkpoint","image_id","state"}
 *                              {"type":"progress","image_id","fraction","message"}
 *                              {"type":"warning","image_id","message"}
 *                              {"type":"result","image_id","ok":true}
 *                              {"type":"result","image_id","ok":false,"class",
 *                               "http_status","retry_after_ms","message"}
 *                              {"type":"fatal","message"}   (nothing can run)
 *
 * The batch pipe stays open after the batch for the supervisor's answers:
 * an ack of each begin, which the worker waits for before it calls the
 * plugin (the go-ahead: the supervisor has recorded it and still holds
 * the storyboard); an ack once a checkpoint's state (a JSON object text, at most
 * T2I_CHECKPOINT_MAX bytes, carried as a string) is committed, and a stop
 * that the worker's host->sleep() hands to the plugin.  "fraction" is a
 * number from 0 to 1, or null when the plugin does not know.  "at_ms" is
 * the worker's CLOCK_MONOTONIC (clock_now_ms, the same clock as the
 * supervisor's on one machine) as it hands the request to the plugin: the
 * supervisor reads the begin of one worker after the answers of another,
 * and must know which of them went out first (pace.h).
 *
 * Decoding is strict: an unknown type, a missing or mistyped member or an
 * unknown member is an error, because a worker is our own code and anything
 * unexpected from it means it is broken (or a plugin wrote on its pipe). */
#ifndef T2I_MSG_H
#define T2I_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg_item {
	char image_id[37];
	char storyboard_id[37];
	int index;
	char *prompt;
	char *negative_prompt;
	char ratio[8];
	char resolution[8];
	int width, height;
	char *options_json;
	char *resume_json;	/* the pending provider task's state, "" for none */
	char idempotency_key[37];
	bool last_attempt;	/* a failure of this attempt is not retried on its provider */
};

struct msg_batch {
	char *plugin_path;
	char *storage_dir;
	bool thumbnails;
	double timeout;
	double connect_timeout;
	char *provider;
	char *api_url;
	char *api_key;
	char *model;
	size_t nitems;
	struct msg_item *items;
};

enum msg_type {
	MSG_BEGIN = 1, MSG_IMAGE, MSG_RESULT, MSG_FATAL, MSG_CHECKPOINT, MSG_PROGRESS, MSG_WARNING
};

/* The longest progress or warning message a worker sends, in bytes. */
#define MSG_NOTE_MAX 1024

struct msg_image {
	char *url;		/* NULL when the plugin gave bytes */
	char *file_path;
	char *thumbnail_path;	/* NULL when none */
	char sha256[65];
	char mime[32];
	int width, height;
	int64_t file_size;
};

struct msg_worker {
	enum msg_type type;
	char image_id[37];
	int64_t at_ms;			/* MSG_BEGIN: when the request went out */
	struct msg_image image;		/* MSG_IMAGE */
	bool ok;			/* MSG_RESULT */
	int error_class;		/* enum t2i_error_class */
	int http_status;
	int64_t retry_after_ms;
	char *message;			/* MSG_RESULT failure, MSG_FATAL, MSG_PROGRESS,
					 * MSG_WARNING */
	char *state;			/* MSG_CHECKPOINT: a JSON object text */
	double fraction;		/* MSG_PROGRESS: 0 to 1, -1 when unknown */
};

/* What the supervisor sends after the batch. */
enum msg_ctl_type { MSG_ACK = 1, MSG_STOP };

struct msg_ctl {
	enum msg_ctl_type type;
	char image_id[37];		/* MSG_ACK */
	bool ok;			/* MSG_ACK: the state is committed */
	char *message;			/* MSG_ACK refused: why */
	int reason;			/* MSG_STOP: enum t2i_stop, never T2I_STOP_NONE */
};

/* Encoders return a malloc'd line ending in '\n', or NULL. */
char *msg_encode_batch(const struct msg_batch *b, size_t *len);
char *msg_encode_begin(const char *image_id, int64_t at_ms, size_t *len);
char *msg_encode_image(const char *image_id, const struct msg_image *im, size_t *len);
char *msg_encode_result(const char *image_id, bool ok, int error_class, int http_status,
			int64_t retry_after_ms, const char *message, size_t *len);
char *msg_encode_fatal(const char *message, size_t *len);
char *msg_encode_checkpoint(const char *image_id, const char *state, size_t *len);
/* fraction outside 0..1 (or NaN) is sent as null: unknown. */
char *msg_encode_progress(const char *image_id, double fraction, const char *message,
			  size_t *len);
char *msg_encode_warning(const char *image_id, const char *message, size_t *len);
/* failure NULL: committed. */
char *msg_encode_ack(const char *image_id, const char *failure, size_t *len);
char *msg_encode_stop(int reason, size_t *len);

/* Decoders return 0, or -1 with a reason in err. */
int msg_decode_batch(const char *line, size_t len, struct msg_batch *b, char *err, size_t errlen);
int msg_decode_worker(const char *line, size_t len, struct msg_worker *m, char *err,
		      size_t errlen);
int msg_decode_ctl(const char *line, size_t len, struct msg_ctl *c, char *err, size_t errlen);

void msg_batch_free(struct msg_batch *b);
void msg_worker_free(struct msg_worker *m);
void msg_image_free(struct msg_image *im);
void msg_ctl_free(struct msg_ctl *c);

/* 0 when state is a JSON object text of at most T2I_CHECKPOINT_MAX bytes;
 * -1 with why ("not JSON: ...", "not a JSON object", "N bytes, more than
 * ...") in err. */
int msg_state_check(const char *state, char *err, size_t errlen);

/* Replaces each byte of an invalid UTF-8 sequence in s by '?', so that a
 * plugin's text can always be sent as a JSON string. */
void msg_text_clean(char *s);

/* Not a plugin's error class but the worker's own: the provider answered
 * with an image that could not be stored (a full disk, a read-only
 * directory, an I/O error).  Paid for and lost here: never retried at the
 * provider nor failed over. */
#define MSG_ERR_LOCAL 6

/* "transient", "rate_limited", ... "local" for a class; NULL for an
 * unknown one. */
const char *msg_class_name(int error_class);
int msg_class_parse(const char *name);

/* "cancelled", "deadline", "budget", "shutdown" for a stop reason; NULL
 * for T2I_STOP_NONE or an unknown one. */
const char *msg_stop_name(int reason);
int msg_stop_parse(const char *name);	/* -1 for an unknown name */

#endif
