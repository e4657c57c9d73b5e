/* Unit tests for src/core/hash.c: SHA-256, the Standard Webhooks
 * signature and base64, against published vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hash.h"

static void
test_sha256(void **state)
{
	char hex[HASH_HEX_LEN + 1];

	(void)state;
	hash_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* The example of the Standard Webhooks specification. */
static void
test_webhook_signature(void **state)
{
	static const char body[] = "{\"test\": 2432232314}";
	char sig[HASH_WEBHOOK_SIG_LEN + 1];
	unsigned char *key;
	size_t len;

	(void)state;
	key = hash_base64_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &len);
	assert_non_null(key);
	assert_int_equal(len, 24);
	hash_webhook_signature(key, len, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body,
			       strlen(body), sig);
	assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* Every part is signed. */
	hash_webhook_signature(key, len, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", body,
			       strlen(body), sig);
	assert_string_not_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	free(key);
}

static void
test_base64_decode(void **state)
{
	static const char *const bad[] = { "abc", "ab!d", "ab d", "abcd\n", "a===", NULL };
	unsigned char *out;
	size_t len;

	(void)state;
	out = hash_base64_decode("aGVsbG8=", &len);
	assert_non_null(out);
	assert_int_equal(len, 5);
	assert_memory_equal(out, "hello", 5);
	free(out);
	out = hash_base64_decode("", &len);
	assert_non_null(out);
	assert_int_equal(len, 0);
	free(out);
	for (int i = 0; bad[i] != NULL; i++)
		assert_null(hash_base64_decode(bad[i], &len));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_webhook_signature),
		cmocka_unit_test(test_base64_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
