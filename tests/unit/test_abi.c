/* Unit tests for the plugin ABI (include/t2istage/plugin.h) and for the two
 * pure checks of src/proc/plugin.c: plugin_abi_check() and plugin_check_perms().
 *
 * The _Static_asserts below pin the layout of ABI versions 1 and 2.  A plugin
 * built against an older header must keep working with a newer host, so none
 * of these numbers may ever change: members are only appended (and then
 * struct_size grows, which plugin_abi_check accepts).  If one of them fires,
 * the change broke every plugin already built; append the member at the end
 * instead, under a comment naming the new ABI version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin.h"
#include "t2istage/plugin.h"

_Static_assert(T2I_ABI_VERSION == 2, "this file pins ABI versions 1 and 2");
_Static_assert(T2I_STOP_NONE == 0 && T2I_STOP_CANCELLED == 1 && T2I_STOP_DEADLINE == 2 &&
		       T2I_STOP_BUDGET == 3 && T2I_STOP_SHUTDOWN == 4,
	       "stop reasons cross the ABI");
_Static_assert(T2I_CHECKPOINT_MAX == 16384, "the checkpoint limit is ABI");
_Static_assert(T2I_PLUGIN_NEEDS_API_KEY == 1, "plugin flag values cross the ABI");
_Static_assert(T2I_ERROR_MESSAGE_MAX == 512, "t2i_error.message size is ABI");
_Static_assert(T2I_OK == 0 && T2I_ERR_TRANSIENT == 1 && T2I_ERR_RATE_LIMITED == 2 &&
		       T2I_ERR_REJECTED == 3 && T2I_ERR_AUTH == 4 && T2I_ERR_QUOTA == 5,
	       "error class values cross the ABI");
_Static_assert(T2I_LOG_ERR == 3 && T2I_LOG_WARNING == 4 && T2I_LOG_INFO == 6 &&
		       T2I_LOG_DEBUG == 7,
	       "log levels cross the ABI");

/* The offsets below are those of the LP64 psABIs of x86_64 and aarch64 (the
 * targets we build plugins for): 8-byte pointers, and 8-byte alignment of
 * pointers, int64_t and double inside structs.  Other ABIs legitimately lay
 * the same declarations out differently (i386 has 4-byte pointers and aligns
 * int64_t and double to 4 inside structs), and a plugin is always built for
 * the host's own ABI, so pinning numbers there would only pin the compiler.
 * The fixed-width member types are checked everywhere. */
#if defined(__x86_64__) || defined(__aarch64__)
#define PIN(type, member, off) \
	_Static_assert(offsetof(struct type, member) == (off), #type "." #member " moved")

PIN(t2i_plugin, abi_version, 0);
PIN(t2i_plugin, struct_size, 4);
PIN(t2i_plugin, name, 8);
PIN(t2i_plugin, version, 16);
PIN(t2i_plugin, description, 24);
/* end of version 1: a version 1 plugin's struct_size is 32 */
PIN(t2i_plugin, flags, 32);
_Static_assert(sizeof(struct t2i_plugin) == 40, "t2i_plugin size");

PIN(t2i_request, abi_version, 0);
PIN(t2i_request, struct_size, 4);
PIN(t2i_request, api_url, 8);
PIN(t2i_request, api_key, 16);
PIN(t2i_request, model, 24);
PIN(t2i_request, prompt, 32);
PIN(t2i_request, negative_prompt, 40);
PIN(t2i_request, ratio, 48);
PIN(t2i_request, resolution, 56);
PIN(t2i_request, width, 64);
PIN(t2i_request, height, 68);
PIN(t2i_request, options_json, 72);
PIN(t2i_request, timeout_s, 80);
PIN(t2i_request, storyboard_id, 88);
PIN(t2i_request, storyboard_index, 96);
PIN(t2i_request, reserved0, 100);
PIN(t2i_request, connect_timeout_s, 104);
PIN(t2i_request, max_response_bytes, 112);
/* ABI version 2 */
PIN(t2i_request, resume_json, 120);
PIN(t2i_request, idempotency_key, 128);
_Static_assert(sizeof(struct t2i_request) == 136, "t2i_request size");

PIN(t2i_error, abi_version, 0);
PIN(t2i_error, struct_size, 4);
PIN(t2i_error, error_class, 8);
PIN(t2i_error, http_status, 12);
PIN(t2i_error, retry_after_ms, 16);
PIN(t2i_error, message, 24);
_Static_assert(sizeof(struct t2i_error) == 24 + T2I_ERROR_MESSAGE_MAX, "t2i_error size");

PIN(t2i_host, abi_version, 0);
PIN(t2i_host, struct_size, 4);
PIN(t2i_host, ctx, 8);
PIN(t2i_host, add_image, 16);
PIN(t2i_host, log, 24);
/* ABI version 2 */
PIN(t2i_host, checkpoint, 32);
PIN(t2i_host, progress, 40);
PIN(t2i_host, sleep, 48);
_Static_assert(sizeof(struct t2i_host) == 56, "t2i_host size");
#undef PIN
#endif

/* Member types, on every target. */
#define MSIZE(type, member, n) \
	_Static_assert(sizeof(((struct type *)0)->member) == (n), #type "." #member " size")
MSIZE(t2i_plugin, abi_version, 4);
MSIZE(t2i_plugin, struct_size, 4);
MSIZE(t2i_plugin, flags, 4);
MSIZE(t2i_request, abi_version, 4);
MSIZE(t2i_request, struct_size, 4);
MSIZE(t2i_request, width, 4);
MSIZE(t2i_request, height, 4);
MSIZE(t2i_request, timeout_s, sizeof(double));
MSIZE(t2i_request, storyboard_index, 4);
MSIZE(t2i_request, reserved0, 4);
MSIZE(t2i_request, connect_timeout_s, 8);
MSIZE(t2i_request, max_response_bytes, 8);
MSIZE(t2i_error, abi_version, 4);
MSIZE(t2i_error, struct_size, 4);
MSIZE(t2i_error, error_class, 4);
MSIZE(t2i_error, http_status, 4);
MSIZE(t2i_error, retry_after_ms, 8);
MSIZE(t2i_error, message, T2I_ERROR_MESSAGE_MAX);
MSIZE(t2i_host, abi_version, 4);
MSIZE(t2i_host, struct_size, 4);
#undef MSIZE

/* ---- plugin_abi_check ---- */

#define SO_PATH "/usr/lib/t2istage/plugins/demo.so"

static char err[1024];

/* The macro plugin authors use, where they use it: at file scope, where it
 * defines the data symbol the header declares. */
T2I_PLUGIN("demo", "1.0", "a demo");

static void
abi_refused(const struct t2i_plugin *p, const char *want)
{
	strcpy(err, "(no error)");
	if (plugin_abi_check(p, SO_PATH, err, sizeof(err)) == 0 || strstr(err, want) == NULL)
		print_error("want: %s\ngot:  %s\n", want, err);
	assert_int_equal(plugin_abi_check(p, SO_PATH, err, sizeof(err)), -1);
	/* Errors name the file and the symbol. */
	assert_memory_equal(err, SO_PATH ": ", strlen(SO_PATH ": "));
	assert_non_null(strstr(err, "symbol " T2I_PLUGIN_SYMBOL));
	assert_non_null(strstr(err, want));
	assert_null(strchr(err, '\n'));
}

static void
test_abi_good(void **state)
{
	struct t2i_plugin p = t2i_plugin;

	(void)state;
	assert_string_equal(T2I_PLUGIN_SYMBOL, "t2i_plugin");
	assert_string_equal(T2I_GENERATE_SYMBOL, "generate_image");
	assert_int_equal(t2i_plugin.abi_version, 2);
	assert_int_equal(t2i_plugin.struct_size, sizeof(struct t2i_plugin));
	assert_int_equal(t2i_plugin.flags, 0);
	assert_int_equal(plugin_flags(&t2i_plugin), 0);
	strcpy(err, "untouched");
	assert_int_equal(plugin_abi_check(&t2i_plugin, SO_PATH, err, sizeof(err)), 0);
	assert_string_equal(err, "untouched");

	/* A plugin built against the version 1 header still loads. */
	p.abi_version = 1;
	assert_int_equal(plugin_abi_check(&p, SO_PATH, err, sizeof(err)), 0);
	p.abi_version = T2I_ABI_VERSION;

	/* A newer plugin of the same ABI that appended members. */
	p.struct_size = sizeof(struct t2i_plugin) + 64;
	assert_int_equal(plugin_abi_check(&p, SO_PATH, err, sizeof(err)), 0);
	/* version and description are optional. */
	p.version = NULL;
	p.description = NULL;
	assert_int_equal(plugin_abi_check(&p, SO_PATH, err, sizeof(err)), 0);
}

static void
test_abi_flags(void **state)
{
	/* What T2I_PLUGIN_FLAGS defines (the file-scope T2I_PLUGIN above is
	 * that macro with no flags; a second definition of the symbol cannot
	 * live in this file). */
	const struct t2i_plugin flagged = { T2I_ABI_VERSION, sizeof(struct t2i_plugin), "demo",
					    "1.0", "a demo", T2I_PLUGIN_NEEDS_API_KEY };
	struct t2i_plugin p = flagged;

	(void)state;
	assert_int_equal(flagged.abi_version, 2);
	assert_int_equal(flagged.struct_size, sizeof(struct t2i_plugin));
	assert_int_equal(plugin_abi_check(&flagged, SO_PATH, err, sizeof(err)), 0);
	assert_int_equal(plugin_flags(&flagged), T2I_PLUGIN_NEEDS_API_KEY);
	assert_int_equal(plugin_flags(&t2i_plugin), 0);
	/* Bits this host does not know are passed on, for `plugins` to show. */
	p.flags = 0x80000001u;
	assert_int_equal(plugin_flags(&p), 0x80000001u);

	/* A plugin built against the version 1 header: its struct ends before
	 * flags, and what lies there is not its own. */
	p.abi_version = 1;
	p.struct_size = offsetof(struct t2i_plugin, flags);
	assert_int_equal(p.struct_size, 32);
	assert_int_equal(plugin_abi_check(&p, SO_PATH, err, sizeof(err)), 0);
	assert_int_equal(plugin_flags(&p), 0);
	/* Part of flags only: still none. */
	p.struct_size = offsetof(struct t2i_plugin, flags) + 2;
	assert_int_equal(plugin_abi_check(&p, SO_PATH, err, sizeof(err)), 0);
	assert_int_equal(plugin_flags(&p), 0);
	/* A version 2 plugin whose struct covers flags. */
	p.abi_version = 2;
	p.struct_size = offsetof(struct t2i_plugin, flags) + sizeof(p.flags);
	assert_int_equal(plugin_flags(&p), 0x80000001u);
}

static void
test_abi_refused(void **state)
{
	struct t2i_plugin good = { T2I_ABI_VERSION, sizeof(struct t2i_plugin), "demo", "1", "d",
				   0 };
	struct t2i_plugin p;
	static const uint32_t versions[] = { 0, 3, 999, UINT32_MAX };

	(void)state;
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		char want[64];

		p = good;
		p.abi_version = versions[i];
		snprintf(want, sizeof(want), "ABI version %u, this host speaks 1 to 2",
			 (unsigned)versions[i]);
		abi_refused(&p, want);
	}
	/* Version 1's members must all be there, whatever the version. */
	p = good;
	p.struct_size = offsetof(struct t2i_plugin, flags) - 1;
	abi_refused(&p, "struct_size 31, expected at least 32");
	p.abi_version = 1;
	abi_refused(&p, "struct_size 31, expected at least 32");
	p.struct_size = 8;
	abi_refused(&p, "struct_size 8, expected at least");
	p.struct_size = 0;
	abi_refused(&p, "struct_size 0");

	p = good;
	p.name = NULL;
	abi_refused(&p, "no name");
	p.name = "";
	abi_refused(&p, "no name");

	/* A tiny error buffer truncates, never overflows. */
	p = good;
	p.abi_version = 3;
	memset(err, 'x', sizeof(err));
	assert_int_equal(plugin_abi_check(&p, SO_PATH, err, 8), -1);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(err[8], 'x');
}

/* ---- plugin_check_perms ---- */

struct fixture {
	char dir[PATH_MAX];	/* mode 0755 */
	char path[PATH_MAX + 32];	/* dir/ok.so, mode 0755 */
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char tmpl[] = "/tmp/t2i-abi-XXXXXX";
	FILE *f;

	if (fx == NULL || mkdtemp(tmpl) == NULL || realpath(tmpl, fx->dir) == NULL ||
	    chmod(fx->dir, 0755) < 0)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/ok.so", fx->dir);
	if ((f = fopen(fx->path, "w")) == NULL)
		return -1;
	fclose(f);
	if (chmod(fx->path, 0755) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc;

	chmod(fx->dir, 0700);
	rc = nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return rc;
}

static void
perms_refused(const char *path, const char *want)
{
	strcpy(err, "(no error)");
	if (plugin_check_perms(path, err, sizeof(err)) == 0 || strstr(err, want) == NULL)
		print_error("path: %s\nwant: %s\ngot:  %s\n", path, want, err);
	assert_int_equal(plugin_check_perms(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, want));
	assert_null(strchr(err, '\n'));
}

static void
test_perms_ok(void **state)
{
	struct fixture *fx = *state;

	strcpy(err, "untouched");
	assert_int_equal(plugin_check_perms(fx->path, err, sizeof(err)), 0);
	assert_string_equal(err, "untouched");
	/* Read-only for everybody is fine too. */
	assert_int_equal(chmod(fx->path, 0444), 0);
	assert_int_equal(plugin_check_perms(fx->path, err, sizeof(err)), 0);
}

static void
test_perms_relative(void **state)
{
	struct fixture *fx = *state;
	char old[PATH_MAX];

	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(fx->dir), 0);
	/* Refused even though the file exists and is fine. */
	perms_refused("ok.so", "ok.so: refused: not an absolute path");
	perms_refused("./ok.so", "not an absolute path");
	perms_refused("", "not an absolute path");
	assert_int_equal(chdir(old), 0);
}

static void
test_perms_writable_file(void **state)
{
	struct fixture *fx = *state;
	char want[PATH_MAX + 64];

	snprintf(want, sizeof(want), "%s: refused: writable by group or others (mode 0775)",
		 fx->path);
	assert_int_equal(chmod(fx->path, 0775), 0);
	perms_refused(fx->path, want);
	assert_int_equal(chmod(fx->path, 0757), 0);
	perms_refused(fx->path, "(mode 0757)");
	assert_int_equal(chmod(fx->path, 0666), 0);
	perms_refused(fx->path, "writable by group or others");
}

static void
test_perms_writable_dir(void **state)
{
	struct fixture *fx = *state;
	char want[PATH_MAX + 64];

	snprintf(want, sizeof(want), "%s: refused: writable by group or others (mode 0775)",
		 fx->dir);
	assert_int_equal(chmod(fx->dir, 0775), 0);
	perms_refused(fx->path, want);
	assert_int_equal(chmod(fx->dir, 0757), 0);
	perms_refused(fx->path, "(mode 0757)");
	/* Sticky /tmp-like directories are refused as well. */
	assert_int_equal(chmod(fx->dir, 01777), 0);
	perms_refused(fx->path, "(mode 1777)");
}

static void
test_perms_not_regular(void **state)
{
	struct fixture *fx = *state;
	char sub[PATH_MAX + 32], fifo[PATH_MAX + 32], missing[PATH_MAX + 32];

	snprintf(sub, sizeof(sub), "%s/sub.so", fx->dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo.so", fx->dir);
	snprintf(missing, sizeof(missing), "%s/missing.so", fx->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(mkfifo(fifo, 0755), 0);
	perms_refused(sub, "sub.so: not a regular file");
	perms_refused(fifo, "fifo.so: not a regular file");
	perms_refused("/dev/null", "/dev/null: not a regular file");
	perms_refused(missing, "missing.so: No such file or directory");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abi_good),
		cmocka_unit_test(test_abi_flags),
		cmocka_unit_test(test_abi_refused),
		cmocka_unit_test_setup_teardown(test_perms_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perms_relative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perms_writable_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perms_writable_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perms_not_regular, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
