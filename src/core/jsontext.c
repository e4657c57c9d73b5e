/* jsontext: JSON text whose numbers read as people write them.
 *
 * jansson has no per-value hook for reals, so the text it writes (17
 * significant digits, which always read back exactly) is rewritten
 * afterwards: each real token is replaced by the shortest text of the same
 * double.  The scan only has to tell strings from numbers in text that
 * jansson itself produced: outside a string, a digit or "-" starts a
 * number.  The program never calls setlocale(), so strtod() and printf()
 * use the "." that JSON uses; should a plugin change the locale, a token
 * that does not read back whole keeps its original text. */
#include "jsontext.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REAL_DIGITS_MAX 17	/* enough for every double (DBL_DECIMAL_DIG) */
#define TOKEN_MAX 64		/* jansson's reals are far shorter */

/* Fewest significant digits p such that "%.{p-1}e" reads back as d; the
 * text is left in e. */
static int
shortest_digits(double d, char *e, size_t elen)
{
	int p;

	for (p = 1; p < REAL_DIGITS_MAX; p++) {
		snprintf(e, elen, "%.*e", p - 1, d);
		if (strtod(e, NULL) == d)
			return p;
	}
	snprintf(e, elen, "%.*e", REAL_DIGITS_MAX - 1, d);
	return REAL_DIGITS_MAX;
}

/* "1.5e-05" as jansson writes exponents: "1.5e-5", "1e+22" as "1e22". */
static int
scientific(const char *e, char *out, size_t outlen)
{
	const char *x = strchr(e, 'e');
	int exp = (int)strtol(x + 1, NULL, 10);

	return snprintf(out, outlen, "%.*se%d", (int)(x - e), e, exp);
}

int
jsontext_real(double d, char *out, size_t outlen)
{
	char e[40];
	int p = shortest_digits(d, e, sizeof(e)), exp = (int)strtol(strchr(e, 'e') + 1, NULL, 10), n;

	if (exp >= -4 && exp < 16) {
		/* p significant digits, the last one at 10^(exp - p + 1). */
		n = snprintf(out, outlen, "%.*f", p - 1 - exp > 0 ? p - 1 - exp : 0, d);
		if (n > 0 && (size_t)n < outlen && strchr(out, '.') == NULL) {
			if ((size_t)n + 2 >= outlen)
				return -1;
			memcpy(out + n, ".0", 3);
			n += 2;
		}
	} else {
		n = scientific(e, out, outlen);
	}
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	/* Fixed notation rounds at the same digit as e did, so this holds;
	 * checked all the same, as a wrong digit would be silent. */
	if (strtod(out, NULL) != d) {
		snprintf(e, sizeof(e), "%.*e", REAL_DIGITS_MAX - 1, d);
		n = scientific(e, out, outlen);
		if (n < 0 || (size_t)n >= outlen)
			return -1;
	}
	return n;
}

/* Copies the string starting at *r (its opening quote) to w. */
static char *
copy_string(char *w, const char **r)
{
	const char *s = *r;

	*w++ = *s++;
	while (*s != '\0' && *s != '"') {
		if (*s == '\\' && s[1] != '\0')
			*w++ = *s++;
		*w++ = *s++;
	}
	if (*s == '"')
		*w++ = *s++;
	*r = s;
	return w;
}

/* A fraction or an exponent: what makes a JSON number a real. */
static bool
is_real(const char *s, size_t n)
{
	return memchr(s, '.', n) != NULL || memchr(s, 'e', n) != NULL ||
	       memchr(s, 'E', n) != NULL;
}

/* Copies the number starting at *r to w, shortened when it is a real. */
static char *
copy_number(char *w, const char **r)
{
	const char *s = *r;
	size_t n = strspn(s, "+-.0123456789eE");
	char tok[TOKEN_MAX], out[32], *end;
	int len = -1;
	double d;

	/* w may overlap the token: it is read into tok before w is written. */
	if (n < sizeof(tok) && is_real(s, n)) {
		memcpy(tok, s, n);
		tok[n] = '\0';
		d = strtod(tok, &end);
		if (*end == '\0' && isfinite(d))
			len = jsontext_real(d, out, sizeof(out));
	}
	if (len > 0 && (size_t)len <= n) {
		memcpy(w, out, (size_t)len);
		w += len;
	} else {
		memmove(w, s, n);
		w += n;
	}
	*r = s + n;
	return w;
}

/* The text only shrinks, so the write position never passes the read
 * position. */
void
jsontext_shorten(char *text)
{
	const char *r = text;
	char *w = text;

	while (*r != '\0') {
		if (*r == '"')
			w = copy_string(w, &r);
		else if (*r == '-' || (*r >= '0' && *r <= '9'))
			w = copy_number(w, &r);
		else
			*w++ = *r++;
	}
	*w = '\0';
}

/* Set by watch_malloc while a call of jansson is watched (see
 * jsontext_load).  The program uses jansson on one thread at a time, and
 * the watch puts jansson's allocator back before it returns. */
static bool watch_failed;

static void *
watch_malloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL)
		watch_failed = true;
	return p;
}

struct watch {
	json_malloc_t m;
	json_free_t f;
};

static void
watch_begin(struct watch *w)
{
	json_get_alloc_funcs(&w->m, &w->f);
	/* watch_malloc's memory is malloc's: free() releases it later. */
	json_set_alloc_funcs(watch_malloc, w->f);
	watch_failed = false;
}

/* True when an allocation failed since watch_begin. */
static bool
watch_end(const struct watch *w)
{
	json_set_alloc_funcs(w->m, w->f);
	return watch_failed;
}

char *
jsontext_dumps(const json_t *v, size_t flags)
{
	struct watch w;
	char *text;

	watch_begin(&w);
	text = json_dumps(v, flags & ~(size_t)JSON_REAL_PRECISION(0x1F));
	if (watch_end(&w)) {
		free(text);
		return NULL;
	}
	if (text != NULL)
		jsontext_shorten(text);
	return text;
}

json_t *
jsontext_load(const char *text, size_t len, size_t flags, json_error_t *je, bool *oom)
{
	struct watch w;
	json_t *v;

	watch_begin(&w);
	v = json_loadb(text, len, flags, je);
	*oom = watch_end(&w);
	if (*oom) {
		json_decref(v);
		return NULL;
	}
	return v;
}
