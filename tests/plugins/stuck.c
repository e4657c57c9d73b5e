/*
 * stuck: a plugin whose constructor never returns when T2ISTAGE_TEST_STUCK
 * is set in the environment (and behaves like "ok" otherwise, so that
 * `t2istage plugins` lists it without waiting).  Whoever loads it hangs in
 * dlopen(): the template never says it is ready, and the worker forked
 * instead is killed at its deadline.
 */
#include "common.h"

#include <stdlib.h>
#include <unistd.h>

T2I_PLUGIN("stuck", "1.0", "test: hangs while loading when told to");

__attribute__((constructor)) static void hang_when_told(void)
{
	if (getenv("T2ISTAGE_TEST_STUCK") != NULL)
		for (;;)
			pause();
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	return tp_end(req, tp_ok(req, host, err));
}
