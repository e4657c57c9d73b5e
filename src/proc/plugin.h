/* plugin: finding, checking and loading provider plugins.
 *
 * The supervisor never dlopens a plugin: plugin_probe() loads it in a
 * short-lived child and reports back, and plugin_load() is called only in
 * workers.  That way a replaced .so takes effect at the next batch, and a
 * plugin that crashes in its constructor kills only a disposable process. */
#ifndef T2I_PLUGIN_H
#define T2I_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "t2istage/plugin.h"

struct plugin_info {
	char name[64];		/* file name without .so */
	char path[4096];
	bool ok;
	unsigned abi_version;
	char plugin_name[64];	/* what the plugin calls itself */
	char version[64];
	char description[160];
	uint32_t flags;		/* T2I_PLUGIN_* bits, 0 for a plugin of ABI version 1 */
	char error[512];	/* why it was refused, when !ok */
	/* plugin_probe_options(): why t2i_check_options() refused the
	 * options, "" when it accepted them or the plugin has no such check */
	char options_error[512];
};

/* A provider's settings, for the plugin's t2i_check_options(). */
struct plugin_options {
	const char *api_url;
	const char *model;
	const char *options_json;
};

/* Refuses files or directories writable by group or others, or owned by
 * neither root nor us; and anything that is not a regular file. */
int plugin_check_perms(const char *path, char *err, size_t errlen);

/* Checks the data symbol: ABI version and struct size.  Pure, for tests. */
int plugin_abi_check(const struct t2i_plugin *p, const char *path, char *err, size_t errlen);

/* The plugin's flags, 0 when its struct_size does not cover them (a plugin
 * built against ABI version 1).  p has passed plugin_abi_check. */
uint32_t plugin_flags(const struct t2i_plugin *p);

/* In a worker: checks perms, dlopen(RTLD_NOW | RTLD_LOCAL), checks the ABI
 * symbol, then resolves generate_image.  Returns the handle or NULL. */
void *plugin_load(const char *path, const struct t2i_plugin **meta, t2i_generate_fn **gen,
		  char *err, size_t errlen);

/* Loads path in a child process (killed after a few seconds) and fills info. */
int plugin_probe(const char *path, struct plugin_info *info);

/* plugin_probe(), and in the same child, when the plugin exports
 * t2i_check_options (see t2istage/plugin.h), asks it about opts: a refusal
 * leaves info->ok true and fills info->options_error. */
int plugin_probe_options(const char *path, const struct plugin_options *opts,
			 struct plugin_info *info);

/* Probes every *.so in dir, sorted by name.  Returns the count, or -1 with
 * err set when the directory itself is refused or unreadable. */
int plugin_scan(const char *dir, struct plugin_info **out, char *err, size_t errlen);

#endif
