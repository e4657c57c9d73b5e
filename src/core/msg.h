/* msg: the JSON messages between the supervisor and a worker, one per line.
 *
 * supervisor -> worker, once:  {"type":"batch", ...}   (struct msg_batch)
 * worker -> supervisor:        {"type":"begin","image_id"}
 *                              {"type":"image","image_id", url, file_path, ...}
 *                              {"type":"result","image_id","ok":true}
 *                              {"type":"result","image_id","ok":false,"class",
 *                               "http_status","retry_after_ms","message"}
 *                              {"type":"fatal","message"}   (nothing can run)
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

enum msg_type { MSG_BEGIN = 1, MSG_IMAGE, MSG_RESULT, MSG_FATAL };

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
	struct msg_image image;		/* MSG_IMAGE */
	bool ok;			/* MSG_RESULT */
	int error_class;		/* enum t2i_error_class */
	int http_status;
	int64_t retry_after_ms;
	char *message;			/* MSG_RESULT failure, MSG_FATAL */
};

/* Encoders return a malloc'd line ending in '\n', or NULL. */
char *msg_encode_batch(const struct msg_batch *b, size_t *len);
char *msg_encode_begin(const char *image_id, size_t *len);
char *msg_encode_image(const char *image_id, const struct msg_image *im, size_t *len);
char *msg_encode_result(const char *image_id, bool ok, int error_class, int http_status,
			int64_t retry_after_ms, const char *message, size_t *len);
char *msg_encode_fatal(const char *message, size_t *len);

/* Decoders return 0, or -1 with a reason in err. */
int msg_decode_batch(const char *line, size_t len, struct msg_batch *b, char *err, size_t errlen);
int msg_decode_worker(const char *line, size_t len, struct msg_worker *m, char *err,
		      size_t errlen);

void msg_batch_free(struct msg_batch *b);
void msg_worker_free(struct msg_worker *m);
void msg_image_free(struct msg_image *im);

/* "transient", "rate_limited", ... for a class; NULL for an unknown one. */
const char *msg_class_name(int error_class);
int msg_class_parse(const char *name);

#endif
