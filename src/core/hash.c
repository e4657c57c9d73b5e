/* hash: SHA-256 through nettle.
 *
 * nettle rather than OpenSSL: OpenSSL 3 loads its provider and config on
 * the first digest, which measured ~2 ms in every short-lived worker. */
#include "hash.h"

#include <stdint.h>

#include <nettle/sha2.h>

void
hash_sha256_hex(const void *bytes, size_t size, char out[HASH_HEX_LEN + 1])
{
	struct sha256_ctx ctx;
	uint8_t md[SHA256_DIGEST_SIZE];
	static const char hex[] = "0123456789abcdef";

	sha256_init(&ctx);
	sha256_update(&ctx, size, bytes);
	sha256_digest(&ctx, sizeof(md), md);
	for (unsigned i = 0; i < SHA256_DIGEST_SIZE; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[HASH_HEX_LEN] = '\0';
}
