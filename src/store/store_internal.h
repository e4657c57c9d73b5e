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

/* Columns from to to (excluded) of a row as an object whose keys are the
 * column names; JSON text columns named in json_cols are decoded. */
json_t *store_row_object(sqlite3_stmt *s, int from, int to, const char *const *json_cols);

/* An image row's pending provider task (store_task.c) as a JSON object, or
 * null: what a plugin checkpointed and is polling.  g is generated_images. */
#define PROVIDER_TASK_COLUMN                                                              \
	" (SELECT json_object('provider', coalesce(tp.name, ''), 'state', json(t.state),"  \
	"  'checkpoints', t.checkpoints, 'created_at', t.created_at,"                      \
	"  'updated_at', t.updated_at) FROM provider_tasks t"                              \
	"  LEFT JOIN model_providers tp ON tp.id = t.model_provider_id"                    \
	"  WHERE t.image_id = g.id) AS provider_task"
/* The columns of an image as every view shows it (g generated_images, s its
 * storyboard, p its provider), and those of them that are JSON. */
#define STORE_IMAGE_COLS                                                                  \
	"g.id, g.storyboard_id, s.position AS storyboard_index, g.run_id,"                 \
	" g.status, g.is_primary, g.primary_id, g.image_url AS url, g.width, g.height,"     \
	" g.file_path, g.file_size, g.thumbnail_path, g.sha256, g.mime, g.cached,"         \
	" g.attempts, g.error, g.generation_params, p.name AS provider,"                   \
	" g.created_at, g.updated_at," PROVIDER_TASK_COLUMN
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
json_t *store_page_rows(sqlite3_stmt *s, int limit, char next[STORE_CURSOR_MAX],
			json_t *(*item)(sqlite3_stmt *s), void (*key)(sqlite3_stmt *s, char *next));

#endif
