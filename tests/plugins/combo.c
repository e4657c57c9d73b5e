/*
 * combo: several misbehaviours in one plugin, so one run can have a crash,
 * a hang and a refusal side by side (each costing only its own storyboard)
 * while the other storyboards succeed: "CRASH" dies of SIGSEGV, "HANG"
 * never returns, "ERROR" is rejected with HTTP 400.
 */
#include "common.h"

T2I_PLUGIN("combo", "1.0", "test: CRASH, HANG and ERROR in one plugin");

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	if (tp_has(req, "CRASH"))
		tp_crash();
	if (tp_has(req, "HANG"))
		tp_hang();
	if (tp_has(req, "ERROR")) {
		tp_err(err, T2I_ERR_REJECTED, 400, "combo plugin: refused prompt");
		return tp_end(req, -1);
	}
	return tp_end(req, tp_ok(req, host, err));
}
