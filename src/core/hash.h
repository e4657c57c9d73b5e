/* hash: the digests t2istage computes, over nettle.  Content addresses of
 * image files and cache keys are lower-case hex SHA-256. */
#ifndef T2I_HASH_H
#define T2I_HASH_H

#include <stddef.h>

#define HASH_HEX_LEN 64

/* Lower-case hex SHA-256 of bytes into out (HASH_HEX_LEN + 1 bytes). */
void hash_sha256_hex(const void *bytes, size_t size, char out[HASH_HEX_LEN + 1]);

#endif
