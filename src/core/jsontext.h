/* jsontext: JSON text whose numbers read as people write them.
 *
 * jansson 2.14 writes every real of a document with one precision, 17
 * significant digits by default, so an option written as 0.6 comes back as
 * 0.59999999999999998; a fixed 15 (DBL_DIG) would print 0.6 but turn
 * 0.30000000000000004, a double of its own, into 0.3.  These functions write
 * each real in the fewest significant digits that read back as the same
 * double, as Python's repr() and JavaScript's Number.toString() do.  Every
 * JSON text the program hands out (API answers, events, the database's JSON
 * columns, messages between processes, provider requests) goes through
 * them.  Self-contained (jansson and libc only): the HTTP plugins compile it
 * in too, which is why its symbols are hidden (a plugin exports its ABI
 * symbols and nothing else; the binary exports nothing either way). */
#ifndef T2I_JSONTEXT_H
#define T2I_JSONTEXT_H

#include <jansson.h>
#include <stddef.h>

#define JSONTEXT_HIDDEN __attribute__((visibility("hidden")))

/* json_dumps(v, flags) with every real in its shortest form; a precision in
 * flags (JSON_REAL_PRECISION) is ignored.  malloc'ed text, or NULL. */
JSONTEXT_HIDDEN char *jsontext_dumps(const json_t *v, size_t flags);

/* Rewrites, in place, every real number of a JSON text written by jansson
 * to its shortest form; strings and integers are left alone, and a number
 * that would not get shorter keeps its text. */
JSONTEXT_HIDDEN void jsontext_shorten(char *text);

/* The shortest text of d that strtod() reads back as d, always with a "."
 * or an exponent (so that it reads back as a real): "0.6", "1.0", "1e-7",
 * "1e22".  Fixed notation for decimal exponents -4 to 15, as Python writes
 * them.  d must be finite.  Returns the length, or -1 when out does not
 * hold it (32 bytes always do). */
JSONTEXT_HIDDEN int jsontext_real(double d, char *out, size_t outlen);

#endif
