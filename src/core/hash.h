/* hash: the digests t2istage computes, over nettle.  Content addresses of
 * image files and cache keys are lower-case hex SHA-256. */
#ifndef T2I_HASH_H
#define T2I_HASH_H

#include <stddef.h>

#define HASH_HEX_LEN 64

/* Lower-case hex SHA-256 of bytes into out (HASH_HEX_LEN + 1 bytes). */
void hash_sha256_hex(const void *bytes, size_t size, char out[HASH_HEX_LEN + 1]);

/* A name-based UUID of bytes: the first 128 bits of their SHA-256, marked
 * version 8 and variant 10 (RFC 9562's form for UUIDs made another way
 * than its own), written lower case into out (37 bytes).  The same bytes
 * always give the same UUID. */
void hash_uuid(const void *bytes, size_t size, char out[37]);

#endif
