/* urlkey: the key of signed image URLs, a file of raw bytes.  Either named
 * by http.url_key_file (read by config) or made once by `serve` in the
 * state directory: 32 random bytes, mode 0600. */
#ifndef T2I_URLKEY_H
#define T2I_URLKEY_H

#include <stddef.h>

#define URLKEY_MIN 32		/* bytes: HMAC-SHA256 wants a key this long */
#define URLKEY_MAX 4096		/* a larger file is a mistake, not a key */
#define URLKEY_FILE "url.key"	/* the made key, beside the database */

/* Reads the whole file into *key (malloc'd, *len bytes).  On error -1 and
 * one line naming the path in err. */
int urlkey_read(const char *path, unsigned char **key, size_t *len, char *err, size_t errlen);

/* Reads path, or when it does not exist makes it: URLKEY_MIN bytes of
 * getrandom(), written to a temporary file that is linked into place, so
 * that two processes starting at once end up with the same key. */
int urlkey_make(const char *path, unsigned char **key, size_t *len, char *err, size_t errlen);

/* Wipes and frees a key. */
void urlkey_free(unsigned char *key, size_t len);

#endif
