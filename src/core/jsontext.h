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
#include <stdbool.h>
#include <stddef.h>

#define JSONTEXT_HIDDEN __attribute__((visibility("hidden")))

/* json_dumps(v, flags) with every real in its shortest form; a precision in
 * flags (JSON_REAL_PRECISION) is ignored.  malloc'ed text, or NULL, also
 * when any allocation failed on the way (see jsontext_load). */
JSONTEXT_HIDDEN char *jsontext_dumps(const json_t *v, size_t flags);

/* json_loadb(text, len, flags, je) that tells a fault of the text from a
 * want of memory and never hands back a value damaged by one: NULL with
 * *oom set when an allocation failed on the way, whatever jansson made of
 * it.  Why: jansson 2.14 ignores some of its allocation failures.  Its
 * lexer then drops a byte of a string (lex_save() ignores
 * strbuffer_append_byte()'s error), so a parse that succeeds holds a
 * string one character short; its dumper drops an object's key ('{"a":1,
 * :"ink"}'); a later failure in the parser reads as a syntax error, and a
 * failure of its first allocation leaves the error empty.  Found by
 * failing each allocation of the project parser in turn
 * (tests/system/test_failinject.py). */
JSONTEXT_HIDDEN json_t *jsontext_load(const char *text, size_t len, size_t flags,
				      json_error_t *je, bool *oom);

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
