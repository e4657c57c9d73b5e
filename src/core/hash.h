/* hash: the digests t2istage computes, over nettle.  Content addresses of
 * image files and cache keys are lower-case hex SHA-256; signed image URLs
 * carry a lower-case hex HMAC-SHA256. */
#ifndef T2I_HASH_H
#define T2I_HASH_H

#include <stdbool.h>
#include <stddef.h>

#define HASH_HEX_LEN 64

/* Lower-case hex SHA-256 of bytes into out (HASH_HEX_LEN + 1 bytes). */
void hash_sha256_hex(const void *bytes, size_t size, char out[HASH_HEX_LEN + 1]);

/* Lower-case hex HMAC-SHA256 (RFC 2104) of msg under key into out. */
void hash_hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
			  char out[HASH_HEX_LEN + 1]);

/* got equals want (both NUL-terminated), in a time that depends on the
 * length of want only: every byte is compared, with no early exit. */
bool hash_equal_ct(const char *got, const char *want);

#endif
