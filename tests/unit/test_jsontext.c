/* Unit tests of JSON text with shortest reals (src/jsontext.c). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsontext.h"

static void
real_is(double d, const char *want)
{
	char out[32];
	int n = jsontext_real(d, out, sizeof(out));

	assert_int_equal(n, (int)strlen(want));
	assert_string_equal(out, want);
	assert_true(strtod(out, NULL) == d);
}

static void
test_real_as_written(void **state)
{
	(void)state;
	real_is(0.6, "0.6");
	real_is(0.7, "0.7");
	real_is(-0.1, "-0.1");
	real_is(0.5, "0.5");
	real_is(1.0, "1.0");
	real_is(-0.0, "-0.0");
	real_is(0.0, "0.0");
	real_is(900.0, "900.0");
	real_is(123.456, "123.456");
	real_is(100000.0, "100000.0");
	real_is(0.0001, "0.0001");
	real_is(1e15, "1000000000000000.0");
}

static void
test_real_needs_more_digits(void **state)
{
	(void)state;
	/* 0.1 + 0.2 is a double of its own: 15 digits would make it 0.3. */
	real_is(0.1 + 0.2, "0.30000000000000004");
	real_is(1.0 / 3.0, "0.3333333333333333");
	real_is(DBL_MAX, "1.7976931348623157e308");
	real_is(DBL_MIN, "2.2250738585072014e-308");
	real_is(5e-324, "5e-324");
	real_is(1e-5, "1e-5");
	real_is(1.5e-7, "1.5e-7");
	real_is(1e16, "1e16");
	real_is(1e22, "1e22");
	real_is(-2.5e100, "-2.5e100");
}

static void
test_real_short_buffer(void **state)
{
	char out[4];

	(void)state;
	assert_int_equal(jsontext_real(0.6, out, sizeof(out)), 3);
	assert_int_equal(jsontext_real(123.5, out, sizeof(out)), -1);
}

/* A spread of doubles, each must read back exactly, in at most 17 digits. */
static void
test_real_round_trips(void **state)
{
	char out[32];
	uint64_t x = 0x9E3779B97F4A7C15u;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		double d;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(&d, &x, sizeof(d));
		if (!isfinite(d))
			continue;
		assert_true(jsontext_real(d, out, sizeof(out)) > 0);
		assert_true(strtod(out, NULL) == d);
		assert_true(strchr(out, '.') != NULL || strchr(out, 'e') != NULL);
	}
}

static void
dumps_is(const char *in, size_t flags, const char *want)
{
	json_error_t je;
	json_t *v = json_loads(in, JSON_DECODE_ANY, &je);
	char *text;

	assert_non_null(v);
	text = jsontext_dumps(v, flags);
	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
	json_decref(v);
}

static void
test_dumps(void **state)
{
	(void)state;
	/* jansson alone writes 0.59999999999999998 and 0.69999999999999996. */
	dumps_is("{\"sample_strength\": 0.6, \"b\": [0.7, 1, -2.50, 1e-7, 1E+22]}",
		 JSON_COMPACT | JSON_SORT_KEYS,
		 "{\"b\":[0.7,1,-2.5,1e-7,1e22],\"sample_strength\":0.6}");
	/* Every real on its own: one that needs 17 digits does not drag the
	 * others to 17, as one precision for the document would. */
	dumps_is("[0.30000000000000004, 0.6]", JSON_COMPACT, "[0.30000000000000004,0.6]");
	/* A precision asked for is ignored: it would lose the last digits. */
	dumps_is("[0.30000000000000004]", JSON_COMPACT | JSON_REAL_PRECISION(15),
		 "[0.30000000000000004]");
	/* Integers, strings and keys that look like numbers stay as they are. */
	dumps_is("{\"0.59999999999999998\": \"0.59999999999999998 -1.0e5\", \"n\": -12345678901234}",
		 JSON_COMPACT | JSON_SORT_KEYS,
		 "{\"0.59999999999999998\":\"0.59999999999999998 -1.0e5\",\"n\":-12345678901234}");
	/* Escaped quotes and backslashes do not end a string early. */
	dumps_is("[\"a\\\"0.59999999999999998\\\\\", 0.6, \"\\\\\"]", JSON_COMPACT,
		 "[\"a\\\"0.59999999999999998\\\\\",0.6,\"\\\\\"]");
	dumps_is("{\"a\": 0.6}", JSON_INDENT(2), "{\n  \"a\": 0.6\n}");
	dumps_is("0.6", JSON_ENCODE_ANY, "0.6");
}

static void
test_shorten_in_place(void **state)
{
	char text[] = "{\"a\":0.59999999999999998,\"b\":\"0.59999999999999998\","
		      "\"c\":[1,2.0,100000.0,1.0000000000000001e-05]}";

	(void)state;
	jsontext_shorten(text);
	assert_string_equal(text, "{\"a\":0.6,\"b\":\"0.59999999999999998\",\"c\":[1,2.0,100000.0,1e-5]}");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_as_written),
		cmocka_unit_test(test_real_needs_more_digits),
		cmocka_unit_test(test_real_short_buffer),
		cmocka_unit_test(test_real_round_trips),
		cmocka_unit_test(test_dumps),
		cmocka_unit_test(test_shorten_in_place),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
