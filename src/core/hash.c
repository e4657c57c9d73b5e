/* hash: SHA-256, HMAC-SHA256 and base64 through nettle.
 *
 * nettle rather than OpenSSL: OpenSSL 3 loads its provider and config on
 * the first digest, which measured ~2 ms in every short-lived worker. */
#include "hash.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>

static void
digest(const void *bytes, size_t size, uint8_t md[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, size, bytes);
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, md);
}

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
	uint8_t md[SHA256_DIGEST_SIZE];

	digest(bytes, size, md);
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

_Static_assert(BASE64_ENCODE_RAW_LENGTH(SHA256_DIGEST_SIZE) + 3 == HASH_WEBHOOK_SIG_LEN,
	       "signature header length");

void
hash_webhook_signature(const void *key, size_t keylen, const char *id, const char *timestamp,
		       const char *body, size_t bodylen, char out[HASH_WEBHOOK_SIG_LEN + 1])
{
	struct hmac_sha256_ctx ctx;
	uint8_t mac[SHA256_DIGEST_SIZE];

	hmac_sha256_set_key(&ctx, keylen, key);
	hmac_sha256_update(&ctx, strlen(id), (const uint8_t *)id);
	hmac_sha256_update(&ctx, 1, (const uint8_t *)".");
	hmac_sha256_update(&ctx, strlen(timestamp), (const uint8_t *)timestamp);
	hmac_sha256_update(&ctx, 1, (const uint8_t *)".");
	hmac_sha256_update(&ctx, bodylen, (const uint8_t *)body);
	hmac_sha256_digest(&ctx, sizeof(mac), mac);
	memcpy(out, "v1,", 3);
	base64_encode_raw(out + 3, sizeof(mac), mac);
	out[HASH_WEBHOOK_SIG_LEN] = '\0';
	/* The context holds the key's inner and outer pads. */
	explicit_bzero(&ctx, sizeof(ctx));
}

unsigned char *
hash_base64_decode(const char *in, size_t *outlen)
{
	struct base64_decode_ctx ctx;
	size_t n = strlen(in), len = BASE64_DECODE_LENGTH(n);
	unsigned char *out = malloc(len + 1);

	if (out == NULL)
		return NULL;
	base64_decode_init(&ctx);
	/* nettle skips whitespace inside the input; a secret has none. */
	if (strpbrk(in, " \t\r\n") != NULL || n % 4 != 0 ||
	    !base64_decode_update(&ctx, &len, out, n, in) || !base64_decode_final(&ctx)) {
		explicit_bzero(out, BASE64_DECODE_LENGTH(n) + 1);
		free(out);
		return NULL;
	}
	*outlen = len;
	return out;
}
