/* Internal to the store_*.c files. */
#ifndef T2I_STORE_INTERNAL_H
#define T2I_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

#define STORE_STMT_MAX 128

struct store {
	sqlite3 *db;
	bool readonly;
	bool in_tx;
	bool lost;		/* a transaction's writes were rolled back by a failure */
	char err[320];		/* the last failure's message and code, "" none */
	struct {
		const char *sql;	/* static string: its address is the key */
		sqlite3_stmt *stmt;
	} stmts[STORE_STMT_MAX];
	int nstmts;
};

/* A cached prepared statement for a static SQL string, reset and with its
 * bindings cleared; NULL (logged) on error. */
sqlite3_stmt *store_stmt(struct store *st, const char *sql);

/* Binds a string or NULL. */
int store_bind_text(sqlite3_stmt *s, int i, const char *v);

/* Records a failure of SQLite (what store_errmsg says from now on) and
 * notices when SQLite rolled back the transaction by itself (SQLITE_FULL,
 * SQLITE_IOERR, ...): the store is then outside one, and its writes so far
 * are lost. */
void store_failed(struct store *st, int rc);

/* Steps a statement that returns no rows; 0 or -1 (logged). */
int store_exec_stmt(struct store *st, sqlite3_stmt *s);

/* A column as a jansson value: text, integer, real or null. */
json_t *store_column_json(sqlite3_stmt *s, int i);

/* Column text copied, "" for NULL. */
const char *store_column_text(sqlite3_stmt *s, int i);

#endif
