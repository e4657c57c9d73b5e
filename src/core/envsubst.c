/* envsubst: $NAME, ${NAME} and ${NAME:-WORD} in configured paths. */
#include "envsubst.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_START "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
#define NAME_CHARS NAME_START "0123456789"

/* Appends n bytes of s to the buffer (*buf, *len, *cap). */
static bool
append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = (*len + n + 1) * 2;
		char *nbuf = realloc(*buf, ncap);

		if (nbuf == NULL)
			return false;
		*buf = nbuf;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return true;
}

/* The reference starting at p (just after '$'): its name in name, the
 * default (NULL when none) in *word and *wordlen; returns its length after
 * the '$', or 0 when it is malformed. */
static size_t
parse_ref(const char *p, char *name, size_t namelen, const char **word, size_t *wordlen)
{
	bool braced = *p == '{';
	const char *n = p + braced;
	size_t nlen = *n != '\0' && strchr(NAME_START, *n) != NULL ? strspn(n, NAME_CHARS) : 0;
	const char *end;

	*word = NULL;
	*wordlen = 0;
	if (nlen == 0 || nlen >= namelen)
		return 0;
	snprintf(name, namelen, "%.*s", (int)nlen, n);
	if (!braced)
		return nlen;
	end = n + nlen;
	if (strncmp(end, ":-", 2) == 0) {
		*word = end + 2;
		*wordlen = strcspn(*word, "}");
		end = *word + *wordlen;
	}
	return *end == '}' ? (size_t)(end + 1 - p) : 0;
}

char *
envsubst(const char *in, char *why, size_t whylen)
{
	char *out = NULL, name[128];
	size_t len = 0, cap = 0;
	bool ok = append(&out, &len, &cap, "", 0);

	for (const char *p = in; ok && *p != '\0';) {
		size_t lit = strcspn(p, "$"), used, wordlen;
		const char *word, *value;

		ok = append(&out, &len, &cap, p, lit);
		if ((p += lit)[0] != '$' || !ok)
			continue;
		if (p[1] == '$') {
			ok = append(&out, &len, &cap, "$", 1);
			p += 2;
			continue;
		}
		if ((used = parse_ref(p + 1, name, sizeof(name), &word, &wordlen)) == 0) {
			snprintf(why, whylen, "\"$\" at offset %zu starts no $NAME, ${NAME} or "
				 "${NAME:-DEFAULT} (write $$ for a \"$\")", (size_t)(p - in));
			free(out);
			return NULL;
		}
		p += 1 + used;
		if ((value = getenv(name)) != NULL && value[0] != '\0') {
			ok = append(&out, &len, &cap, value, strlen(value));
		} else if (word != NULL) {
			ok = append(&out, &len, &cap, word, wordlen);
		} else {
			snprintf(why, whylen, "$%s is not set%s", name,
				 strcmp(name, "CREDENTIALS_DIRECTORY") == 0
				 ? " (systemd sets it for a unit with LoadCredential=)" : "");
			free(out);
			return NULL;
		}
	}
	if (!ok) {
		snprintf(why, whylen, "out of memory");
		free(out);
		return NULL;
	}
	return out;
}
