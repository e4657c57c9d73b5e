/* hash: the digests and MACs t2istage computes, over nettle.  Content
 * addresses of image files and cache keys are lower-case hex SHA-256;
 * webhook deliveries are signed the Standard Webhooks way (HMAC-SHA256,
 * base64); signed image URLs carry a lower-case hex HMAC-SHA256. */
#ifndef T2I_HASH_H
#define T2I_HASH_H

#include <stdbool.h>
#include <stddef.h>

#define HASH_HEX_LEN 64
/* "v1," and the base64 of a 32-byte HMAC. */
#define HASH_WEBHOOK_SIG_LEN (3 + 44)

/* Lower-case hex SHA-256 of bytes into out (HASH_HEX_LEN + 1 bytes). */
void hash_sha256_hex(const void *bytes, size_t size, char out[HASH_HEX_LEN + 1]);

/* A name-based UUID of bytes: the first 128 bits of their SHA-256, marked
 * version 8 and variant 10 (RFC 9562's form for UUIDs made another way
 * than its own), written lower case into out (37 bytes).  The same bytes
 * always give the same UUID. */
void hash_uuid(const void *bytes, size_t size, char out[37]);

/* The webhook-signature header value "v1,<base64 HMAC-SHA256 of
 * id.timestamp.body>" under key (the secret's bytes). */
void hash_webhook_signature(const void *key, size_t keylen, const char *id,
			    const char *timestamp, const char *body, size_t bodylen,
			    char out[HASH_WEBHOOK_SIG_LEN + 1]);

/* Decodes standard base64 (with padding) into a malloc'd buffer: its length
 * in *outlen, or NULL when in is not base64. */
unsigned char *hash_base64_decode(const char *in, size_t *outlen);

/* Lower-case hex HMAC-SHA256 (RFC 2104) of msg under key into out. */
void hash_hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
			  char out[HASH_HEX_LEN + 1]);

/* got equals want (both NUL-terminated), in a time that depends on the
 * length of want only: every byte is compared, with no early exit. */
bool hash_equal_ct(const char *got, const char *want);

#endif
