/*
 * badabi: declares ABI version 999, to prove the loader checks the data
 * symbol before running any plugin code and refuses the plugin with a
 * message naming the file.  generate_image() would succeed, but must never
 * be called.
 */
#include "common.h"

const struct t2i_plugin t2i_plugin = {
	999, sizeof(struct t2i_plugin), "badabi", "1.0", "test: wrong ABI version", 0,
};

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	return tp_end(req, tp_ok(req, host, err));
}
