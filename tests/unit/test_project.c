/* Unit tests for src/core/project.c: the project file parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "project.h"

#define UPPER_ID "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9"
#define LOWER_ID "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
#define OTHER_ID "11111111-2222-4333-8444-555555555555"

static char err[1024];

static struct project *
parse(const char *text)
{
	err[0] = 'x';
	err[1] = '\0';
	return project_parse(text, strlen(text), "demo.json", err, sizeof err);
}

/* Asserts text is refused whole with a one-line message containing want. */
static void
refused(const char *text, const char *want)
{
	struct project *p = parse(text);

	if (p != NULL || strstr(err, want) == NULL)
		print_error("input: %s\nwant:  %s\ngot:   %s\n", text, want, err);
	assert_null(p);
	assert_non_null(strstr(err, want));
	assert_null(strchr(err, '\n'));
}

static char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return s;
}

static void
test_full_project(void **state)
{
	(void)state;
	struct project *p = parse(
		"{\"id\": \"" UPPER_ID "\", \"name\": \"Demo\",\n"
		" \"image_providers\": [\"jimeng\", \"preview.v2\"],\n"
		" \"params\": {\"ratio\": \"16:9\", \"resolution\": \"2k\",\n"
		"            \"options\": {\"z\": 1, \"a\": {\"y\": [1, 2], \"b\": \"x\"}}},\n"
		" \"storyboard_stage\": \"completed\",\n"
		" \"storyboards\": [\n"
		"  {\"id\": \"" OTHER_ID "\", \"image_prompt\": \"  a cat  \",\n"
		"   \"negative_prompt\": \"blur\",\n"
		"   \"params\": {\"ratio\": \"9:16\", \"options\": {\"sample_strength\": 0.7,\n"
		"    \"exact\": 0.30000000000000004}}},\n"
		"  {\"image_prompt\": \"a dog\"}\n"
		" ]}");

	assert_non_null(p);
	assert_string_equal(p->id, LOWER_ID);
	assert_string_equal(p->name, "Demo");
	assert_int_equal(p->nproviders, 2);
	assert_string_equal(p->image_providers[0], "jimeng");
	assert_string_equal(p->image_providers[1], "preview.v2");
	assert_string_equal(p->params.ratio, "16:9");
	assert_string_equal(p->params.resolution, "2k");
	assert_string_equal(p->params.options_json, "{\"a\":{\"b\":\"x\",\"y\":[1,2]},\"z\":1}");
	assert_true(p->storyboard_completed);
	assert_int_equal(p->nstoryboards, 2);

	struct project_storyboard *a = &p->storyboards[0], *b = &p->storyboards[1];
	assert_string_equal(a->id, OTHER_ID);
	assert_int_equal(a->index, 1);
	assert_string_equal(a->image_prompt, "  a cat  ");	/* stored as given */
	assert_string_equal(a->negative_prompt, "blur");
	assert_string_equal(a->params.ratio, "9:16");
	assert_null(a->params.resolution);
	/* Each real as written, including one that needs 17 digits. */
	assert_string_equal(a->params.options_json,
			    "{\"exact\":0.30000000000000004,\"sample_strength\":0.7}");

	assert_true(project_is_uuid(b->id));
	assert_string_not_equal(b->id, a->id);
	assert_int_equal(b->index, 2);
	assert_string_equal(b->image_prompt, "a dog");
	assert_string_equal(b->negative_prompt, "");
	assert_null(b->params.ratio);
	assert_null(b->params.resolution);
	assert_null(b->params.options_json);
	project_free(p);
}

static void
test_defaults(void **state)
{
	(void)state;
	struct project *p = parse("{\"storyboards\": []}");
	struct project *q = parse("{\"storyboards\": []}");

	assert_non_null(p);
	assert_non_null(q);
	assert_true(project_is_uuid(p->id));
	for (const char *s = p->id; *s; s++)
		assert_false(*s >= 'A' && *s <= 'Z');
	assert_string_not_equal(p->id, q->id);
	assert_string_equal(p->name, "");
	assert_int_equal(p->nproviders, 0);
	assert_null(p->image_providers);
	assert_null(p->params.ratio);
	assert_null(p->params.resolution);
	assert_null(p->params.options_json);
	assert_true(p->storyboard_completed);
	assert_int_equal(p->nstoryboards, 0);	/* emptiness is the run's call */
	project_free(p);
	project_free(q);
	project_free(NULL);
	assert_null(project_parse("[", 1, "x", NULL, 0));	/* no message wanted */
	assert_null(project_parse("[]", 2, NULL, err, sizeof err));
	assert_string_equal(err, "project: expected a JSON object at the top level, got array");
}

/* Optional members given as null are absent, as upstream exporters write. */
static void
test_null_is_absent(void **state)
{
	(void)state;
	struct project *p = parse(
		"{\"id\": null, \"name\": null, \"image_providers\": null, \"params\": null,"
		" \"storyboard_stage\": null, \"storyboards\": [{\"id\": null,"
		" \"image_prompt\": \"x\", \"negative_prompt\": null,"
		" \"params\": {\"ratio\": null, \"resolution\": null, \"options\": null}}]}");

	assert_non_null(p);
	assert_true(project_is_uuid(p->id));
	assert_string_equal(p->name, "");
	assert_true(p->storyboard_completed);
	assert_true(project_is_uuid(p->storyboards[0].id));
	assert_string_equal(p->storyboards[0].negative_prompt, "");
	assert_null(p->storyboards[0].params.ratio);
	project_free(p);
	refused("{\"storyboards\": [{\"image_prompt\": null}]}",
		"demo.json: storyboard 1: image_prompt: expected a string, got null");
}

static void
test_invalid_json(void **state)
{
	(void)state;
	refused("{\n\"storyboards\": [,]}", "demo.json:2:");
	refused("{\n\"storyboards\": [,]}", ": invalid JSON: ");
	refused("", "demo.json:1:0: invalid JSON: ");
	refused("{\"storyboards\": []} x", "invalid JSON: end of file expected");
	refused("{\"storyboards\": []}{}", "invalid JSON: end of file expected");
	refused("{\"storyboards\": [], \"storyboards\": []}",
		"invalid JSON: duplicate object key");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\", \"image_prompt\": \"b\"}]}",
		"invalid JSON: duplicate object key");
	/* A raw NUL byte inside the buffer is not JSON. */
	struct project *p = project_parse("{\"storyboards\": []}\0", 20, "f", err, sizeof err);
	assert_null(p);
	assert_non_null(strstr(err, "invalid JSON"));
}

static void
test_top_level(void **state)
{
	(void)state;
	refused("[]", "demo.json: expected a JSON object at the top level, got array");
	refused("\"x\"", "demo.json: expected a JSON object at the top level, got string");
	refused("{\"storyboards\": [], \"foo\": 1}", "demo.json: unknown key 'foo'");
	refused("{\"name\": \"x\"}", "demo.json: storyboards: missing");
	refused("{\"storyboards\": {}}",
		"demo.json: storyboards: expected an array, got object");
	refused("{\"storyboards\": [3]}",
		"demo.json: storyboard 1: expected an object, got number");
	refused("{\"storyboards\": [], \"name\": 5}", "demo.json: name: expected a string, got number");
	/* Unknown keys are named on one line even when they hold a newline. */
	refused("{\"storyboards\": [], \"a\\nb\": 1}", "unknown key 'a?b'");
}

static void
test_name_limit(void **state)
{
	(void)state;
	char *ok = xasprintf("{\"name\": \"%0*d\", \"storyboards\": []}", PROJECT_NAME_MAX, 0);
	char *big = xasprintf("{\"name\": \"%0*d\", \"storyboards\": []}", PROJECT_NAME_MAX + 1, 0);
	struct project *p = parse(ok);

	assert_non_null(p);
	assert_int_equal(strlen(p->name), PROJECT_NAME_MAX);
	project_free(p);
	refused(big, "demo.json: name: too long (257 bytes, limit 256)");
	free(ok);
	free(big);
}

static void
test_image_prompt(void **state)
{
	(void)state;
	refused("{\"storyboards\": [{\"image_prompt\": \"a\"}, {\"negative_prompt\": \"b\"}]}",
		"demo.json: storyboard 2: image_prompt: missing or empty");
	refused("{\"storyboards\": [{\"image_prompt\": \"\"}]}",
		"demo.json: storyboard 1: image_prompt: missing or empty");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\"}, {\"image_prompt\": \"b\"},"
		" {\"id\": \"" UPPER_ID "\", \"image_prompt\": \" \\t\\n\\r \"}]}",
		"demo.json: storyboard 3 (id " LOWER_ID "): image_prompt: missing or empty");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\"}, {\"image_prompt\": \"b\"},"
		" {\"image_prompt\": \"c\"}, {\"image_prompt\": 7}]}",
		"demo.json: storyboard 4: image_prompt: expected a string, got number");
	refused("{\"storyboards\": [{\"image_prompt\": [\"a\"]}]}",
		"storyboard 1: image_prompt: expected a string, got array");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\", \"negative_prompt\": false}]}",
		"storyboard 1: negative_prompt: expected a string, got boolean");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\\u0000b\"}]}",
		"storyboard 1: image_prompt: contains a NUL character");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\", \"negative_prompt\": \"\\u0000\"}]}",
		"storyboard 1: negative_prompt: contains a NUL character");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\", \"seed\": 1}]}",
		"demo.json: storyboard 1: unknown key 'seed'");
	refused("{\"storyboards\": [{\"id\": \"" OTHER_ID "\", \"image_prompt\": \"a\", \"x\": 1}]}",
		"demo.json: storyboard 1 (id " OTHER_ID "): unknown key 'x'");
}

static void
test_prompt_limits(void **state)
{
	(void)state;
	char *ok = xasprintf("{\"storyboards\": [{\"image_prompt\": \"%0*d\","
			     " \"negative_prompt\": \"%0*d\"}]}",
			     PROJECT_PROMPT_MAX, 0, PROJECT_PROMPT_MAX, 0);
	char *big = xasprintf("{\"storyboards\": [{\"image_prompt\": \"a\"},"
			      " {\"image_prompt\": \"%0*d\"}]}", PROJECT_PROMPT_MAX + 1, 0);
	char *bigneg = xasprintf("{\"storyboards\": [{\"image_prompt\": \"a\","
				 " \"negative_prompt\": \"%0*d\"}]}", PROJECT_PROMPT_MAX + 1, 0);
	struct project *p = parse(ok);

	assert_non_null(p);
	assert_int_equal(strlen(p->storyboards[0].image_prompt), PROJECT_PROMPT_MAX);
	project_free(p);
	refused(big, "demo.json: storyboard 2: image_prompt: too long (8193 bytes, limit 8192)");
	refused(bigneg, "storyboard 1: negative_prompt: too long (8193 bytes, limit 8192)");
	free(ok);
	free(big);
	free(bigneg);
}

static void
test_params(void **state)
{
	(void)state;
	refused("{\"params\": {\"ratio\": \"5:4\"}, \"storyboards\": []}",
		"demo.json: params.ratio: unknown ratio '5:4' (known: 1:1 4:3 3:4 16:9 9:16 3:2 2:3 21:9)");
	refused("{\"params\": {\"resolution\": \"8k\"}, \"storyboards\": []}",
		"demo.json: params.resolution: unknown resolution '8k' (known: 1k 2k 4k)");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\"},"
		" {\"image_prompt\": \"b\", \"params\": {\"ratio\": \"5:4\"}}]}",
		"demo.json: storyboard 2: params.ratio: unknown ratio '5:4' (known: 1:1 ");
	refused("{\"storyboards\": [{\"id\": \"" OTHER_ID "\", \"image_prompt\": \"b\","
		" \"params\": {\"resolution\": \"8K\"}}]}",
		"demo.json: storyboard 1 (id " OTHER_ID "): params.resolution: unknown resolution '8K' (known: 1k 2k 4k)");
	refused("{\"params\": {\"ratio\": 16}, \"storyboards\": []}",
		"demo.json: params.ratio: expected a string, got number");
	refused("{\"params\": {\"size\": \"1k\"}, \"storyboards\": []}",
		"demo.json: params: unknown key 'size'");
	refused("{\"params\": [], \"storyboards\": []}",
		"demo.json: params: expected an object, got array");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\", \"params\": {\"options\": \"x\"}}]}",
		"storyboard 1: params.options: expected an object, got string");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\","
		" \"params\": {\"options\": {\"k\": [\"\\u0000\"]}}}]}",
		"storyboard 1: params.options: contains a NUL character");

	struct project *p = parse("{\"params\": {\"options\": {}}, \"storyboards\": []}");
	assert_non_null(p);
	assert_string_equal(p->params.options_json, "{}");
	project_free(p);
}

static void
test_ids(void **state)
{
	(void)state;
	refused("{\"id\": \"not-a-uuid\", \"storyboards\": []}",
		"demo.json: id: not a UUID 'not-a-uuid'");
	refused("{\"id\": 12, \"storyboards\": []}", "demo.json: id: expected a string, got number");
	refused("{\"id\": \"{" LOWER_ID "}\", \"storyboards\": []}", "demo.json: id: not a UUID");
	refused("{\"storyboards\": [{\"image_prompt\": \"a\"},"
		" {\"id\": \"" LOWER_ID "x\", \"image_prompt\": \"b\"}]}",
		"demo.json: storyboard 2: id: not a UUID '" LOWER_ID "x'");
	/* The later one is named, against the first; case does not hide a duplicate. */
	refused("{\"storyboards\": [{\"image_prompt\": \"a\"},"
		" {\"id\": \"" LOWER_ID "\", \"image_prompt\": \"b\"},"
		" {\"id\": \"" OTHER_ID "\", \"image_prompt\": \"c\"},"
		" {\"image_prompt\": \"d\"},"
		" {\"id\": \"" UPPER_ID "\", \"image_prompt\": \"e\"},"
		" {\"id\": \"" OTHER_ID "\", \"image_prompt\": \"f\"}]}",
		"demo.json: storyboard 5 (id " LOWER_ID "): id: duplicate of storyboard 2");

	assert_true(project_is_uuid(LOWER_ID));
	assert_true(project_is_uuid(UPPER_ID));
	assert_false(project_is_uuid(NULL));
	assert_false(project_is_uuid(""));
	assert_false(project_is_uuid(LOWER_ID "0"));
	assert_false(project_is_uuid("0f1e2d3c4b5a49788695a4b3c2d1e0f9"));
	assert_false(project_is_uuid("gf1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"));

	char u[37], v[37];
	project_uuid(u);
	project_uuid(v);
	assert_true(project_is_uuid(u));
	assert_int_equal(u[14], '7');	/* version 7: time-ordered */
	assert_true(strchr("89ab", u[19]) != NULL);	/* RFC 9562 variant */
	assert_string_not_equal(u, v);
	/* Later ids sort after earlier ones, to the millisecond. */
	assert_true(strncmp(u, v, 13) <= 0);
}

static void
test_storyboard_stage(void **state)
{
	(void)state;
	struct project *p = parse("{\"storyboard_stage\": \"processing\", \"storyboards\": []}");

	assert_non_null(p);
	assert_false(p->storyboard_completed);
	project_free(p);
	p = parse("{\"storyboard_stage\": \"completed\", \"storyboards\": []}");
	assert_non_null(p);
	assert_true(p->storyboard_completed);
	project_free(p);
	refused("{\"storyboard_stage\": \"done\", \"storyboards\": []}",
		"demo.json: storyboard_stage: expected 'completed' or 'processing', got 'done'");
	refused("{\"storyboard_stage\": true, \"storyboards\": []}",
		"demo.json: storyboard_stage: expected a string, got boolean");
}

static void
test_image_providers(void **state)
{
	(void)state;
	refused("{\"image_providers\": \"jimeng\", \"storyboards\": []}",
		"demo.json: image_providers: expected an array, got string");
	refused("{\"image_providers\": [], \"storyboards\": []}",
		"demo.json: image_providers: 0 names (give 1 to 16, or leave it out)");
	refused("{\"image_providers\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\","
		"\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"], \"storyboards\": []}",
		"demo.json: image_providers: 17 names (give 1 to 16");
	refused("{\"image_providers\": [\"a\", 3], \"storyboards\": []}",
		"demo.json: image_providers: entry 2: expected a string, got number");
	refused("{\"image_providers\": [\"\"], \"storyboards\": []}",
		"demo.json: image_providers: entry 1: invalid provider name ''");
	refused("{\"image_providers\": [\"a b\"], \"storyboards\": []}",
		"demo.json: image_providers: entry 1: invalid provider name 'a b'");
	refused("{\"image_providers\": [\"../x\"], \"storyboards\": []}",
		"invalid provider name '../x'");
	refused("{\"image_providers\": [\"a\", \"b\", \"a\"], \"storyboards\": []}",
		"demo.json: image_providers: entry 3: duplicate of entry 1 ('a')");

	char *ok = xasprintf("{\"image_providers\": [\"%0*d\"], \"storyboards\": []}", 64, 0);
	char *big = xasprintf("{\"image_providers\": [\"%0*d\"], \"storyboards\": []}", 65, 0);
	struct project *p = parse(ok);
	assert_non_null(p);
	assert_int_equal(p->nproviders, 1);
	project_free(p);
	refused(big, "image_providers: entry 1: invalid provider name");
	free(ok);
	free(big);
}

/* Builds a project of n storyboards; dup_at > 0 repeats storyboard 1's id there. */
static char *
big_project(size_t n, size_t dup_at)
{
	size_t cap = 64 + n * 128, len = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	len += (size_t)sprintf(s + len, "{\"name\": \"big\", \"storyboards\": [");
	for (size_t i = 1; i <= n; i++)
		len += (size_t)sprintf(s + len,
			"%s{\"id\": \"00000000-0000-4000-8000-%012zx\", \"image_prompt\": \"shot %zu\"}",
			i > 1 ? "," : "", i == dup_at ? (size_t)1 : i, i);
	sprintf(s + len, "]}");
	return s;
}

static void
test_many_storyboards(void **state)
{
	(void)state;
	char *s = big_project(10000, 0);
	struct project *p = parse(s);

	assert_non_null(p);
	assert_int_equal(p->nstoryboards, 10000);
	assert_int_equal(p->storyboards[9999].index, 10000);
	assert_string_equal(p->storyboards[9999].id, "00000000-0000-4000-8000-000000002710");
	assert_string_equal(p->storyboards[9999].image_prompt, "shot 10000");
	project_free(p);
	free(s);

	s = big_project(10000, 9000);
	refused(s, "demo.json: storyboard 9000 (id 00000000-0000-4000-8000-000000000001):"
		" id: duplicate of storyboard 1");
	free(s);

	/* One past the limit, with elements so small the text stays short. */
	size_t n = PROJECT_STORYBOARDS_MAX + 1;
	s = malloc(32 + 2 * n);
	assert_non_null(s);
	strcpy(s, "{\"storyboards\": [");
	char *e = s + strlen(s);
	for (size_t i = 0; i < n; i++) {
		*e++ = '0';
		*e++ = ',';
	}
	strcpy(e - 1, "]}");
	refused(s, "demo.json: storyboards: too many (100001, limit 100000)");
	free(s);
}

static char *
temp_file(const char *content)
{
	char *path = strdup("/tmp/test_project_XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	if (content != NULL)
		assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	else
		assert_int_equal(ftruncate(fd, (off_t)PROJECT_FILE_MAX + 1), 0);
	close(fd);
	return path;
}

static void
test_load(void **state)
{
	(void)state;
	char want[512];
	char *path = temp_file("{\"storyboards\": [{\"image_prompt\": \"a\"}]}");
	struct project *p = project_load(path, err, sizeof err);

	assert_non_null(p);
	assert_int_equal(p->nstoryboards, 1);
	project_free(p);
	unlink(path);
	free(path);

	path = temp_file("{\"storyboards\": [{}]}");
	assert_null(project_load(path, err, sizeof err));
	snprintf(want, sizeof want, "%s: storyboard 1: image_prompt: missing or empty", path);
	assert_string_equal(err, want);
	unlink(path);
	free(path);

	path = temp_file(NULL);	/* sparse: no disk used */
	assert_null(project_load(path, err, sizeof err));
	snprintf(want, sizeof want, "%s: file too large (33554433 bytes, limit 33554432)", path);
	assert_string_equal(err, want);
	assert_null(project_load(path, NULL, 0));
	unlink(path);
	free(path);

	assert_null(project_load("/nonexistent/demo.json", err, sizeof err));
	assert_string_equal(err, "/nonexistent/demo.json: cannot read: No such file or directory");
	assert_null(project_load("/tmp", err, sizeof err));
	assert_string_equal(err, "/tmp: not a regular file");
}

/* The shipped example must always import (run from the repository root). */
static void
test_demo_example(void **state)
{
	(void)state;
	struct project *p;

	if (access("examples/demo.json", R_OK) != 0)
		skip();
	p = project_load("examples/demo.json", err, sizeof err);
	if (p == NULL)
		print_error("%s\n", err);
	assert_non_null(p);
	assert_string_equal(p->name, "Demo: The Lantern Keeper");
	assert_int_equal(p->nproviders, 1);
	assert_string_equal(p->image_providers[0], "placeholder");
	assert_string_equal(p->params.ratio, "16:9");
	assert_string_equal(p->params.resolution, "1k");
	assert_true(p->storyboard_completed);
	assert_int_equal(p->nstoryboards, 6);
	assert_string_not_equal(p->storyboards[1].negative_prompt, "");
	assert_string_equal(p->storyboards[2].params.ratio, "9:16");
	assert_string_equal(p->storyboards[4].params.ratio, "1:1");
	project_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_project),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_null_is_absent),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_top_level),
		cmocka_unit_test(test_name_limit),
		cmocka_unit_test(test_image_prompt),
		cmocka_unit_test(test_prompt_limits),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_storyboard_stage),
		cmocka_unit_test(test_image_providers),
		cmocka_unit_test(test_many_storyboards),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_demo_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
