/* Unit tests for src/core/config.c: the configuration file loader.  Each test
 * works in its own mkdtemp() directory holding the config file, fake plugin
 * files (empty, mode 0755: config only checks that they exist) and key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "paths.h"

/* Every config below starts with this line, so that line numbers in the
 * expected errors count from 2. */
#define PLUGINS "plugins = { dir = \"plugins\"; };\n"

struct fixture {
	char dir[PATH_MAX];	/* realpath of the temporary directory */
	char conf[PATH_MAX + 16];	/* dir/t2istage.conf */
	char err[1024];
};

static void
write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
make_dir(const char *dir, const char *name)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char tmpl[] = "/tmp/t2i-config-XXXXXX";

	if (fx == NULL || mkdtemp(tmpl) == NULL || realpath(tmpl, fx->dir) == NULL)
		return -1;
	snprintf(fx->conf, sizeof(fx->conf), "%s/t2istage.conf", fx->dir);
	make_dir(fx->dir, "plugins");
	write_file(fx->dir, "plugins/placeholder.so", "", 0755);
	write_file(fx->dir, "plugins/jimeng.so", "", 0755);
	*state = fx;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	free(fx);
	return rc;
}

static struct config *
load(struct fixture *fx, const char *text)
{
	write_file(fx->dir, "t2istage.conf", text, 0644);
	strcpy(fx->err, "(no error)");
	return config_load(fx->conf, fx->err, sizeof(fx->err));
}

/* Asserts that text is refused with exactly "CONF:LINE: KEY: " followed by a
 * message containing want, on one line. */
static void
refused(struct fixture *fx, const char *text, int line, const char *key, const char *want)
{
	char prefix[PATH_MAX + 256];
	struct config *cfg = load(fx, text);

	snprintf(prefix, sizeof(prefix), "%s:%d: %s: ", fx->conf, line, key);
	if (cfg != NULL || strncmp(fx->err, prefix, strlen(prefix)) != 0 ||
	    strstr(fx->err + strlen(prefix), want) == NULL)
		print_error("config:\n%s\nwant: %s...%s\ngot:  %s\n", text, prefix, want, fx->err);
	assert_null(cfg);
	assert_memory_equal(fx->err, prefix, strlen(prefix));
	assert_non_null(strstr(fx->err + strlen(prefix), want));
	assert_null(strchr(fx->err, '\n'));
}

static void
assert_path(const char *got, const char *dir, const char *rel)
{
	char want[PATH_MAX + 64];

	snprintf(want, sizeof(want), "%s/%s", dir, rel);
	assert_string_equal(got, want);
}

static void
test_defaults(void **state)
{
	struct fixture *fx = *state;
	char old[PATH_MAX];
	struct config *cfg;

	assert_non_null(getcwd(old, sizeof(old)));
	make_dir(fx->dir, "build");
	make_dir(fx->dir, "build/plugins");
	write_file(fx->dir, "build/plugins/placeholder.so", "", 0755);
	assert_int_equal(chdir(fx->dir), 0);
	cfg = config_load(NULL, fx->err, sizeof(fx->err));
	assert_int_equal(chdir(old), 0);
	assert_non_null(cfg);
	assert_string_equal(cfg->path, "(built-in defaults)");
	assert_path(cfg->database, fx->dir, "var/t2istage.db");
	assert_path(cfg->storage_dir, fx->dir, "var/images");
	assert_path(cfg->plugins_dir, fx->dir, "build/plugins");
	assert_true(cfg->thumbnails);
	assert_int_equal(cfg->workers_max, 8);
	assert_int_equal(cfg->batch_size, 3);
	assert_string_equal(cfg->ratio, "16:9");
	assert_string_equal(cfg->resolution, "2k");
	assert_true(cfg->timeout == 900.0);
	assert_int_equal(cfg->retry_attempts, 3);
	assert_true(cfg->retry_backoff == 1.0 && cfg->retry_backoff_max == 60.0);
	assert_true(cfg->cache_enabled);
	assert_string_equal(cfg->http_listen, "127.0.0.1:8080");
	assert_null(cfg->http_token);
	assert_int_equal(cfg->nproviders, 1);
	assert_string_equal(cfg->providers[0].name, "placeholder");
	assert_string_equal(cfg->providers[0].plugin, "placeholder");
	assert_path(cfg->providers[0].plugin_path, fx->dir, "build/plugins/placeholder.so");
	assert_string_equal(cfg->providers[0].model, "placeholder-1");
	assert_string_equal(cfg->providers[0].api_url, "");
	assert_string_equal(cfg->providers[0].api_key, "");
	assert_string_equal(cfg->providers[0].options_json, "{}");
	assert_int_equal(cfg->providers[0].concurrency, 4);
	assert_true(cfg->providers[0].is_default);
	assert_ptr_equal(config_default_provider(cfg), &cfg->providers[0]);
	assert_ptr_equal(config_provider(cfg, "placeholder"), &cfg->providers[0]);
	assert_null(config_provider(cfg, "jimeng"));
	config_free(cfg);
}

static void
test_defaults_without_plugin(void **state)
{
	struct fixture *fx = *state;
	char old[PATH_MAX], want[PATH_MAX + 128];
	struct config *cfg;

	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(fx->dir), 0);
	cfg = config_load(NULL, fx->err, sizeof(fx->err));
	assert_int_equal(chdir(old), 0);
	assert_null(cfg);
	snprintf(want, sizeof(want), "(built-in defaults): providers[0].plugin: plugin not found: "
		 "%s/build/plugins/placeholder.so", fx->dir);
	assert_string_equal(fx->err, want);
}

static const char full_conf[] =
	"database = \"db/t2istage.db\";\n"
	"storage = { dir = \"/srv/images\"; thumbnails = false; };\n"
	"plugins = { dir = \"./plugins/\"; };\n"
	"workers = { max = 16; batch_size = 5; };\n"
	"generation = { ratio = \"9:16\"; resolution = \"4k\"; timeout = 1200.5; };\n"
	"retry = { attempts = 5; backoff = 2; backoff_max = 30.0; rate_limit_wait = 90; };\n"
	"cache = { enabled = false; };\n"
	"http = { listen = \"0.0.0.0:9000\"; token = \"tok-INLINE\"; };\n"
	"providers = (\n"
	"  { name = \"jimeng\"; plugin = \"jimeng\"; default = true;\n"
	"    api_url = \"http://localhost:5100/v1/images/generations\";\n"
	"    api_key_file = \"keys/jimeng.key\";\n"
	"    model = \"jimeng-4.0\"; concurrency = 2; options = { sample_strength = 0.5; };\n"
	"    rate = 20.5; cost = 0.04; budget = { per_run = 10; per_day = 200.0; }; },\n"
	"  { name = \"preview\"; plugin = \"placeholder\"; model = \"placeholder-1\"; }\n"
	");\n";

static void
test_full_file(void **state)
{
	struct fixture *fx = *state;
	struct config *cfg;
	const struct config_provider *p;

	make_dir(fx->dir, "keys");
	write_file(fx->dir, "keys/jimeng.key", "sk-FILE-SECRET \n\n", 0600);
	cfg = load(fx, full_conf);
	if (cfg == NULL)
		print_error("%s\n", fx->err);
	assert_non_null(cfg);
	assert_string_equal(cfg->path, fx->conf);
	assert_path(cfg->database, fx->dir, "db/t2istage.db");
	assert_string_equal(cfg->storage_dir, "/srv/images");
	assert_false(cfg->thumbnails);
	assert_path(cfg->plugins_dir, fx->dir, "plugins");
	assert_int_equal(cfg->workers_max, 16);
	assert_int_equal(cfg->batch_size, 5);
	assert_string_equal(cfg->ratio, "9:16");
	assert_string_equal(cfg->resolution, "4k");
	assert_true(cfg->timeout == 1200.5);
	assert_int_equal(cfg->retry_attempts, 5);
	assert_true(cfg->retry_backoff == 2.0 && cfg->retry_backoff_max == 30.0);
	assert_false(cfg->cache_enabled);
	assert_string_equal(cfg->http_listen, "0.0.0.0:9000");
	assert_string_equal(cfg->http_token, "tok-INLINE");
	assert_int_equal(cfg->nproviders, 2);
	p = config_default_provider(cfg);
	assert_ptr_equal(p, &cfg->providers[0]);
	assert_string_equal(p->name, "jimeng");
	assert_path(p->plugin_path, fx->dir, "plugins/jimeng.so");
	assert_string_equal(p->api_url, "http://localhost:5100/v1/images/generations");
	assert_string_equal(p->api_key, "sk-FILE-SECRET");
	assert_string_equal(p->model, "jimeng-4.0");
	assert_int_equal(p->concurrency, 2);
	assert_string_equal(p->options_json, "{\"sample_strength\":0.5}");
	/* Where each group opens, for errors found after loading (provcheck). */
	assert_string_equal(p->source_file, fx->conf);
	assert_int_equal(p->source_line, 10);
	assert_true(p->rate == 20.5 && p->cost == 0.04);
	assert_true(p->budget_run == 10.0 && p->budget_day == 200.0);
	assert_true(cfg->retry_rate_limit_wait == 90.0);
	p = config_provider(cfg, "preview");
	assert_ptr_equal(p, &cfg->providers[1]);
	assert_int_equal(p->source_line, 15);
	/* No rate, no price, no budget unless given. */
	assert_true(p->rate == 0 && p->cost == 0 && p->budget_run < 0 && p->budget_day < 0);
	assert_string_equal(p->plugin, "placeholder");
	assert_path(p->plugin_path, fx->dir, "plugins/placeholder.so");
	assert_string_equal(p->api_key, "");
	assert_false(p->is_default);
	assert_int_equal(p->concurrency, 4);
	config_free(cfg);
}

/* Missing groups take the defaults; no providers list means the built-in
 * placeholder provider; plugin defaults to the provider's name. */
static void
test_partial_file(void **state)
{
	struct fixture *fx = *state;
	struct config *cfg = load(fx, PLUGINS "workers = { max = 2; };\n");

	assert_non_null(cfg);
	assert_int_equal(cfg->workers_max, 2);
	assert_int_equal(cfg->batch_size, 3);
	assert_true(cfg->timeout == 900.0);
	assert_int_equal(cfg->nproviders, 1);
	assert_string_equal(cfg->providers[0].name, "placeholder");
	assert_null(cfg->providers[0].source_file);	/* built in: no line */
	assert_string_equal(cfg->providers[0].model, "placeholder-1");
	assert_path(cfg->providers[0].plugin_path, fx->dir, "plugins/placeholder.so");
	config_free(cfg);

	cfg = load(fx, PLUGINS "providers = ( { name = \"jimeng\"; }, { name = \"x\"; plugin = "
		   "\"jimeng\"; } );\n");
	assert_non_null(cfg);
	assert_string_equal(cfg->providers[0].plugin, "jimeng");
	assert_null(config_default_provider(cfg));	/* two, none marked */
	config_free(cfg);

	cfg = load(fx, PLUGINS "providers = ();\n");	/* no provider at all */
	assert_non_null(cfg);
	assert_int_equal(cfg->nproviders, 0);
	assert_null(config_default_provider(cfg));
	config_free(cfg);
}

static void
test_relative_paths(void **state)
{
	struct fixture *fx = *state;
	char old[PATH_MAX];
	struct config *cfg;

	make_dir(fx->dir, "etc");
	make_dir(fx->dir, "etc/keys");
	write_file(fx->dir, "etc/keys/token", "tok-FILE\n", 0600);
	write_file(fx->dir, "etc/t2.conf",
		   "database = \"../var/./t2.db\";\n"
		   "storage = { dir = \"images//full/\"; };\n"
		   "plugins = { dir = \"../plugins\"; };\n"
		   "http = { token_file = \"keys/token\"; };\n", 0644);
	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(fx->dir), 0);
	cfg = config_load("etc/t2.conf", fx->err, sizeof(fx->err));
	assert_int_equal(chdir(old), 0);
	if (cfg == NULL)
		print_error("%s\n", fx->err);
	assert_non_null(cfg);
	assert_path(cfg->path, fx->dir, "etc/t2.conf");
	assert_path(cfg->database, fx->dir, "var/t2.db");
	assert_path(cfg->storage_dir, fx->dir, "etc/images/full");
	assert_path(cfg->plugins_dir, fx->dir, "plugins");
	assert_string_equal(cfg->http_token, "tok-FILE");
	config_free(cfg);
}

static void
test_options_json(void **state)
{
	struct fixture *fx = *state;
	struct config *cfg = load(fx, PLUGINS
		"providers = ( { name = \"jimeng\"; options = {\n"
		"  z = 1; f = 0.25; g = 0.6; h = 0.30000000000000004; big = 10000000000L;\n"
		"  neg = -3; ok = true;\n"
		"  s = \"a \\\"quoted\\\" \xc3\xa9\";\n"
		"  nested = { y = false; b = \"x\"; empty = { }; };\n"
		"  arr = [ 1, 2, 3 ]; list = ( 1, 2.5, \"x\", { k = 1; }, ( ) );\n"
		"}; } );\n");

	if (cfg == NULL)
		print_error("%s\n", fx->err);
	assert_non_null(cfg);
	assert_string_equal(cfg->providers[0].options_json,
			    "{\"arr\":[1,2,3],\"big\":10000000000,\"f\":0.25,\"g\":0.6,"
			    "\"h\":0.30000000000000004,"
			    "\"list\":[1,2.5,\"x\",{\"k\":1},[]],\"neg\":-3,"
			    "\"nested\":{\"b\":\"x\",\"empty\":{},\"y\":false},\"ok\":true,"
			    "\"s\":\"a \\\"quoted\\\" \xc3\xa9\",\"z\":1}");
	config_free(cfg);
	refused(fx, PLUGINS "providers = ( { name = \"jimeng\"; options = 3; } );", 2,
		"providers[0].options", "expected a group");
	refused(fx, PLUGINS "providers = ( { name = \"jimeng\"; options = {\n l = ( 1,\n"
		"\"\\xff\" ); }; } );", 4, "providers[0].options.l[1]", "not expressible in JSON");
}

static void
test_unknown_keys(void **state)
{
	struct fixture *fx = *state;

	refused(fx, PLUGINS "\ncolour = \"blue\";\n", 3, "colour", "unknown key");
	refused(fx, PLUGINS "workers = {\n max = 2;\n maxx = 3; };\n", 4, "workers.maxx",
		"unknown key");
	refused(fx, PLUGINS "providers = ( { name = \"jimeng\"; },\n { name = \"b\";\n modle = 1; } );",
		4, "providers[1].modle", "unknown key");
	refused(fx, PLUGINS "http = { tokenfile = \"x\"; };", 2, "http.tokenfile", "unknown key");
}

static void
test_wrong_types(void **state)
{
	struct fixture *fx = *state;

	refused(fx, PLUGINS "workers = { max = \"8\"; };", 2, "workers.max", "expected an integer");
	refused(fx, PLUGINS "workers = { max = 8.0; };", 2, "workers.max", "expected an integer");
	refused(fx, PLUGINS "storage = { thumbnails = 1; };", 2, "storage.thumbnails",
		"expected a boolean");
	refused(fx, PLUGINS "cache = { enabled = \"yes\"; };", 2, "cache.enabled",
		"expected a boolean");
	refused(fx, PLUGINS "generation = { timeout = \"900\"; };", 2, "generation.timeout",
		"expected a number");
	refused(fx, PLUGINS "database = 5;", 2, "database", "expected a string");
	refused(fx, PLUGINS "storage = \"/x\";", 2, "storage", "expected a group");
	refused(fx, PLUGINS "providers = { name = \"a\"; };", 2, "providers", "expected a list");
	refused(fx, PLUGINS "providers = ( \"a\" );", 2, "providers[0]", "expected a group");
	refused(fx, PLUGINS "providers = ( { name = \"a\";\n default = 1; } );", 3,
		"providers[0].default", "expected a boolean");
	refused(fx, PLUGINS "providers = ( { name = 7; } );", 2, "providers[0].name",
		"expected a string");
	refused(fx, PLUGINS "database = \"\";", 2, "database", "must not be empty");
}

static void
test_out_of_range(void **state)
{
	struct fixture *fx = *state;

	refused(fx, PLUGINS "workers = { max = 0; };", 2, "workers.max", "between 1 and 256");
	refused(fx, PLUGINS "workers = { max = 257; };", 2, "workers.max", "between 1 and 256");
	refused(fx, PLUGINS "workers = { max = 10000000000L; };", 2, "workers.max", "between");
	refused(fx, PLUGINS "workers = { batch_size = 1001; };", 2, "workers.batch_size",
		"between 1 and 1000");
	refused(fx, PLUGINS "generation = { timeout = 0; };", 2, "generation.timeout", "more than 0");
	refused(fx, PLUGINS "generation = { timeout = 86400.5; };", 2, "generation.timeout",
		"at most 86400");
	refused(fx, PLUGINS "generation = { ratio = \"5:4\"; };", 2, "generation.ratio",
		"unknown ratio \"5:4\"");
	refused(fx, PLUGINS "generation = { resolution = \"8k\"; };", 2, "generation.resolution",
		"unknown resolution");
	refused(fx, PLUGINS "retry = { attempts = 0; };", 2, "retry.attempts", "between 1 and 100");
	refused(fx, PLUGINS "retry = { attempts = 101; };", 2, "retry.attempts", "between 1 and 100");
	refused(fx, PLUGINS "retry = { backoff = -1; };", 2, "retry.backoff", "negative");
	refused(fx, PLUGINS "retry = { backoff = 5;\n backoff_max = 2.0; };", 3, "retry.backoff_max",
		"at least retry.backoff");
	refused(fx, PLUGINS "retry = { backoff = 100; };", 2, "retry.backoff",
		"more than retry.backoff_max (60)");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\"; concurrency = 0; } );",
		2, "providers[0].concurrency", "between 1 and 64");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\"; rate = -1; } );",
		2, "providers[0].rate", "more than 0");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\"; rate = 0; } );",
		2, "providers[0].rate", "more than 0");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\";\n rate = \"20\"; } );",
		3, "providers[0].rate", "expected a number");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\"; cost = -0.5; } );",
		2, "providers[0].cost", "from 0");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\"; cost = \"cheap\"; } );",
		2, "providers[0].cost", "expected a number");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\";\n"
		"budget = { per_day = -3; }; } );", 3, "providers[0].budget.per_day", "from 0");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\";\n"
		"budget = { per_week = 3; }; } );", 3, "providers[0].budget.per_week", "unknown key");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\"; budget = 5; } );",
		2, "providers[0].budget", "expected a group");
	refused(fx, PLUGINS "retry = { rate_limit_wait = -1; };", 2, "retry.rate_limit_wait",
		"from 0");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\"; concurrency = 65; } );",
		2, "providers[0].concurrency", "between 1 and 64");
}

static void
test_provider_errors(void **state)
{
	struct fixture *fx = *state;
	char want[PATH_MAX + 64];

	snprintf(want, sizeof(want), "plugin not found: %s/plugins/nosuch.so", fx->dir);
	refused(fx, PLUGINS "providers = ( { name = \"a\";\n plugin = \"nosuch\"; } );", 3,
		"providers[0].plugin", want);
	snprintf(want, sizeof(want), "plugin not found: %s/plugins/other.so", fx->dir);
	refused(fx, PLUGINS "providers = (\n { name = \"other\"; } );", 3, "providers[0].plugin",
		want);
	refused(fx, PLUGINS "providers = ( { name = \"jimeng\"; },\n { name = \"jimeng\"; } );", 3,
		"providers[1].name", "duplicate provider name \"jimeng\"");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"jimeng\"; default = true; },\n"
		"{ name = \"b\"; plugin = \"jimeng\";\n default = true; } );", 4,
		"providers[1].default", "more than one default");
	refused(fx, PLUGINS "providers = ( { name = \"bad name\"; } );", 2, "providers[0].name",
		"[A-Za-z0-9_.-]{1,64}");
	refused(fx, PLUGINS "providers = ( { name = \"a\"; plugin = \"../jimeng\"; } );", 2,
		"providers[0].plugin", "[A-Za-z0-9_.-]{1,64}");
	refused(fx, PLUGINS "providers = ( { name = \"a123456789a123456789a123456789a123456789"
		"a123456789a123456789abcde\"; } );", 2, "providers[0].name", "must match");
	refused(fx, PLUGINS "providers = (\n { model = \"m\"; } );", 3, "providers[0].name",
		"missing");
	refused(fx, PLUGINS "http = { token = \"t\";\n token_file = \"f\"; };", 3, "http.token_file",
		"either token or token_file");
}

/* Secrets must not appear in any error, including the errors about them. */
static void
test_secrets(void **state)
{
	struct fixture *fx = *state;

	refused(fx, PLUGINS "providers = ( { name = \"jimeng\"; api_key = \"sk-INLINE\";\n"
		"api_key_file = \"k\"; } );", 3, "providers[0].api_key_file",
		"either api_key or api_key_file");
	assert_null(strstr(fx->err, "sk-INLINE"));
	write_file(fx->dir, "key", "sk-FROM-FILE\n", 0600);
	refused(fx, PLUGINS "providers = ( { name = \"jimeng\"; api_key_file = \"key\";\n"
		"concurrency = 0; } );", 3, "providers[0].concurrency", "between");
	assert_null(strstr(fx->err, "sk-FROM-FILE"));
	refused(fx, PLUGINS "http = { token = \"tok-INLINE\"; };\nbogus = 1;", 3, "bogus",
		"unknown key");
	assert_null(strstr(fx->err, "tok-INLINE"));
	refused(fx, PLUGINS "providers = ( { name = \"jimeng\";\n api_key_file = \"nokey\"; } );", 3,
		"providers[0].api_key_file", "cannot read");
	assert_non_null(strstr(fx->err, "/nokey: No such file or directory"));
	write_file(fx->dir, "empty", " \n", 0600);
	refused(fx, PLUGINS "http = { token_file = \"empty\"; };", 2, "http.token_file", "is empty");
	refused(fx, PLUGINS "http = { token_file = \"plugins\"; };", 2, "http.token_file",
		"cannot read");
}

/* Secret files named through the environment: systemd's credentials. */
static void
test_secret_paths_from_the_environment(void **state)
{
	struct fixture *fx = *state;
	char creds[PATH_MAX + 16];
	struct config *cfg;

	snprintf(creds, sizeof(creds), "%s/creds", fx->dir);
	make_dir(fx->dir, "creds");
	make_dir(fx->dir, "etc");
	write_file(fx->dir, "creds/t2istage.token", "tok-CRED\n", 0600);
	write_file(fx->dir, "creds/jimeng.key", "sk-CRED\n", 0600);
	write_file(fx->dir, "etc/t2istage.token", "tok-ETC\n", 0600);
	write_file(fx->dir, "$x", "tok-DOLLAR\n", 0600);
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", creds, 1), 0);
	cfg = load(fx, PLUGINS "http = { token_file = \"${CREDENTIALS_DIRECTORY}/t2istage.token\"; };\n"
		   "providers = ( { name = \"jimeng\";\n"
		   "  api_key_file = \"$CREDENTIALS_DIRECTORY/jimeng.key\"; } );\n");
	assert_non_null(cfg);
	assert_string_equal(cfg->http_token, "tok-CRED");
	assert_string_equal(cfg->providers[0].api_key, "sk-CRED");
	config_free(cfg);
	cfg = load(fx, PLUGINS "http = { token_file = \"${CREDENTIALS_DIRECTORY:-etc}/t2istage.token\"; };");
	assert_non_null(cfg);
	assert_string_equal(cfg->http_token, "tok-CRED");
	config_free(cfg);

	/* Outside the unit the default applies (unset or empty alike), and a
	 * relative result is taken against the file's directory. */
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", "", 1), 0);
	cfg = load(fx, PLUGINS "http = { token_file = \"${CREDENTIALS_DIRECTORY:-etc}/t2istage.token\"; };");
	assert_non_null(cfg);
	assert_string_equal(cfg->http_token, "tok-ETC");
	config_free(cfg);
	assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	cfg = load(fx, PLUGINS "http = { token_file = \"$$x\"; };");
	assert_non_null(cfg);
	assert_string_equal(cfg->http_token, "tok-DOLLAR");
	config_free(cfg);

	/* Unset without a default, or a "$" that starts nothing: errors. */
	refused(fx, PLUGINS "http = {\n token_file = \"${CREDENTIALS_DIRECTORY}/t2istage.token\"; };",
		3, "http.token_file", "$CREDENTIALS_DIRECTORY is not set (systemd sets it");
	refused(fx, PLUGINS "providers = ( { name = \"jimeng\";\n"
		"api_key_file = \"$NO_SUCH_T2I_VAR/k\"; } );", 3, "providers[0].api_key_file",
		"$NO_SUCH_T2I_VAR is not set");
	refused(fx, PLUGINS "http = { token_file = \"${CREDENTIALS_DIRECTORY/x\"; };", 2,
		"http.token_file", "\"$\" at offset 0 starts no $NAME");
	refused(fx, PLUGINS "http = { token_file = \"a/$1\"; };", 2, "http.token_file",
		"\"$\" at offset 2 starts no $NAME");
}

/* "whsec_" + base64 of the bytes 1..32 (the Standard Webhooks form). */
#define WHSEC "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

static void
test_webhooks(void **state)
{
	struct fixture *fx = *state;
	struct config *cfg;
	const struct config_webhook *w;

	cfg = load(fx, PLUGINS);
	assert_non_null(cfg);
	assert_int_equal(cfg->nwebhooks, 0);
	assert_true(cfg->webhook_retry_for == 86400.0);
	config_free(cfg);

	write_file(fx->dir, "hook.secret", WHSEC "\n", 0600);
	cfg = load(fx, PLUGINS "webhook_retry_for = 3600;\n"
		   "webhooks = ( { url = \"https://pipeline.example/hooks\";"
		   " secret_file = \"hook.secret\"; },\n"
		   " { url = \"HTTP://10.0.0.1:8080/x?y=1\"; secret = \"raw secret\";"
		   " events = [\"image_generated\", \"error\"]; timeout = 2.5; } );\n");
	if (cfg == NULL)
		print_error("%s\n", fx->err);
	assert_non_null(cfg);
	assert_true(cfg->webhook_retry_for == 3600.0);
	assert_int_equal(cfg->nwebhooks, 2);
	w = config_webhook(cfg, "https://pipeline.example/hooks");
	assert_ptr_equal(w, &cfg->webhooks[0]);
	/* whsec_: the key is the decoded bytes. */
	assert_int_equal(w->key_len, 32);
	for (int i = 0; i < 32; i++)
		assert_int_equal(w->key[i], i + 1);
	assert_true(w->timeout == 30.0);
	assert_true(config_webhook_wants(w, "done"));
	assert_false(config_webhook_wants(w, "progress"));
	/* Any other secret is its own bytes. */
	w = &cfg->webhooks[1];
	assert_int_equal(w->key_len, 10);
	assert_memory_equal(w->key, "raw secret", 10);
	assert_true(w->timeout == 2.5);
	assert_true(config_webhook_wants(w, "image_generated"));
	assert_true(config_webhook_wants(w, "error"));
	assert_false(config_webhook_wants(w, "done"));
	assert_false(config_webhook_wants(w, "connected"));
	assert_null(config_webhook(cfg, "https://other.example/"));
	config_free(cfg);
}

static void
test_webhook_errors(void **state)
{
	struct fixture *fx = *state;

	refused(fx, PLUGINS "webhooks = ( { url = \"ftp://a.example/x\";\n secret = \"s-1\"; } );",
		2, "webhooks[0].url", "must be an http:// or https:// URL");
	refused(fx, PLUGINS "webhooks = ( { url = \"https:///x\"; secret = \"s-1\"; } );", 2,
		"webhooks[0].url", "with a host");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a b/\"; secret = \"s-1\"; } );", 2,
		"webhooks[0].url", "http");
	refused(fx, PLUGINS "webhooks = (\n { url = \"https://a.example/\"; } );", 3,
		"webhooks[0].secret", "missing");
	refused(fx, PLUGINS "webhooks = ( { secret = \"s-1\"; } );", 2, "webhooks[0].url",
		"missing");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\";\n secret = \"whsec_s-1\"; } );",
		3, "webhooks[0].secret", "base64");
	assert_null(strstr(fx->err, "s-1"));
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\"; secret = \"whsec_\"; } );",
		2, "webhooks[0].secret", "base64");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\"; secret = \"s-1\";"
		" secret_file = \"f\"; } );", 2, "webhooks[0].secret_file", "not both");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\"; secret = \"s-1\";\n"
		" events = [\"done\", \"finished\"]; } );", 3, "webhooks[0].events[1]",
		"unknown event type \"finished\"");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\"; secret = \"s-1\";"
		" events = []; } );", 2, "webhooks[0].events", "at least one");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\"; secret = \"s-1\";"
		" events = \"done\"; } );", 2, "webhooks[0].events", "expected an array");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\"; secret = \"s-1\";"
		" timeout = 301; } );", 2, "webhooks[0].timeout", "at most 300");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\"; secret = \"s-1\";"
		" colour = 1; } );", 2, "webhooks[0].colour", "unknown key");
	refused(fx, PLUGINS "webhooks = ( { url = \"https://a.example/\"; secret = \"s-1\"; },\n"
		" { url = \"https://a.example/\"; secret = \"s-2\"; } );", 3, "webhooks[1].url",
		"duplicate url (also webhooks[0])");
	refused(fx, PLUGINS "webhooks = { url = \"https://a.example/\"; };", 2, "webhooks",
		"expected a list");
	refused(fx, PLUGINS "webhooks = ( \"https://a.example/\" );", 2, "webhooks[0]",
		"expected a group");
	refused(fx, PLUGINS "webhook_retry_for = 0;", 2, "webhook_retry_for", "more than 0");
	refused(fx, PLUGINS "webhook_retry_for = \"1d\";", 2, "webhook_retry_for",
		"expected a number");
}

/* A PostgreSQL URI is taken as it is, shown without its password; the
 * cluster keys want it. */
static void
test_database_keys(void **state)
{
	struct fixture *fx = *state;
	struct config *cfg;

	cfg = load(fx, PLUGINS);
	assert_non_null(cfg);
	assert_false(cfg->database_pg);
	assert_true(cfg->database_timeout == 5.0 && cfg->cluster_lease == 30.0 &&
		    cfg->cluster_rescue_interval == 10.0);
	assert_non_null(strchr(cfg->cluster_name, '-'));
	config_free(cfg);

	write_file(fx->dir, "db.password", "s3cret\n", 0600);
	cfg = load(fx, PLUGINS "database = \"postgresql://u:pw%40x@db.example:5432/t2i"
		   "?sslmode=require&password=p2\";\n"
		   "database_password_file = \"db.password\";\ndatabase_timeout = 2.5;\n"
		   "cluster = { lease = 12.0; rescue_interval = 3; name = \"node-a\"; };\n");
	if (cfg == NULL)
		print_error("%s\n", fx->err);
	assert_non_null(cfg);
	assert_true(cfg->database_pg);
	assert_string_equal(cfg->database, "postgresql://u:pw%40x@db.example:5432/t2i"
			    "?sslmode=require&password=p2");
	assert_string_equal(cfg->database_display, "postgresql://u:[redacted]@db.example:5432/"
			    "t2i?sslmode=require&password=[redacted]");
	assert_string_equal(cfg->database_password, "s3cret");
	assert_true(cfg->database_timeout == 2.5 && cfg->cluster_lease == 12.0 &&
		    cfg->cluster_rescue_interval == 3.0);
	assert_string_equal(cfg->cluster_name, "node-a");
	config_free(cfg);

	refused(fx, PLUGINS "cluster = { lease = 10.0; };", 2, "cluster",
		"only with a PostgreSQL database");
	refused(fx, PLUGINS "database_password_file = \"db.password\";", 2,
		"database_password_file", "only with a PostgreSQL database");
	refused(fx, PLUGINS "database = \"postgres:///t2i\";\ncluster = { lease = 0.5; };", 3,
		"cluster.lease", "between 1 and 3600");
	refused(fx, PLUGINS "database = \"postgres:///t2i\";\n"
		"cluster = { lease = 5; rescue_interval = 6; };", 3, "cluster.rescue_interval",
		"at most cluster.lease");
	refused(fx, PLUGINS "database = \"postgres:///t2i\";\ncluster = { name = \"a b\"; };", 3,
		"cluster.name", "[A-Za-z0-9_.-]");
	refused(fx, PLUGINS "database_timeout = 0;", 2, "database_timeout", "between 0.1 and 300");
}

static void
test_file_errors(void **state)
{
	struct fixture *fx = *state;
	char want[PATH_MAX + 128];
	struct config *cfg;

	cfg = load(fx, PLUGINS "workers = { max = ; };\n");
	assert_null(cfg);
	snprintf(want, sizeof(want), "%s:2: syntax error: ", fx->conf);
	assert_memory_equal(fx->err, want, strlen(want));
	assert_null(strchr(fx->err, '\n'));

	snprintf(want, sizeof(want), "%s/missing.conf", fx->dir);
	assert_null(config_load(want, fx->err, sizeof(fx->err)));
	strcat(want, ": cannot read: No such file or directory");
	assert_string_equal(fx->err, want);

	assert_null(config_load(fx->dir, fx->err, sizeof(fx->err)));
	assert_non_null(strstr(fx->err, ": cannot read: "));
	assert_null(config_load(fx->dir, NULL, 0));	/* no room for a message: still safe */
}

/* http.cors_origins, http.url_key_file and http.url_ttl: good values. */
static void
test_http_browser_keys(void **state)
{
	struct fixture *fx = *state;
	struct config *cfg;

	make_dir(fx->dir, "keys");
	write_file(fx->dir, "keys/url.key", "0123456789abcdef0123456789abcdef\n", 0600);
	cfg = load(fx, PLUGINS "database = \"db/t.db\";\n"
		   "http = { cors_origins = [\"https://UI.example\", \"http://127.0.0.1:8081\",\n"
		   "  \"http://[::1]:9000\"]; url_key_file = \"keys/url.key\"; url_ttl = 60; };\n");
	if (cfg == NULL)
		print_error("%s\n", fx->err);
	assert_non_null(cfg);
	assert_int_equal(cfg->http_ncors, 3);
	assert_string_equal(cfg->http_cors_origins[0], "https://ui.example");
	assert_string_equal(cfg->http_cors_origins[1], "http://127.0.0.1:8081");
	assert_string_equal(cfg->http_cors_origins[2], "http://[::1]:9000");
	assert_true(cfg->http_url_key_given);
	assert_path(cfg->http_url_key_file, fx->dir, "keys/url.key");
	assert_int_equal(cfg->http_url_key_len, 33);	/* every byte, newline too */
	assert_memory_equal(cfg->http_url_key, "0123456789abcdef0123456789abcdef\n", 33);
	assert_int_equal(cfg->http_url_ttl, 60);
	config_free(cfg);

	/* Defaults: no origin, a key made by serve beside the database, a day. */
	cfg = load(fx, PLUGINS "database = \"db/t.db\";\n");
	assert_non_null(cfg);
	assert_int_equal(cfg->http_ncors, 0);
	assert_false(cfg->http_url_key_given);
	assert_null(cfg->http_url_key);
	assert_path(cfg->http_url_key_file, fx->dir, "db/url.key");
	assert_int_equal(cfg->http_url_ttl, 86400);
	config_free(cfg);
	cfg = load(fx, PLUGINS "http = { cors_origins = ( ); };\n");
	assert_non_null(cfg);
	assert_int_equal(cfg->http_ncors, 0);
	config_free(cfg);
}

static void
test_http_browser_keys_refused(void **state)
{
	struct fixture *fx = *state;

	write_file(fx->dir, "short.key", "0123456789", 0600);
	refused(fx, PLUGINS "http = { cors_origins = \"https://ui.example\"; };", 2,
		"http.cors_origins", "expected a list");
	refused(fx, PLUGINS "http = {\n cors_origins = [ \"https://ui.example/\" ]; };", 3,
		"http.cors_origins[0]", "no path");
	refused(fx, PLUGINS "http = { cors_origins = ( \"https://ui.example\",\n"
		"\"https://ui.example/app\" ); };", 3, "http.cors_origins[1]", "no path");
	refused(fx, PLUGINS "http = { cors_origins = [ \"ui.example\" ]; };", 2,
		"http.cors_origins[0]", "expected scheme://host[:port]");
	refused(fx, PLUGINS "http = { cors_origins = [ \"https://\" ]; };", 2,
		"http.cors_origins[0]", "expected scheme://host[:port]");
	refused(fx, PLUGINS "http = { cors_origins = [ \"https://ui.example:99999\" ]; };", 2,
		"http.cors_origins[0]", "port must be 1 to 65535");
	refused(fx, PLUGINS "http = { cors_origins = [ \"https://ui.example:443\" ]; };", 2,
		"http.cors_origins[0]", "default port");
	refused(fx, PLUGINS "http = { cors_origins = [ \"https://ui.example?x=1\" ]; };", 2,
		"http.cors_origins[0]", "no path, query");
	refused(fx, PLUGINS "http = { cors_origins = [ \"https://a.example\", \"HTTPS://A.example\" ]; };",
		2, "http.cors_origins[1]", "listed twice");
	refused(fx, PLUGINS "http = { cors_origins = ( \"https://a.example\", 3 ); };", 2,
		"http.cors_origins[1]", "expected a string");
	refused(fx, PLUGINS "http = {\n url_key_file = \"short.key\"; };", 3, "http.url_key_file",
		"at least 32");
	refused(fx, PLUGINS "http = { url_key_file = \"none.key\"; };", 2, "http.url_key_file",
		"cannot read");
	refused(fx, PLUGINS "http = { url_key_file = \"\"; };", 2, "http.url_key_file",
		"must not be empty");
	refused(fx, PLUGINS "http = { url_ttl = 0; };", 2, "http.url_ttl", "between 1 and");
	refused(fx, PLUGINS "http = { url_ttl = \"60\"; };", 2, "http.url_ttl",
		"expected an integer");
}

/* The limits on what HTTP clients may hold, and the names Host may carry. */
static void
test_http_limit_keys(void **state)
{
	struct fixture *fx = *state;
	struct config *cfg = load(fx, PLUGINS "database = \"db/t.db\";\n");

	assert_non_null(cfg);
	assert_int_equal(cfg->http_max_connections, 1024);
	assert_int_equal(cfg->http_max_connections_per_ip, 64);
	assert_int_equal(cfg->http_request_timeout, 30);
	assert_int_equal(cfg->http_sse_stall_timeout, 30);
	assert_int_equal(cfg->http_max_body_memory, 64 * 1024 * 1024);
	assert_int_equal(cfg->http_nserver_names, 0);	/* the defaults, made by serve */
	config_free(cfg);
	cfg = load(fx, PLUGINS "http = { max_connections = 10; request_timeout = 5;\n"
		   " sse_stall_timeout = 2; max_body_memory = 40000000;\n"
		   " server_names = [\"Images.Example\", \"images.example:8443\", \"[::1]:9\","
		   " \"*\"]; };\n");
	if (cfg == NULL)
		print_error("%s\n", fx->err);
	assert_non_null(cfg);
	assert_int_equal(cfg->http_max_connections, 10);
	/* The default per address cannot exceed the total. */
	assert_int_equal(cfg->http_max_connections_per_ip, 10);
	assert_int_equal(cfg->http_request_timeout, 5);
	assert_int_equal(cfg->http_sse_stall_timeout, 2);
	assert_int_equal(cfg->http_max_body_memory, 40000000);
	assert_int_equal(cfg->http_nserver_names, 4);
	assert_string_equal(cfg->http_server_names[0], "images.example");
	assert_string_equal(cfg->http_server_names[1], "images.example:8443");
	assert_string_equal(cfg->http_server_names[2], "[::1]:9");
	assert_string_equal(cfg->http_server_names[3], "*");
	config_free(cfg);
}

static void
test_http_limit_keys_refused(void **state)
{
	struct fixture *fx = *state;

	refused(fx, PLUGINS "http = { max_connections = 0; };", 2, "http.max_connections",
		"between 1 and 65536");
	refused(fx, PLUGINS "http = { max_connections = 10;\n max_connections_per_ip = 11; };", 3,
		"http.max_connections_per_ip", "must not exceed http.max_connections (10)");
	refused(fx, PLUGINS "http = { max_connections_per_ip = 0; };", 2,
		"http.max_connections_per_ip", "between 1 and");
	refused(fx, PLUGINS "http = { request_timeout = 0; };", 2, "http.request_timeout",
		"between 1 and 3600");
	refused(fx, PLUGINS "http = { request_timeout = 1.5; };", 2, "http.request_timeout",
		"expected an integer");
	refused(fx, PLUGINS "http = { sse_stall_timeout = 3601; };", 2, "http.sse_stall_timeout",
		"between 1 and 3600");
	refused(fx, PLUGINS "http = { max_body_memory = 1000; };", 2, "http.max_body_memory",
		"between 33554432 and");
	refused(fx, PLUGINS "http = { server_names = \"a.example\"; };", 2, "http.server_names",
		"expected a list");
	refused(fx, PLUGINS "http = { server_names = [\"https://a.example\"]; };", 2,
		"http.server_names[0]", "expected a host name");
	refused(fx, PLUGINS "http = { server_names = [\"a.example:0\"]; };", 2,
		"http.server_names[0]", "port of 1 to 65535");
	refused(fx, PLUGINS "http = { server_names = [\"a.example/x\"]; };", 2,
		"http.server_names[0]", "host[:port]");
	refused(fx, PLUGINS "http = { server_names = [\"a.example\", \"A.EXAMPLE\"]; };", 2,
		"http.server_names[1]", "listed twice");
}

static void
test_choose_path(void **state)
{
	const char *fallback =
		access(T2I_CONFIG_DEFAULT_PATH, R_OK) == 0 ? T2I_CONFIG_DEFAULT_PATH : NULL;

	(void)state;
	assert_int_equal(setenv(CONFIG_ENV, "/from/env.conf", 1), 0);
	assert_string_equal(config_choose_path("/explicit.conf"), "/explicit.conf");
	assert_string_equal(config_choose_path(NULL), "/from/env.conf");
	assert_int_equal(setenv(CONFIG_ENV, "", 1), 0);
	assert_ptr_equal(config_choose_path(NULL), fallback);
	assert_int_equal(unsetenv(CONFIG_ENV), 0);
	assert_ptr_equal(config_choose_path(NULL), fallback);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults_without_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_options_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_paths_from_the_environment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_webhooks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhook_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_database_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_browser_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_browser_keys_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_limit_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_limit_keys_refused, setup, teardown),
		cmocka_unit_test(test_choose_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
