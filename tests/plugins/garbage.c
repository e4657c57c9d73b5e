/*
 * garbage: on a prompt containing "GARBAGE" writes junk to file descriptor 3,
 * which in a worker is its message pipe to the supervisor, then returns
 * normally.  Proves the supervisor decodes worker messages strictly: a line
 * that is not a valid message ends that worker, and nothing else.
 * Any other prompt succeeds quietly.
 */
#include <errno.h>
#include <unistd.h>

#include "common.h"

T2I_PLUGIN("garbage", "1.0", "test: writes junk on the worker's pipe on GARBAGE");

#define WORKER_MSG_FD 3

static void spew(void)
{
	static const char junk[] = "this is not json\n\x00\x01\xff\xfe{\"half\": [\n\x7f\x80garbage";
	size_t off = 0;

	/* Errors are ignored: fd 3 may not be a pipe outside a worker. */
	while (off < sizeof(junk) - 1) {
		ssize_t n = write(WORKER_MSG_FD, junk + off, sizeof(junk) - 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	if (tp_has(req, "GARBAGE"))
		spew();
	return tp_end(req, tp_ok(req, host, err));
}
