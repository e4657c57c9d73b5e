/* Internal to the store_*.c files: the engine under the store.
 *
 * The store's logic (store_project.c, store_run.c, store_query.c, ...) is
 * written once, against a small engine of prepared statements: prepare
 * (cached per static SQL string), bind, step, read columns.  Two engines
 * implement it: SQLite (store_lite.c, the embedded default, exactly as
 * before) and PostgreSQL over libpq (store_pg.c).  SQL is written in the
 * dialect both understand; the PostgreSQL engine rewrites SQLite's `?` and
 * `?N` placeholders into `$N` when it prepares a statement.  Where the two
 * dialects differ (JSON functions, the schema) the caller gives both texts
 * (store_stmt2). */
#ifndef T2I_STORE_INTERNAL_H
#define T2I_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

#define STORE_STMT_MAX 96

enum store_backend { STORE_SQLITE = 0, STORE_PG };

/* Result of stmt_step(), the values of SQLite's for the SQLite engine. */
#define STMT_ROW SQLITE_ROW
#define STMT_DONE SQLITE_DONE
#define STMT_ERROR SQLITE_ERROR

/* Column types, as sqlite3_column_type() names them. */
#define STMT_INTEGER SQLITE_INTEGER
#define STMT_FLOAT SQLITE_FLOAT
#define STMT_TEXT SQLITE_TEXT
#define STMT_NULL SQLITE_NULL

struct pg;			/* store_pg.c */
struct pg_stmt;

struct stmt {
	struct store *st;
	const char *sql;	/* static string: its address is the key */
	sqlite3_stmt *lite;	/* the SQLite engine's */
	struct pg_stmt *pg;	/* the PostgreSQL engine's */
};

struct store {
	enum store_backend backend;
	sqlite3 *db;		/* SQLite */
	struct pg *pg;		/* PostgreSQL */
	bool readonly;
	bool in_tx;
	struct stmt stmts[STORE_STMT_MAX];
	int nstmts;
	struct stmt *last;	/* the statement stepped last, for store_changes */
	uint64_t failed_commits;
	uint64_t tx_serial;	/* transactions begun */
	char errbuf[512];	/* the last PostgreSQL error, for store_errmsg */
};

/* A cached prepared statement for a static SQL string, reset and with its
 * bindings cleared; NULL (logged) on error.  store_stmt2 gives the text
 * the PostgreSQL engine prepares instead (NULL: the same). */
struct stmt *store_stmt(struct store *st, const char *sql);
struct stmt *store_stmt2(struct store *st, const char *sql, const char *pg_sql);

/* Binds a string or NULL. */
int store_bind_text(struct stmt *s, int i, const char *v);
int stmt_bind_int(struct stmt *s, int i, int v);
int stmt_bind_int64(struct stmt *s, int i, int64_t v);
int stmt_bind_double(struct stmt *s, int i, double v);
int stmt_bind_null(struct stmt *s, int i);

/* STMT_ROW, STMT_DONE or STMT_ERROR. */
int stmt_step(struct stmt *s);
void stmt_reset(struct stmt *s);

int stmt_column_count(struct stmt *s);
const char *stmt_column_name(struct stmt *s, int i);
int stmt_column_type(struct stmt *s, int i);
int stmt_column_int(struct stmt *s, int i);
int64_t stmt_column_int64(struct stmt *s, int i);
double stmt_column_double(struct stmt *s, int i);
int stmt_column_bytes(struct stmt *s, int i);

/* Steps a statement that returns no rows; 0 or -1 (logged). */
int store_exec_stmt(struct store *st, struct stmt *s);

/* Rows changed by the last statement. */
int64_t store_changes(struct store *st);

/* A column as a jansson value: text, integer, real or null. */
json_t *store_column_json(struct stmt *s, int i);

/* Column text, "" for NULL; valid until the next step or reset. */
const char *store_column_text(struct stmt *s, int i);

/* --- the PostgreSQL engine (store_pg.c) --- */

struct pg *pg_open(const char *conninfo, const char *password, double timeout_s, char *err,
		   size_t errlen);
void pg_close(struct pg *pg);
/* The first connection, at store_open: its failure is an error to report. */
int pg_connect_first(struct store *st, char *err, size_t errlen);
/* A statement without parameters or rows (BEGIN, DDL). */
int pg_exec(struct store *st, const char *sql);
struct pg_stmt *pg_prepare(struct store *st, const char *sql);
void pg_stmt_free(struct pg_stmt *ps);
int pg_bind(struct pg_stmt *ps, int i, const char *text, size_t len);
int pg_step(struct store *st, struct pg_stmt *ps);
void pg_reset(struct pg_stmt *ps);
int pg_column_count(struct pg_stmt *ps);
const char *pg_column_name(struct pg_stmt *ps, int i);
int pg_column_type(struct pg_stmt *ps, int i);
const char *pg_column_text(struct pg_stmt *ps, int i);
int pg_column_bytes(struct pg_stmt *ps, int i);
int64_t pg_changes(struct pg_stmt *ps);
/* Makes the connection usable again after it was lost: backoff between
 * attempts, each bounded by the timeout; every statement is prepared
 * again on its next use.  0 when connected. */
int pg_reconnect(struct store *st);
bool pg_lost(const struct pg *pg);
int pg_socket(const struct pg *pg);
int pg_notifies(struct store *st, void (*fn)(void *arg, const char *payload), void *arg);
void pg_stats(const struct pg *pg, struct store_stats *out);

/* The schema migrations of each engine (store_schema.c): migration N
 * takes the schema from version N to N+1; the two lists move together. */
extern const char *const store_lite_migrations[];
extern const char *const store_pg_migrations[];
extern const int store_nmigrations;

#endif
