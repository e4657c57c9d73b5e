/* store_page: the long lists of the HTTP API a page at a time: a project's
 * storyboards (with their current images), its images, a run's events.
 *
 * Keyset pagination: a page starts after the key of the previous page's
 * last item, found through an index, so no page costs an OFFSET scan and a
 * row deleted meanwhile moves nothing.  A cursor is the hex of "T|A|B": the
 * view's tag and the key, opaque to clients; one that is not of the view
 * it is given to is refused. */
#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_RAW ((STORE_CURSOR_MAX - 1) / 2)

void
store_hex_encode(const char *raw, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[(unsigned char)raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool
store_hex_decode(const char *hex, char *raw, size_t rawlen)
{
	size_t n = strlen(hex);

	if (n % 2 != 0 || n / 2 >= rawlen)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return false;
		raw[i] = (char)(hi << 4 | lo);
	}
	raw[n / 2] = '\0';
	return true;
}

void
store_cursor_make(char out[STORE_CURSOR_MAX], char tag, const char *a, const char *b)
{
	char raw[CURSOR_RAW + 1];
	int n = snprintf(raw, sizeof(raw), "%c|%s|%s", tag, a, b != NULL ? b : "");

	out[0] = '\0';
	if (n >= 0 && n < (int)sizeof(raw))
		store_hex_encode(raw, (size_t)n, out);
}

bool
store_cursor_read(const char *cursor, char tag, char a[STORE_CURSOR_MAX],
		  char b[STORE_CURSOR_MAX])
{
	char raw[CURSOR_RAW + 1], *bar;

	if (strlen(cursor) < 6 || !store_hex_decode(cursor, raw, sizeof(raw)))
		return false;
	if (raw[0] != tag || raw[1] != '|' || (bar = strchr(raw + 2, '|')) == NULL)
		return false;
	*bar = '\0';
	snprintf(a, STORE_CURSOR_MAX, "%s", raw + 2);
	snprintf(b, STORE_CURSOR_MAX, "%s", bar + 1);
	return strchr(b, '|') == NULL;
}

bool
store_cursor_int(const char *text, int64_t *v)
{
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return false;
	errno = 0;
	*v = strtoll(text, &end, 10);
	return *end == '\0' && errno == 0;
}

json_t *
store_page_rows(struct stmt *s, int limit, char next[STORE_CURSOR_MAX],
	  json_t *(*item)(struct stmt *s), void (*key)(struct stmt *s, char *next))
{
	char last[STORE_CURSOR_MAX] = "";
	json_t *out = json_array();
	int rc, n = 0;

	next[0] = '\0';
	while ((rc = stmt_step(s)) == STMT_ROW) {
		if (n == limit) {
			snprintf(next, STORE_CURSOR_MAX, "%s", last);
			rc = STMT_DONE;
			break;
		}
		json_array_append_new(out, item(s));
		key(s, last);
		n++;
	}
	stmt_reset(s);
	if (rc != STMT_DONE) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* --- a project's storyboards, each with its current image --- */

#define SB_COLS 5	/* the storyboard's, before the image's */

static json_t *
storyboard_item(struct stmt *s)
{
	static const char *const cols[] = { "params", NULL };
	json_t *sb = store_row_object(s, 0, SB_COLS, cols);

	json_object_set_new(sb, "image",
			    stmt_column_type(s, SB_COLS) == STMT_NULL
				    ? json_null()
				    : store_row_object(s, SB_COLS, stmt_column_count(s),
						       store_image_json_cols));
	return sb;
}

/* The cursor of a row keyed by one integer column. */
static void
int_key(struct stmt *s, int col, char tag, char *next)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRId64, (int64_t)stmt_column_int64(s, col));
	store_cursor_make(next, tag, v, NULL);
}

/* A list keyed by one integer: sql binds the owner's id, the key to start
 * after and the number of rows. */
struct int_page {
	const char *sql;
	const char *pg_sql;	/* PostgreSQL's, NULL: the same */
	char tag;
	int64_t first;		/* the key before the first item */
	json_t *(*item)(struct stmt *s);
	void (*key)(struct stmt *s, char *next);
};

static json_t *
int_page(struct store *st, const struct int_page *pg, const char *owner, const char *after,
	 int limit, char next[STORE_CURSOR_MAX], bool *bad_cursor)
{
	char a[STORE_CURSOR_MAX], b[STORE_CURSOR_MAX];
	int64_t k = pg->first;
	struct stmt *s;

	*bad_cursor = after != NULL && (!store_cursor_read(after, pg->tag, a, b) ||
					!store_cursor_int(a, &k) || b[0] != '\0');
	if (*bad_cursor || (s = store_stmt2(st, pg->sql, pg->pg_sql)) == NULL)
		return NULL;
	store_bind_text(s, 1, owner);
	stmt_bind_int64(s, 2, k);
	stmt_bind_int(s, 3, limit + 1);
	return store_page_rows(s, limit, next, pg->item, pg->key);
}

static void
storyboard_key(struct stmt *s, char *next)
{
	int_key(s, 1, 's', next);	/* its position */
}

/* The current image is one indexed lookup per storyboard of the page
 * (generated_images_latest), the rule of the counts. */
json_t *
store_page_storyboards(struct store *st, const char *project_id, const char *after, int limit,
		       char next[STORE_CURSOR_MAX], bool *bad_cursor)
{
#define SB_PAGE_SQL(TASK)                                                                  \
	"SELECT s.id, s.position AS \"index\", s.image_prompt, s.negative_prompt, s.params,"  \
	" " STORE_IMAGE_COLS(TASK) " FROM storyboards s"                                    \
	" LEFT JOIN generated_images g ON g.id = ("                                         \
	"  SELECT c.id FROM generated_images c WHERE c.storyboard_id = s.id"                \
	"  AND c.is_primary = 1 ORDER BY (c.status = 'completed') DESC, c.created_at DESC," \
	"  c.id DESC LIMIT 1)"                                                              \
	" LEFT JOIN model_providers p ON p.id = g.model_provider_id"                        \
	" WHERE s.project_id = ?1 AND s.position > ?2 ORDER BY s.position LIMIT ?3"
	static const char sql[] = SB_PAGE_SQL(TASK_LITE), pg_sql[] = SB_PAGE_SQL(TASK_PG);
	const struct int_page pg = { sql, pg_sql, 's', -1, storyboard_item, storyboard_key };

	return int_page(st, &pg, project_id, after, limit, next, bad_cursor);
}

/* --- a project's images: every row, variants and earlier runs too --- */

static json_t *
image_item(struct stmt *s)
{
	return store_row_object(s, 0, stmt_column_count(s) - 1, store_image_json_cols);
}

static void
image_key(struct stmt *s, char *next)
{
	int last = stmt_column_count(s) - 1;
	char pos[24], rid[24];

	/* storyboard_index is the third column of STORE_IMAGE_COLS. */
	snprintf(pos, sizeof(pos), "%" PRId64, (int64_t)stmt_column_int64(s, 2));
	snprintf(rid, sizeof(rid), "%" PRId64, (int64_t)stmt_column_int64(s, last));
	store_cursor_make(next, 'i', pos, rid);
}

/* By storyboard, then in the order the rows were made (a primary before
 * its variants, an earlier run before a later one). */
json_t *
store_page_images(struct store *st, const char *project_id, const char *after, int limit,
		  char next[STORE_CURSOR_MAX], bool *bad_cursor)
{
	/* PostgreSQL's generated_images.rowid is a column of its own, made by
	 * a sequence in the order rows are inserted, as SQLite's is. */
#define IMAGE_PAGE_SQL(TASK)                                                               \
	"SELECT " STORE_IMAGE_COLS(TASK) ", g.rowid AS rid"                                 \
	" FROM storyboards s JOIN generated_images g ON g.storyboard_id = s.id"             \
	" LEFT JOIN model_providers p ON p.id = g.model_provider_id"                        \
	" WHERE s.project_id = ?1 AND s.position >= ?2"                                     \
	" AND (s.position > ?2 OR g.rowid > ?3) ORDER BY s.position, g.rowid LIMIT ?4"
	static const char sql[] = IMAGE_PAGE_SQL(TASK_LITE), pg_sql[] = IMAGE_PAGE_SQL(TASK_PG);
	char a[STORE_CURSOR_MAX], b[STORE_CURSOR_MAX];
	int64_t pos = -1, rid = 0;
	struct stmt *s;

	*bad_cursor = after != NULL && (!store_cursor_read(after, 'i', a, b) ||
					!store_cursor_int(a, &pos) || !store_cursor_int(b, &rid));
	if (*bad_cursor || (s = store_stmt2(st, sql, pg_sql)) == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	stmt_bind_int64(s, 2, pos);
	stmt_bind_int64(s, 3, rid);
	stmt_bind_int(s, 4, limit + 1);
	return store_page_rows(s, limit, next, image_item, image_key);
}

/* --- a run's events --- */

static json_t *
event_item(struct stmt *s)
{
	return store_row_object(s, 0, stmt_column_count(s), NULL);
}

static void
event_key(struct stmt *s, char *next)
{
	int_key(s, 0, 'e', next);	/* its seq */
}

json_t *
store_page_events(struct store *st, const char *run_id, const char *after, int limit,
		  char next[STORE_CURSOR_MAX], bool *bad_cursor)
{
	static const char sql[] =
		"SELECT seq, type, body FROM run_events WHERE run_id = ?1 AND seq > ?2"
		" ORDER BY seq LIMIT ?3";
	const struct int_page pg = { sql, NULL, 'e', 0, event_item, event_key };

	return int_page(st, &pg, run_id, after, limit, next, bad_cursor);
}
