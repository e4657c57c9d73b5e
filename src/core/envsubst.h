/* envsubst: environment variables in the paths of secret files, so that a
 * configuration can name systemd credentials:
 *
 *   token_file = "${CREDENTIALS_DIRECTORY}/t2istage.token";
 *   token_file = "${CREDENTIALS_DIRECTORY:-/etc/credstore}/t2istage.token";
 *
 * $NAME and ${NAME} are replaced by the variable's value; ${NAME:-WORD} by
 * WORD when the variable is unset or empty (the same file read by the CLI
 * outside the unit); $$ is one "$".  An unset or empty variable without a
 * default is an error, never an empty string: "/t2istage.token" would be
 * another file. */
#ifndef T2I_ENVSUBST_H
#define T2I_ENVSUBST_H

#include <stddef.h>

/* The expansion of in, malloc'd; NULL with one line in why. */
char *envsubst(const char *in, char *why, size_t whylen);

#endif
