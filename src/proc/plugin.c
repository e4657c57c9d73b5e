/* plugin: permission checks, ABI check, loading and probing. */
#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ipc.h"
#include "jsontext.h"

#define PROBE_TIMEOUT_MS 5000

static int
check_one(const char *path, bool want_dir, char *err, size_t errlen)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (want_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a %s", path, want_dir ? "directory" : "regular file");
		return -1;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "%s: refused: writable by group or others (mode %04o)", path,
			 (unsigned)(sb.st_mode & 07777));
		return -1;
	}
	if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: refused: owned by uid %u, not root or uid %u", path,
			 (unsigned)sb.st_uid, (unsigned)geteuid());
		return -1;
	}
	return 0;
}

int
plugin_check_perms(const char *path, char *err, size_t errlen)
{
	char *copy;
	int rc;

	if (path[0] != '/') {
		snprintf(err, errlen, "%s: refused: not an absolute path", path);
		return -1;
	}
	if (check_one(path, false, err, errlen) < 0)
		return -1;
	if ((copy = strdup(path)) == NULL)
		return -1;
	rc = check_one(dirname(copy), true, err, errlen);
	free(copy);
	return rc;
}

/* Plugins built against any header from ABI version 1 on load: the members
 * of version 1 must be there, later ones are read only when struct_size
 * covers them, and a larger struct is a newer plugin that appended members
 * this host does not read. */
#define ABI_OLDEST 1
#define V1_SIZE offsetof(struct t2i_plugin, flags)

int
plugin_abi_check(const struct t2i_plugin *p, const char *path, char *err, size_t errlen)
{
	if (p->abi_version < ABI_OLDEST || p->abi_version > T2I_ABI_VERSION) {
		snprintf(err, errlen, "%s: symbol %s: ABI version %u, this host speaks %u to %u",
			 path, T2I_PLUGIN_SYMBOL, (unsigned)p->abi_version, (unsigned)ABI_OLDEST,
			 (unsigned)T2I_ABI_VERSION);
		return -1;
	}
	if (p->struct_size < V1_SIZE) {
		snprintf(err, errlen, "%s: symbol %s: struct_size %u, expected at least %zu", path,
			 T2I_PLUGIN_SYMBOL, (unsigned)p->struct_size, V1_SIZE);
		return -1;
	}
	if (p->name == NULL || p->name[0] == '\0') {
		snprintf(err, errlen, "%s: symbol %s: no name", path, T2I_PLUGIN_SYMBOL);
		return -1;
	}
	return 0;
}

uint32_t
plugin_flags(const struct t2i_plugin *p)
{
	if (p->struct_size < offsetof(struct t2i_plugin, flags) + sizeof(p->flags))
		return 0;
	return p->flags;
}

void *
plugin_load(const char *path, const struct t2i_plugin **meta, t2i_generate_fn **gen, char *err,
	    size_t errlen)
{
	void *h, *sym;

	if (plugin_check_perms(path, err, errlen) < 0)
		return NULL;
	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(err, errlen, "%s: dlopen: %s", path, dlerror());
		return NULL;
	}
	if ((sym = dlsym(h, T2I_PLUGIN_SYMBOL)) == NULL) {
		snprintf(err, errlen, "%s: missing symbol %s", path, T2I_PLUGIN_SYMBOL);
		goto fail;
	}
	*meta = sym;
	if (plugin_abi_check(*meta, path, err, errlen) < 0)
		goto fail;
	if ((sym = dlsym(h, T2I_GENERATE_SYMBOL)) == NULL) {
		snprintf(err, errlen, "%s: missing symbol %s", path, T2I_GENERATE_SYMBOL);
		goto fail;
	}
	/* POSIX guarantees a data pointer from dlsym converts to a function. */
	*(void **)gen = sym;
	return h;
fail:
	dlclose(h);
	return NULL;
}

/* In the probe's child: what the plugin's own check says of opts, "" when
 * it has none or accepts them. */
static void
probe_options(void *h, const struct plugin_options *opts, char *out, size_t outlen)
{
	struct t2i_request req;
	struct t2i_error err;
	t2i_check_options_fn *check;
	void *sym = dlsym(h, T2I_CHECK_OPTIONS_SYMBOL);

	out[0] = '\0';
	if (sym == NULL || opts == NULL)
		return;
	*(void **)&check = sym;
	memset(&req, 0, sizeof(req));
	req.abi_version = T2I_ABI_VERSION;
	req.struct_size = sizeof(req);
	req.api_url = opts->api_url;
	req.model = opts->model;
	req.options_json = opts->options_json;
	req.api_key = req.prompt = req.negative_prompt = req.ratio = req.resolution = "";
	req.storyboard_id = req.resume_json = req.idempotency_key = "";
	memset(&err, 0, sizeof(err));
	err.abi_version = T2I_ABI_VERSION;
	err.struct_size = sizeof(err);
	if (check(&req, &err) != 0) {
		err.message[sizeof(err.message) - 1] = '\0';
		snprintf(out, outlen, "%s", err.message[0] != '\0' ? err.message
			 : "refused by the plugin's t2i_check_options");
	}
}

/* The child half of plugin_probe: one JSON line on fd, then _exit. */
static void
probe_child(const char *path, const struct plugin_options *opts, int fd)
{
	const struct t2i_plugin *meta = NULL;
	t2i_generate_fn *gen;
	char err[512], opt_err[512];
	void *h;
	json_t *o;
	char *s;
	int rc;

	if ((h = plugin_load(path, &meta, &gen, err, sizeof(err))) == NULL) {
		o = json_pack("{sb ss}", "ok", 0, "error", err);
	} else {
		probe_options(h, opts, opt_err, sizeof(opt_err));
		o = json_pack("{sb si ss ss ss sI ss}", "ok", 1, "abi", (int)meta->abi_version,
			      "name", meta->name, "version", meta->version ? meta->version : "",
			      "description", meta->description ? meta->description : "",
			      "flags", (json_int_t)plugin_flags(meta), "options_error", opt_err);
	}
	s = o != NULL ? jsontext_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s != NULL)
		(void)ipc_write_all(fd, s, strlen(s));
	rc = s != NULL ? 0 : 1;
	free(s);	/* nothing to free at _exit, but valgrind stays quiet */
	_exit(rc);
}

static void
probe_fill(struct plugin_info *info, const char *text)
{
	json_t *o = json_loads(text, 0, NULL);
	const char *e;

	if (o == NULL) {
		snprintf(info->error, sizeof(info->error), "%s: probe gave no answer", info->path);
		return;
	}
	info->ok = json_is_true(json_object_get(o, "ok"));
	if (info->ok) {
		info->abi_version = (unsigned)json_integer_value(json_object_get(o, "abi"));
		snprintf(info->plugin_name, sizeof(info->plugin_name), "%s",
			 json_string_value(json_object_get(o, "name")));
		snprintf(info->version, sizeof(info->version), "%s",
			 json_string_value(json_object_get(o, "version")));
		snprintf(info->description, sizeof(info->description), "%s",
			 json_string_value(json_object_get(o, "description")));
		info->flags = (uint32_t)json_integer_value(json_object_get(o, "flags"));
		e = json_string_value(json_object_get(o, "options_error"));
		snprintf(info->options_error, sizeof(info->options_error), "%s", e ? e : "");
	} else if ((e = json_string_value(json_object_get(o, "error"))) != NULL) {
		snprintf(info->error, sizeof(info->error), "%s", e);
	}
	json_decref(o);
}

/* Reads the child's answer with a deadline; kills it when it is late. */
static int
probe_wait(pid_t pid, int fd, struct plugin_info *info)
{
	char buf[4096];	/* an answer: two messages of 512 bytes and the names */
	size_t n = 0;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int status = 0, waited = 0;

	while (n < sizeof(buf) - 1 && waited < PROBE_TIMEOUT_MS) {
		ssize_t r;
		int pr = poll(&pfd, 1, 100);

		waited += 100;
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		if ((r = read(fd, buf + n, sizeof(buf) - 1 - n)) <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (waited >= PROBE_TIMEOUT_MS)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (waited >= PROBE_TIMEOUT_MS)
		snprintf(info->error, sizeof(info->error), "%s: probe timed out", info->path);
	else if (WIFSIGNALED(status))
		snprintf(info->error, sizeof(info->error), "%s: probe crashed: signal %d",
			 info->path, WTERMSIG(status));
	else
		probe_fill(info, buf);
	return 0;
}

int
plugin_probe(const char *path, struct plugin_info *info)
{
	return plugin_probe_options(path, NULL, info);
}

int
plugin_probe_options(const char *path, const struct plugin_options *opts,
		     struct plugin_info *info)
{
	int p[2];
	pid_t pid;

	snprintf(info->path, sizeof(info->path), "%s", path);
	info->ok = false;
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(info->error, sizeof(info->error), "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		snprintf(info->error, sizeof(info->error), "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		probe_child(path, opts, p[1]);
	}
	close(p[1]);
	probe_wait(pid, p[0], info);
	close(p[0]);
	return 0;
}

static int
info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct plugin_info *)a)->name, ((const struct plugin_info *)b)->name);
}

int
plugin_scan(const char *dir, struct plugin_info **out, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;
	struct plugin_info *list = NULL;
	int n = 0;

	*out = NULL;
	if (check_one(dir, true, err, errlen) < 0)
		return -1;
	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		struct plugin_info *nl;
		char path[4096];

		if (len < 4 || len - 3 >= sizeof(list->name) || strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		if ((nl = realloc(list, (size_t)(n + 1) * sizeof(*list))) == NULL)
			break;
		list = nl;
		memset(&list[n], 0, sizeof(list[n]));
		memcpy(list[n].name, de->d_name, len - 3);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		plugin_probe(path, &list[n]);
		n++;
	}
	closedir(d);
	if (n > 0)	/* qsort's base must not be NULL, even for no element */
		qsort(list, (size_t)n, sizeof(*list), info_cmp);
	*out = list;
	return n;
}
