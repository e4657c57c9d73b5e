/* fuzz: what the harnesses share.  Each harness is one file fuzz_NAME.c
 * defining LLVMFuzzerTestOneInput(); it is linked with libFuzzer by
 * `make fuzz`, and with replay.c, which feeds it the files of its corpus,
 * by `make check`. */
#ifndef T2I_FUZZ_H
#define T2I_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A malloc'd NUL-terminated copy of the input (aborts when out of memory:
 * a harness has nothing better to do). */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* Splits the input at each sep into at most max NUL-terminated fields (the
 * last takes the rest), copied into one malloc'd block that *block gets.
 * Fields past the input's end are NULL.  Returns the number found. */
size_t fuzz_fields(const uint8_t *data, size_t size, char sep, char **fields, size_t max,
		   char **block);

/* A scratch directory of this process, made on first use. */
const char *fuzz_tmpdir(void);

#endif
