/* The asynchronous plugins facing a host of plugin ABI version 1, whose
 * struct t2i_host ends before checkpoint, progress and sleep: dashscope
 * refuses to submit (a task it could not resume would be paid twice), and
 * neither plugin reads past the end of that struct.  Today's workers are all
 * of version 2, so only a call like this one shows it.  The plugins are
 * loaded from the build directory of this test (BUILD/plugins). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t2istage/plugin.h"

static char build_dir[PATH_MAX];
static int images;

static int
add_image(void *ctx, const char *url, const void *bytes, size_t size)
{
	(void)ctx, (void)url, (void)bytes, (void)size;
	images++;
	return 0;
}

static void
host_log(void *ctx, int level, const char *fmt, ...)
{
	(void)ctx, (void)level, (void)fmt;
}

static void
call_v1(const char *plugin, const char *options, struct t2i_error *err, int *rc)
{
	char path[PATH_MAX + 32];
	struct t2i_host host;
	struct t2i_request req;
	void *so;
	t2i_generate_fn *gen;

	snprintf(path, sizeof(path), "%s/plugins/%s.so", build_dir, plugin);
	if ((so = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
		fail_msg("%s (build the plugins first: make all)", dlerror());
	*(void **)&gen = dlsym(so, T2I_GENERATE_SYMBOL);
	assert_non_null(gen);
	/* A version 1 host: struct_size ends before checkpoint, progress and
	 * sleep, which hold poison that must never be called. */
	memset(&host, 0xA5, sizeof(host));
	host.abi_version = 1;
	host.struct_size = offsetof(struct t2i_host, checkpoint);
	host.ctx = NULL;
	host.add_image = add_image;
	host.log = host_log;
	memset(&req, 0, sizeof(req));
	req.abi_version = 1;
	req.struct_size = offsetof(struct t2i_request, resume_json);
	/* Nothing listens on port 1: a request, if one were made, fails. */
	req.api_url = "http://127.0.0.1:1";
	req.api_key = "sk-v1-host-KEY";
	req.model = req.negative_prompt = "";
	req.prompt = "a lighthouse";
	req.ratio = "16:9";
	req.resolution = "1k";
	req.width = 1024;
	req.height = 576;
	req.options_json = options;
	req.timeout_s = 5;
	req.connect_timeout_s = 2;
	req.storyboard_id = "sb-1";
	req.storyboard_index = 1;
	req.max_response_bytes = 1 << 20;
	memset(err, 0, sizeof(*err));
	err->abi_version = 1;
	err->struct_size = sizeof(*err);
	*rc = gen(&req, &host, err);
	dlclose(so);
}

static void
test_dashscope_refuses_to_submit(void **state)
{
	struct t2i_error err;
	int rc;

	(void)state;
	images = 0;
	call_v1("dashscope", "{\"poll_interval\": 0.01}", &err, &rc);
	assert_int_equal(rc, -1);
	assert_int_equal(err.error_class, T2I_ERR_REJECTED);
	assert_int_equal(err.http_status, 0);	/* no request was made */
	assert_non_null(strstr(err.message, "dashscope: this host cannot checkpoint a task "
					     "(plugin ABI version 1)"));
	assert_non_null(strstr(err.message, "paid twice"));
	assert_int_equal(images, 0);
}

static void
test_comfyui_runs_without_resume(void **state)
{
	char wf[PATH_MAX + 32], opts[PATH_MAX + 128];
	struct t2i_error err;
	FILE *f;
	int rc;

	(void)state;
	snprintf(wf, sizeof(wf), "%s/tests/unit/v1host-workflow.json", build_dir);
	assert_non_null(f = fopen(wf, "w"));
	fputs("{\"6\": {\"class_type\": \"CLIPTextEncode\", \"inputs\": {\"text\": "
	      "\"%prompt%\"}}}", f);
	fclose(f);
	snprintf(opts, sizeof(opts), "{\"workflow\": \"%s\", \"poll_interval\": 0.01}", wf);
	call_v1("comfyui", opts, &err, &rc);
	/* It went on to queue the prompt (there was nothing to look up without
	 * an idempotency key): the connection failed, a transient error. */
	assert_int_equal(rc, -1);
	assert_int_equal(err.error_class, T2I_ERR_TRANSIENT);
	assert_non_null(strstr(err.message, "comfyui: "));
	assert_null(strstr(err.message, "sk-v1-host-KEY"));
	remove(wf);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dashscope_refuses_to_submit),
		cmocka_unit_test(test_comfyui_runs_without_resume),
	};
	char self[PATH_MAX];

	/* argv[0] is BUILD/tests/unit/test_v1host. */
	(void)argc;
	if (realpath(argv[0], self) == NULL)
		return 1;
	snprintf(build_dir, sizeof(build_dir), "%s", dirname(dirname(dirname(self))));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
