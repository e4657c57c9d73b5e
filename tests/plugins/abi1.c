/*
 * abi1: a plugin built against the version 1 header (tests/plugins/abi1/,
 * ahead of include/ on its include path; the Makefile says so), with the
 * shared helpers built the same way.  Its structs are the version 1 ones:
 * the host must hand it what a version 1 host did, and never make it read
 * past them.  Succeeds like `ok`, after checking what it was given.
 */
#include <string.h>

#include "common.h"

_Static_assert(T2I_ABI_VERSION == 1, "abi1 must be built against the version 1 header");

T2I_PLUGIN("abi1", "1.0", "test: built against ABI version 1");

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	/* A newer host's structs are larger, never smaller. */
	if (req->struct_size < sizeof(*req) || host->struct_size < sizeof(*host) ||
	    err->struct_size < sizeof(*err) || req->abi_version < 1 || host->abi_version < 1) {
		tp_err(err, T2I_ERR_REJECTED, 0, "abi1: a struct smaller than version 1's");
		return -1;
	}
	tp_trace(req->options_json, "start", req);
	host->log(host->ctx, T2I_LOG_INFO, "abi1: %ux%u for storyboard %u", req->width,
		  req->height, req->storyboard_index);
	return tp_end(req, tp_ok(req, host, err));
}
