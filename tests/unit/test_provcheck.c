/* Unit tests of provcheck_one (src/provcheck.c): what a provider lacks given
 * the probe of its plugin.  provcheck_run, which probes, is driven through
 * the binary by tests/system/test_api_key_required.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "plugin.h"
#include "provcheck.h"

static char name_jm[] = "jm", plugin_jm[] = "jimeng", key[] = "sk-KEY", nokey[] = "",
	    file[] = "/etc/t2istage/t2istage.conf", path[] = "(built-in defaults)";

static struct config_provider providers[2];
static struct config cfg = { .path = path, .nproviders = 2, .providers = providers };

static struct plugin_info
probe(bool ok, uint32_t flags)
{
	struct plugin_info info;

	memset(&info, 0, sizeof(info));
	info.ok = ok;
	info.flags = flags;
	if (!ok)
		strcpy(info.error, "/p/jimeng.so: missing symbol t2i_plugin");
	return info;
}

static void
setup_providers(void)
{
	memset(providers, 0, sizeof(providers));
	for (int i = 0; i < 2; i++) {
		providers[i].name = name_jm;
		providers[i].plugin = plugin_jm;
		providers[i].api_key = nokey;
	}
	providers[1].source_file = file;
	providers[1].source_line = 42;
}

static void
test_needs_key(void **state)
{
	struct plugin_info info = probe(true, T2I_PLUGIN_NEEDS_API_KEY);
	char err[512];

	(void)state;
	setup_providers();
	strcpy(err, "untouched");
	assert_int_equal(provcheck_one(&cfg, 1, &info, err, sizeof(err)), -1);
	assert_string_equal(err, "/etc/t2istage/t2istage.conf:42: providers[1].api_key: missing "
				 "(plugin jimeng needs an api key: set api_key or api_key_file)");
	/* Without a group to point at (the built-in provider): no line. */
	assert_int_equal(provcheck_one(&cfg, 0, &info, err, sizeof(err)), -1);
	assert_string_equal(err, "(built-in defaults): providers[0].api_key: missing (plugin "
				 "jimeng needs an api key: set api_key or api_key_file)");
	providers[1].api_key = key;
	strcpy(err, "untouched");
	assert_int_equal(provcheck_one(&cfg, 1, &info, err, sizeof(err)), 0);
	assert_string_equal(err, "untouched");
}

static void
test_flags_and_refusals(void **state)
{
	struct plugin_info none = probe(true, 0), other = probe(true, 0x80000000u);
	struct plugin_info refused = probe(false, 0);
	char err[512];

	(void)state;
	setup_providers();
	/* No flag, or only bits this host does not know: no key needed. */
	assert_int_equal(provcheck_one(&cfg, 1, &none, err, sizeof(err)), 0);
	assert_int_equal(provcheck_one(&cfg, 1, &other, err, sizeof(err)), 0);
	assert_int_equal(provcheck_one(&cfg, 1, &refused, err, sizeof(err)), -1);
	assert_string_equal(err, "provider jm: /p/jimeng.so: missing symbol t2i_plugin");
	/* A small buffer truncates. */
	assert_int_equal(provcheck_one(&cfg, 1, &refused, err, 8), -1);
	assert_string_equal(err, "provide");
}

/* A refusal of t2i_check_options names the provider's group and the key;
 * a missing key is reported first. */
static void
test_options_refused(void **state)
{
	struct plugin_info info = probe(true, 0);
	char err[1024];

	(void)state;
	setup_providers();
	strcpy(info.options_error, "comfyui: options.workflow: /w.json: not JSON");
	assert_int_equal(provcheck_one(&cfg, 1, &info, err, sizeof(err)), -1);
	assert_string_equal(err, "/etc/t2istage/t2istage.conf:42: providers[1].options: comfyui: "
				 "options.workflow: /w.json: not JSON");
	info.flags = T2I_PLUGIN_NEEDS_API_KEY;
	assert_int_equal(provcheck_one(&cfg, 1, &info, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "providers[1].api_key: missing"));
	info.flags = 0;
	info.options_error[0] = '\0';
	assert_int_equal(provcheck_one(&cfg, 1, &info, err, sizeof(err)), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_needs_key),
		cmocka_unit_test(test_flags_and_refusals),
		cmocka_unit_test(test_options_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
