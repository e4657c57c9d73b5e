/*
 * exit: on a prompt containing "EXIT" the worker exits with status 0 in the
 * middle of its batch without reporting, to prove the supervisor treats a
 * "clean" exit with storyboards still owed as a failure, not a success.
 * Any other prompt succeeds.
 */
#include <unistd.h>

#include "common.h"

T2I_PLUGIN("exit", "1.0", "test: exits silently on EXIT");

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	if (tp_has(req, "EXIT"))
		_exit(0);
	return tp_end(req, tp_ok(req, host, err));
}
