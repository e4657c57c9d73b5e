/*
 * ok: the well-behaved provider.  Every call succeeds with a small PNG per
 * storyboard; option "images": N returns N distinct variants, to test that
 * the first is kept as primary and the others as variants.
 */
#include "common.h"

T2I_PLUGIN("ok", "1.0", "test: always succeeds");

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	return tp_end(req, tp_ok(req, host, err));
}
