/*
 * abiv1: a plugin as it was built against the header of ABI version 1, whose
 * struct t2i_plugin ended at description (no flags).  The host must load it
 * and read no flags from it: the bytes after its struct belong to whatever
 * the linker put there.
 *
 * The current header declares struct t2i_plugin and the object t2i_plugin
 * with the newer layout; both names are moved aside while it is included, so
 * that this file can define the object with the old one.
 */
#define t2i_plugin t2i_plugin_current
#include "common.h"
#undef t2i_plugin

#include <stddef.h>

/* struct t2i_plugin of ABI version 1, member for member. */
struct t2i_plugin_v1 {
	uint32_t abi_version;
	uint32_t struct_size;
	const char *name;
	const char *version;
	const char *description;
};

_Static_assert(sizeof(struct t2i_plugin_v1) == offsetof(struct t2i_plugin_current, flags),
	       "version 2 appended flags to the version 1 layout");

const struct t2i_plugin_v1 t2i_plugin = {
	1, sizeof(struct t2i_plugin_v1), "abiv1", "1.0", "test: built against ABI version 1",
};

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	return tp_end(req, tp_ok(req, host, err));
}
