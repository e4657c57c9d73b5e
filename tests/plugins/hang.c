/*
 * hang: never returns on a prompt containing "HANG", to prove the
 * supervisor kills a worker past its time budget and retries or fails only
 * that storyboard.  Any other prompt succeeds.
 */
#include "common.h"

T2I_PLUGIN("hang", "1.0", "test: hangs forever on HANG");

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	if (tp_has(req, "HANG"))
		tp_hang();
	return tp_end(req, tp_ok(req, host, err));
}
