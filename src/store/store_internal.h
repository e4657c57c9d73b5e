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

#define STORE_STMT_MAX 128

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
	bool lost;		/* a transaction's writes were rolled back by a failure */
	char err[320];		/* SQLite: the last failure's message and code, "" none */
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

/* Records a failure of SQLite (what store_errmsg says from now on) and
 * notices when SQLite rolled back the transaction by itself (SQLITE_FULL,
 * SQLITE_IOERR, ...): the store is then outside one, and its writes so far
 * are lost. */
void store_failed(struct store *st, int rc);

/* A step of s returned rc, an error: logs it, records it (store_failed),
 * resets s, and opens a transaction again after SQLite rolled one back. */
void store_step_failed(struct store *st, struct stmt *s, int rc);

/* Steps a statement that returns no rows; 0 or -1 (logged). */
int store_exec_stmt(struct store *st, struct stmt *s);

/* Steps a statement that returns at most one row of one integer (an
 * UPDATE ... RETURNING); the integer, or -1 without a row or on error
 * (logged). */
int64_t store_exec_int64(struct store *st, struct stmt *s);

/* The first column of every row of sql, whose one parameter is key, as a
 * JSON array of strings; NULL on error. */
json_t *store_texts(struct store *st, const char *sql, const char *key);

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

/* Columns from to to (excluded) of a row as an object whose keys are the
 * column names; JSON text columns named in json_cols are decoded. */
json_t *store_row_object(struct stmt *s, int from, int to, const char *const *json_cols);

/* An image row's pending provider task (store_task.c) as a JSON object, or
 * null: what a plugin checkpointed and is polling.  g is generated_images.
 * OBJ and STATE are the dialect's: SQLite's (TASK_LITE) or PostgreSQL's
 * (TASK_PG). */
#define PROVIDER_TASK_COLUMN(OBJ, STATE)                                                  \
	" (SELECT " OBJ "('provider', coalesce(tp.name, ''), 'state', " STATE ","          \
	"  'checkpoints', t.checkpoints, 'created_at', t.created_at,"                      \
	"  'updated_at', t.updated_at) FROM provider_tasks t"                              \
	"  LEFT JOIN model_providers tp ON tp.id = t.model_provider_id"                    \
	"  WHERE t.image_id = g.id) AS provider_task"
#define TASK_LITE PROVIDER_TASK_COLUMN("json_object", "json(t.state)")
#define TASK_PG PROVIDER_TASK_COLUMN("json_build_object", "t.state::json")
/* The columns of an image as every view shows it (g generated_images, s its
 * storyboard, p its provider), and those of them that are JSON; TASK is
 * TASK_LITE or TASK_PG. */
#define STORE_IMAGE_COLS(TASK)                                                            \
	"g.id, g.storyboard_id, s.position AS storyboard_index, g.run_id,"                 \
	" g.status, g.is_primary, g.primary_id, g.image_url AS url, g.width, g.height,"     \
	" g.file_path, g.file_size, g.thumbnail_path, g.sha256, g.mime, g.cached,"         \
	" g.attempts, g.error, g.generation_params, p.name AS provider,"                   \
	" g.created_at, g.updated_at," TASK
extern const char *const store_image_json_cols[];

/* n bytes of raw as lower-case hex into out (2n + 1 bytes), and back:
 * false unless hex is lower-case hex of fewer than rawlen bytes, none NUL. */
void store_hex_encode(const char *raw, size_t n, char *out);
bool store_hex_decode(const char *hex, char *raw, size_t rawlen);
/* Page cursors (store_page.c): out is the hex of "tag|a|b" ("" when it does
 * not fit); read gives a and b back when cursor is one of tag's. */
void store_cursor_make(char out[STORE_CURSOR_MAX], char tag, const char *a, const char *b);
bool store_cursor_read(const char *cursor, char tag, char a[STORE_CURSOR_MAX],
		       char b[STORE_CURSOR_MAX]);
/* Digits only, into *v. */
bool store_cursor_int(const char *text, int64_t *v);
/* The first limit rows of s, which selects limit + 1, as objects made by
 * item(); next gets key() of the last of them when a row more came, else
 * "".  NULL on error. */
json_t *store_page_rows(struct stmt *s, int limit, char next[STORE_CURSOR_MAX],
			json_t *(*item)(struct stmt *s), void (*key)(struct stmt *s, char *next));

#endif
