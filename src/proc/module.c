/* module: loading the worker's optional modules. */
#include "module.h"

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define MODULE_MAX 4

/* A worker loads at most a couple of modules; a tiny table is enough. */
static struct {
	char name[32];
	void *handle;		/* NULL when loading failed: not tried again */
} modules[MODULE_MAX];
static int nmodules;

static void *
module_open(const char *name)
{
	static const char *const rel[] = { "lib/t2istage", "../lib/t2istage" };
	char exe[PATH_MAX], dir[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	void *h;

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	snprintf(dir, sizeof(dir), "%s", dirname(exe));
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", dir, rel[i], name);
		if (access(path, R_OK) != 0)
			continue;
		if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) != NULL)
			return h;
		log_warnx("module %s: %s", path, dlerror());
		return NULL;
	}
	log_warnx("module %s not found beside the binary", name);
	return NULL;
}

void *
module_symbol(const char *name, const char *symbol)
{
	int i;

	for (i = 0; i < nmodules; i++)
		if (strcmp(modules[i].name, name) == 0)
			break;
	if (i == nmodules) {
		if (nmodules == MODULE_MAX)
			return NULL;
		snprintf(modules[i].name, sizeof(modules[i].name), "%s", name);
		modules[i].handle = module_open(name);
		nmodules++;
	}
	return modules[i].handle != NULL ? dlsym(modules[i].handle, symbol) : NULL;
}
