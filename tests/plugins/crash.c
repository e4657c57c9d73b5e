/*
 * crash: dies of SIGSEGV on a prompt containing "CRASH", to prove a crashing
 * plugin only costs its own worker's unfinished storyboards ("worker
 * crashed: signal 11").  Any other prompt succeeds.
 */
#include "common.h"

T2I_PLUGIN("crash", "1.0", "test: segfaults on CRASH");

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	if (tp_has(req, "CRASH"))
		tp_crash();
	return tp_end(req, tp_ok(req, host, err));
}
