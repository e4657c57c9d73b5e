/* hash: SHA-256 and HMAC-SHA256 through nettle.
 *
 * nettle rather than OpenSSL: OpenSSL 3 loads its provider and config on
 * the first digest, which measured ~2 ms in every short-lived worker. */
#include "hash.h"

#include <stdint.h>
#include <string.h>

#include <nettle/hmac.h>
#include <nettle/sha2.h>

static void
to_hex(const uint8_t md[SHA256_DIGEST_SIZE], char out[HASH_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (unsigned i = 0; i < SHA256_DIGEST_SIZE; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[HASH_HEX_LEN] = '\0';
}

void
hash_sha256_hex(const void *bytes, size_t size, char out[HASH_HEX_LEN + 1])
{
	struct sha256_ctx ctx;
	uint8_t md[SHA256_DIGEST_SIZE];

	sha256_init(&ctx);
	sha256_update(&ctx, size, bytes);
	sha256_digest(&ctx, sizeof(md), md);
	to_hex(md, out);
}

void
hash_hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
		     char out[HASH_HEX_LEN + 1])
{
	struct hmac_sha256_ctx ctx;
	uint8_t md[SHA256_DIGEST_SIZE];

	hmac_sha256_set_key(&ctx, keylen, key);
	hmac_sha256_update(&ctx, msglen, msg);
	hmac_sha256_digest(&ctx, sizeof(md), md);
	to_hex(md, out);
	/* The context holds the key's inner and outer pads. */
	explicit_bzero(&ctx, sizeof(ctx));
}

bool
hash_equal_ct(const char *got, const char *want)
{
	size_t got_len = strlen(got), want_len = strlen(want);
	volatile unsigned char acc = (unsigned char)(got_len != want_len);

	for (size_t i = 0; i < want_len; i++) {
		unsigned char g = i < got_len ? (unsigned char)got[i] : 0;

		acc |= (unsigned char)(g ^ (unsigned char)want[i]);
	}
	return acc == 0;
}
