/* api_image: image metadata and bytes.  The file routes also take a signed
 * URL instead of the token (the core checks it, see urlsig.h). */
#include "api_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

static json_t *
find_image(struct http_req *rq)
{
	return store_query_image(api_req_store(rq), rq->id);
}

static bool
image_completed(json_t *im)
{
	const char *s = json_string_value(json_object_get(im, "status"));

	return s != NULL && strcmp(s, "completed") == 0;
}

enum MHD_Result
api_image_get(struct http_req *rq)
{
	json_t *im = find_image(rq);

	if (im == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s not found", rq->id);
	api_req_sign_image(rq, im);
	return http_reply_json(rq, MHD_HTTP_OK, im);
}

static const char *
mime_of_path(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot == NULL)
		return "application/octet-stream";
	if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0)
		return "image/jpeg";
	if (strcasecmp(dot, ".png") == 0)
		return "image/png";
	if (strcasecmp(dot, ".webp") == 0)
		return "image/webp";
	return "application/octet-stream";
}

/* A signed URL may be cached by the browser until it expires: the file
 * behind it never changes (it is named by its content). */
static void
cache_control(struct http_req *rq, struct MHD_Response *resp)
{
	const char *exp = http_query(rq, "exp");
	long long left = exp != NULL ? strtoll(exp, NULL, 10) - (long long)time(NULL) : -1;
	char v[64];

	if (http_query(rq, "sig") == NULL || left <= 0)
		return;
	snprintf(v, sizeof(v), "private, max-age=%lld", left);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, v);
}

/* The file's bytes, sent by MHD with sendfile(); MHD owns and closes fd. */
static enum MHD_Result
send_file(struct http_req *rq, const char *path, const char *mime, const char *sha256)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct MHD_Response *resp;
	struct stat sb;
	char etag[72];
	const char *why = NULL;

	if (fd < 0 && errno == ENOENT)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s: file missing", rq->id);
	if (fd < 0 || fstat(fd, &sb) < 0)
		why = strerror(errno);
	else if (!S_ISREG(sb.st_mode))
		why = "not a regular file";
	if (why != NULL) {
		log_errx("http: image %s: cannot read %s: %s", rq->id, path, why);
		if (fd >= 0)
			close(fd);
		return http_reply_error(rq, 500, "image %s: cannot read its file: %s", rq->id, why);
	}
	/* sb is set when why is NULL: the analyzer takes strerror() to return
	 * NULL.  NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage) */
	if ((resp = MHD_create_response_from_fd64((uint64_t)sb.st_size, fd)) == NULL) {
		close(fd);
		return http_reply(rq, 500, NULL, 0);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime);
	/* Files are named by their sha256: the strongest of validators. */
	if (sha256 != NULL && *sha256 != '\0' && strlen(sha256) < sizeof(etag) - 2) {
		snprintf(etag, sizeof(etag), "\"%s\"", sha256);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	}
	cache_control(rq, resp);
	return http_reply(rq, MHD_HTTP_OK, resp, (uint64_t)sb.st_size);
}

enum MHD_Result
api_image_file(struct http_req *rq)
{
	json_t *im = find_image(rq);
	const char *path = json_string_value(json_object_get(im, "file_path"));
	const char *mime = json_string_value(json_object_get(im, "mime"));
	enum MHD_Result r;

	if (im == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s not found", rq->id);
	if (!image_completed(im) || path == NULL || *path == '\0') {
		r = http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s has no file (status %s)",
				     rq->id, json_string_value(json_object_get(im, "status")));
	} else {
		r = send_file(rq, path, mime != NULL && *mime != '\0' ? mime : mime_of_path(path),
			      json_string_value(json_object_get(im, "sha256")));
	}
	json_decref(im);
	return r;
}

enum MHD_Result
api_image_thumbnail(struct http_req *rq)
{
	json_t *im = find_image(rq);
	const char *path = json_string_value(json_object_get(im, "thumbnail_path"));
	enum MHD_Result r;

	if (im == NULL)
		return http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s not found", rq->id);
	if (path == NULL || *path == '\0')
		r = http_reply_error(rq, MHD_HTTP_NOT_FOUND, "image %s has no thumbnail", rq->id);
	else
		r = send_file(rq, path, mime_of_path(path), NULL);
	json_decref(im);
	return r;
}
