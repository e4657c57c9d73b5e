/* mhd: loading libmicrohttpd at run time (see mhd.h). */
#include "mhd.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#ifndef T2I_MHD_SONAME
#define T2I_MHD_SONAME "libmicrohttpd.so.12"
#endif

struct mhd_api mhd;

_Static_assert(sizeof(void *) == sizeof(mhd.run), "function and object pointers differ");

/* POSIX lets a dlsym() result be used as a function pointer of the same
 * size; it is copied into the member as bytes. */
static int
resolve(void *h, const char *name, void *slot, char *err, size_t errlen)
{
	void *p = dlsym(h, name);

	if (p == NULL) {
		snprintf(err, errlen, "%s: no symbol %s", T2I_MHD_SONAME, name);
		return -1;
	}
	memcpy(slot, &p, sizeof(p));
	return 0;
}

int
mhd_load(char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t offset;
	} fns[] = {
#define FN(field, sym) { #sym, offsetof(struct mhd_api, field) }
		FN(start_daemon, MHD_start_daemon),
		FN(stop_daemon, MHD_stop_daemon),
		FN(quiesce_daemon, MHD_quiesce_daemon),
		FN(run, MHD_run),
		FN(get_timeout, MHD_get_timeout),
		FN(get_daemon_info, MHD_get_daemon_info),
		FN(lookup_connection_value, MHD_lookup_connection_value),
		FN(get_connection_values_n, MHD_get_connection_values_n),
		FN(get_connection_info, MHD_get_connection_info),
		FN(set_connection_option, MHD_set_connection_option),
		FN(add_connection, MHD_add_connection),
		FN(suspend_connection, MHD_suspend_connection),
		FN(resume_connection, MHD_resume_connection),
		FN(create_response_from_buffer, MHD_create_response_from_buffer),
		FN(create_response_from_callback, MHD_create_response_from_callback),
		FN(create_response_from_fd64, MHD_create_response_from_fd64),
		FN(add_response_header, MHD_add_response_header),
		FN(queue_response, MHD_queue_response),
		FN(destroy_response, MHD_destroy_response),
#undef FN
	};
	struct mhd_api api;
	void *h;

	if (mhd.run != NULL)
		return 0;
	if ((h = dlopen(T2I_MHD_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(err, errlen, "cannot load %s (install libmicrohttpd): %s",
			 T2I_MHD_SONAME, dlerror());
		return -1;
	}
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		if (resolve(h, fns[i].name, (char *)&api + fns[i].offset, err, errlen) < 0) {
			dlclose(h);
			return -1;
		}
	mhd = api;
	return 0;
}
