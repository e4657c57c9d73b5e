/* hash: SHA-256 through nettle.
 *
 * nettle rather than OpenSSL: OpenSSL 3 loads its provider and config on
 * the first digest, which measured ~2 ms in every short-lived worker. */
#include "hash.h"

#include <stdint.h>
#include <stdio.h>

#include <nettle/sha2.h>

static void
digest(const void *bytes, size_t size, uint8_t md[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, size, bytes);
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, md);
}

void
hash_sha256_hex(const void *bytes, size_t size, char out[HASH_HEX_LEN + 1])
{
	uint8_t md[SHA256_DIGEST_SIZE];
	static const char hex[] = "0123456789abcdef";

	digest(bytes, size, md);
	for (unsigned i = 0; i < SHA256_DIGEST_SIZE; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[HASH_HEX_LEN] = '\0';
}

void
hash_uuid(const void *bytes, size_t size, char out[37])
{
	uint8_t md[SHA256_DIGEST_SIZE];

	digest(bytes, size, md);
	md[6] = (uint8_t)((md[6] & 0x0f) | 0x80);	/* version 8 */
	md[8] = (uint8_t)((md[8] & 0x3f) | 0x80);	/* variant 10 */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10],
		 md[11], md[12], md[13], md[14], md[15]);
}
