/* store_query: read-only views as JSON, shared by the CLI and the HTTP API. */
#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

json_t *
store_row_object(struct stmt *s, int from, int to, const char *const *json_cols)
{
	json_t *o = json_object();

	for (int i = from; i < to; i++) {
		const char *name = stmt_column_name(s, i);
		json_t *v = NULL;

		for (const char *const *c = json_cols; c != NULL && *c != NULL; c++)
			if (strcmp(*c, name) == 0 && stmt_column_type(s, i) == STMT_TEXT)
				v = json_loads(store_column_text(s, i), 0, NULL);
		if (v == NULL)
			v = store_column_json(s, i);
		json_object_set_new(o, name, v);
	}
	return o;
}

static json_t *
row_object(struct stmt *s, const char *const *json_cols)
{
	return store_row_object(s, 0, stmt_column_count(s), json_cols);
}

static json_t *
rows_array(struct store *st, struct stmt *s, const char *const *json_cols)
{
	json_t *a = json_array();
	int rc;

	while ((rc = stmt_step(s)) == STMT_ROW)
		json_array_append_new(a, row_object(s, json_cols));
	stmt_reset(s);
	if (rc != STMT_DONE) {
		log_errx("database: %s", store_errmsg(st));
		json_decref(a);
		return NULL;
	}
	return a;
}

/* The first row of sql with k1 (and k2 unless NULL) bound, as row_object;
 * NULL when there is none. */
static json_t *
one_row2(struct store *st, const char *sql, const char *pg_sql, const char *k1,
	 const char *k2, const char *const *json_cols)
{
	struct stmt *s = store_stmt2(st, sql, pg_sql);
	json_t *o = NULL;

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, k1);
	if (k2 != NULL)
		store_bind_text(s, 2, k2);
	if (stmt_step(s) == STMT_ROW)
		o = row_object(s, json_cols);
	stmt_reset(s);
	return o;
}

static json_t *
one_row(struct store *st, const char *sql, const char *k1, const char *k2,
	const char *const *json_cols)
{
	return one_row2(st, sql, NULL, k1, k2, json_cols);
}

static const char *const project_json_cols[] = { "image_providers", "params", NULL };
const char *const store_image_json_cols[] = { "generation_params", "provider_task", NULL };

json_t *
store_query_project_row(struct store *st, const char *project_id)
{
	static const char sql[] =
		"SELECT id, name, image_providers, params, created_at, updated_at"
		" FROM projects WHERE id = ?";
	return one_row(st, sql, project_id, NULL, project_json_cols);
}

static json_t *
project_stages(struct store *st, const char *project_id)
{
	static const char sql[] =
		"SELECT id, stage_type, status, started_at, completed_at FROM project_stages"
		" WHERE project_id = ? ORDER BY created_at, stage_type DESC";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	return rows_array(st, s, NULL);
}

/* Counts of storyboards by the state of their current image, kept by
 * triggers in project_counts (see the migrations in store_schema.c). */
static json_t *
project_counts(struct store *st, const char *project_id)
{
	static const char sql[] =
		"SELECT coalesce(sum(n), 0) AS storyboards,"
		"  coalesce(sum(n) FILTER (WHERE status = 'completed'), 0) AS completed,"
		"  coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed,"
		"  coalesce(sum(n) FILTER (WHERE status IN ('pending', 'processing')), 0) AS pending,"
		"  coalesce(sum(n) FILTER (WHERE status = 'not_started'), 0) AS not_started"
		" FROM project_counts WHERE project_id = ?";
	/* PostgreSQL's count storyboard_status (see its migration 5 -> 6). */
	static const char pg_sql[] =
		"SELECT count(*) AS storyboards,"
		"  count(*) FILTER (WHERE status = 'completed') AS completed,"
		"  count(*) FILTER (WHERE status = 'failed') AS failed,"
		"  count(*) FILTER (WHERE status IN ('pending', 'processing')) AS pending,"
		"  count(*) FILTER (WHERE status IS NULL) AS not_started"
		" FROM storyboard_status WHERE project_id = ?";
	return one_row2(st, sql, pg_sql, project_id, NULL, NULL);
}

json_t *
store_query_project(struct store *st, const char *project_id)
{
	json_t *o = store_query_project_row(st, project_id);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "stages", project_stages(st, project_id));
	json_object_set_new(o, "counts", project_counts(st, project_id));
	json_object_set_new(o, "provider_tasks", store_query_tasks(st, project_id));
	return o;
}

json_t *
store_query_projects(struct store *st)
{
	static const char sql[] = "SELECT id FROM projects ORDER BY created_at, id";
	struct stmt *s = store_stmt(st, sql);
	json_t *ids, *out = json_array();
	size_t i;
	json_t *v;

	if (s == NULL || (ids = rows_array(st, s, NULL)) == NULL) {
		json_decref(out);
		return NULL;
	}
	json_array_foreach(ids, i, v) {
		const char *id = json_string_value(json_object_get(v, "id"));

		json_array_append_new(out, store_query_project(st, id));
	}
	json_decref(ids);
	return out;
}

json_t *
store_query_images(struct store *st, const char *project_id)
{
#define IMAGES_SQL(TASK)                                                                   \
	"SELECT " STORE_IMAGE_COLS(TASK)                                                   \
	" FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"            \
	" LEFT JOIN model_providers p ON p.id = g.model_provider_id"                       \
	" WHERE s.project_id = ? ORDER BY s.position, g.created_at, g.is_primary DESC"
	static const char sql[] = IMAGES_SQL(TASK_LITE), pg_sql[] = IMAGES_SQL(TASK_PG);
	struct stmt *s = store_stmt2(st, sql, pg_sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	return rows_array(st, s, store_image_json_cols);
}

static bool
id_wanted(json_t *want_ids, const char *id)
{
	size_t i;
	json_t *v;

	if (want_ids == NULL)
		return true;
	json_array_foreach(want_ids, i, v) {
		const char *w = json_string_value(v);	/* NULL for a non-string */

		if (w != NULL && strcmp(w, id) == 0)
			return true;
	}
	return false;
}

json_t *
store_query_storyboards(struct store *st, const char *project_id, json_t *want_ids,
			bool missing_only)
{
	static const char sql[] =
		"SELECT s.id, s.position AS \"index\", s.image_prompt, s.negative_prompt, s.params"
		" FROM storyboards s WHERE s.project_id = ?1 AND (?2 = 0 OR NOT EXISTS ("
		"  SELECT 1 FROM generated_images g WHERE g.storyboard_id = s.id"
		"  AND g.status = 'completed' AND g.is_primary = 1))"
		" ORDER BY s.position";
	static const char *const cols[] = { "params", NULL };
	struct stmt *s = store_stmt(st, sql);
	json_t *all, *out;
	size_t i;
	json_t *v;

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	stmt_bind_int(s, 2, missing_only);
	if ((all = rows_array(st, s, cols)) == NULL || want_ids == NULL)
		return all;
	out = json_array();
	json_array_foreach(all, i, v)
		if (id_wanted(want_ids, json_string_value(json_object_get(v, "id"))))
			json_array_append(out, v);
	json_decref(all);
	return out;
}

json_t *
store_query_image_counts(struct store *st)
{
	static const char sql[] =
		"SELECT status, count(*) FROM generated_images GROUP BY status";
	struct stmt *s = store_stmt(st, sql);
	json_t *o = json_object();

	if (s == NULL)
		return o;
	while (stmt_step(s) == STMT_ROW)
		json_object_set_new(o, store_column_text(s, 0),
				    json_integer(stmt_column_int64(s, 1)));
	stmt_reset(s);
	return o;
}

json_t *
store_query_runs_processing(struct store *st)
{
	/* PostgreSQL's runs have no rowid: their ids (UUIDv7) are in the
	 * order they were made. */
#define RUNS_LEFT_SQL(TIE)                                                                  \
	"SELECT id, project_id, status FROM runs WHERE status IN ('processing', 'queued')" \
	" ORDER BY status = 'queued', started_at, " TIE
	static const char sql[] = RUNS_LEFT_SQL("rowid"), pg_sql[] = RUNS_LEFT_SQL("id");
	struct stmt *s = store_stmt2(st, sql, pg_sql);

	return s != NULL ? rows_array(st, s, NULL) : NULL;
}

json_t *
store_query_run(struct store *st, const char *run_id)
{
	static const char sql[] =
		"SELECT r.id, r.project_id, r.status, r.no_cache, r.total,"
		" (SELECT coalesce(max(seq), 0) FROM run_events e WHERE e.run_id = r.id) AS last_seq,"
		" st.id AS stage_id, coalesce(st.started_at, '') AS stage_started_at"
		" FROM runs r LEFT JOIN project_stages st ON st.project_id = r.project_id"
		" AND st.stage_type = 'image_generation' WHERE r.id = ?";
	return one_row(st, sql, run_id, NULL, NULL);
}

json_t *
store_query_run_items(struct store *st, const char *run_id)
{
	static const char sql[] =
		"SELECT g.id AS image_id, g.status, s.id, s.position AS \"index\", s.image_prompt,"
		" s.negative_prompt, s.params, coalesce(p.name, '') AS provider"
		" FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"
		" LEFT JOIN model_providers p ON p.id = g.model_provider_id"
		" WHERE g.run_id = ? AND g.is_primary = 1 ORDER BY s.position";
	static const char *const cols[] = { "params", NULL };
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, run_id);
	return rows_array(st, s, cols);
}

json_t *
store_query_tasks(struct store *st, const char *project_id)
{
	static const char sql[] =
		"SELECT t.storyboard_id, s.position AS storyboard_index, t.image_id,"
		" coalesce(p.name, '') AS provider, t.state, t.checkpoints, t.created_at,"
		" t.updated_at FROM provider_tasks t JOIN storyboards s ON s.id = t.storyboard_id"
		" LEFT JOIN model_providers p ON p.id = t.model_provider_id"
		" WHERE s.project_id = ? ORDER BY s.position, t.created_at";
	static const char *const cols[] = { "state", NULL };
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	return rows_array(st, s, cols);
}

/* --- for the HTTP API (api.c, sse.c) --- */

json_t *
store_query_image(struct store *st, const char *image_id)
{
#define IMAGE_SQL(TASK)                                                                    \
	"SELECT g.id, g.storyboard_id, s.position AS storyboard_index, s.project_id,"      \
	" g.run_id, g.status, g.is_primary, g.primary_id, g.image_url AS url, g.width,"    \
	" g.height, g.file_path, g.file_size, g.thumbnail_path, g.sha256, g.mime,"         \
	" g.cached, g.attempts, g.error, g.generation_params, p.name AS provider,"         \
	" g.created_at, g.updated_at," TASK                                                \
	" FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"            \
	" LEFT JOIN model_providers p ON p.id = g.model_provider_id WHERE g.id = ?"
	static const char sql[] = IMAGE_SQL(TASK_LITE), pg_sql[] = IMAGE_SQL(TASK_PG);
	return one_row2(st, sql, pg_sql, image_id, NULL, store_image_json_cols);
}

int
store_run_latest(struct store *st, const char *project_id, char out[37])
{
	/* Ids are UUIDv7: they break ties of started_at in time order. */
	static const char sql[] =
		"SELECT id FROM runs WHERE project_id = ? ORDER BY started_at DESC, id DESC LIMIT 1";
	struct stmt *s = store_stmt(st, sql);
	int rc;

	out[0] = '\0';
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, project_id);
	rc = stmt_step(s);
	if (rc == STMT_ROW) {
		const char *id = store_column_text(s, 0);
		size_t n = strnlen(id, 36);

		memcpy(out, id, n);
		out[n] = '\0';
	}
	stmt_reset(s);
	return rc == STMT_ROW ? 1 : rc == STMT_DONE ? 0 : -1;
}

json_t *
store_events_after(struct store *st, const char *run_id, int64_t after_seq, int limit)
{
	static const char sql[] =
		"SELECT seq, type, body FROM run_events WHERE run_id = ? AND seq > ?"
		" ORDER BY seq LIMIT ?";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, run_id);
	stmt_bind_int64(s, 2, after_seq);
	stmt_bind_int(s, 3, limit);
	return rows_array(st, s, NULL);
}

/* --- version 2 of the HTTP API: lists of projects and runs --- */

/* A cursor is the hex of the last project's created_at (store_now's 24
 * characters) and rowid, which orders projects made in one millisecond as
 * they were made (ids cannot: a project file may bring its own).  Keyset
 * pagination: a page after a deleted project still starts where it stood,
 * and no page costs an OFFSET scan. */
#define CURSOR_TS 24
#define CURSOR_RAW_MAX (CURSOR_TS + 20)

static void
cursor_encode(const char *created_at, int64_t rowid, char out[STORE_CURSOR_MAX])
{
	char raw[CURSOR_RAW_MAX + 1];
	int n;

	out[0] = '\0';
	if (strlen(created_at) != CURSOR_TS)
		return;
	n = snprintf(raw, sizeof(raw), "%s%" PRId64, created_at, rowid);
	store_hex_encode(raw, (size_t)n, out);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static bool
timestamp_valid(const char *t)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (int i = 0; i < CURSOR_TS; i++)
		if (shape[i] == 'd' ? !(t[i] >= '0' && t[i] <= '9') : t[i] != shape[i])
			return false;
	return true;
}

static bool
cursor_decode(const char *cursor, char ts[CURSOR_TS + 1], int64_t *rowid)
{
	char raw[CURSOR_RAW_MAX + 1], *end;

	if (strlen(cursor) / 2 <= CURSOR_TS || !store_hex_decode(cursor, raw, sizeof(raw)))
		return false;
	memcpy(ts, raw, CURSOR_TS);
	ts[CURSOR_TS] = '\0';
	if (!timestamp_valid(ts) || raw[CURSOR_TS] < '0' || raw[CURSOR_TS] > '9')
		return false;
	errno = 0;
	*rowid = strtoll(raw + CURSOR_TS, &end, 10);
	/* store_hex_decode refuses a 00 byte: a %00 inside is no cursor of ours. */
	return *end == '\0' && errno == 0;
}

/* One row more than the page: whether another page follows. */
static json_t *
page_rows(struct store *st, const char *ts, int64_t rowid, int limit)
{
	static const char sql[] =
		"SELECT id, created_at, rowid AS rid FROM projects WHERE CAST(?1 AS TEXT) IS NULL"
		" OR created_at < ?1 OR (created_at = ?1 AND rowid < ?2)"
		" ORDER BY created_at DESC, rowid DESC LIMIT ?3";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, ts);
	stmt_bind_int64(s, 2, rowid);
	stmt_bind_int(s, 3, limit + 1);
	return rows_array(st, s, NULL);
}

json_t *
store_query_project_page(struct store *st, const char *after, int limit,
			 char next[STORE_CURSOR_MAX], bool *bad_cursor)
{
	char ts[CURSOR_TS + 1];
	int64_t rowid = 0;
	json_t *rows, *out, *row;
	size_t i;

	next[0] = '\0';
	*bad_cursor = after != NULL && !cursor_decode(after, ts, &rowid);
	if (*bad_cursor || (rows = page_rows(st, after != NULL ? ts : NULL, rowid, limit)) == NULL)
		return NULL;
	out = json_array();
	json_array_foreach(rows, i, row) {
		json_t *last = json_array_get(rows, i > 0 ? i - 1 : 0), *p;

		if ((int)i == limit) {
			cursor_encode(json_string_value(json_object_get(last, "created_at")),
				      json_integer_value(json_object_get(last, "rid")), next);
			break;
		}
		p = store_query_project(st, json_string_value(json_object_get(row, "id")));
		if (p != NULL)
			json_array_append_new(out, p);
	}
	json_decref(rows);
	return out;
}

/* The columns of a run as the API shows it. */
#define RUN_VIEW_COLS \
	"r.id, r.project_id, r.status, r.storyboard_ids, r.no_cache, r.total," \
	" r.success_count, r.failed_count, r.last_seq, r.started_at, r.finished_at"

static const char *const run_json_cols[] = { "storyboard_ids", NULL };

/* no_cache as a boolean, as the run body has it. */
static json_t *
run_view(json_t *o)
{
	if (o != NULL)
		json_object_set_new(o, "no_cache",
				    json_boolean(json_integer_value(json_object_get(o, "no_cache"))));
	return o;
}

json_t *
store_query_run_view(struct store *st, const char *run_id)
{
	static const char sql[] = "SELECT " RUN_VIEW_COLS " FROM runs r WHERE r.id = ?";
	return run_view(one_row(st, sql, run_id, NULL, run_json_cols));
}

static json_t *
run_item(struct stmt *s)
{
	return run_view(store_row_object(s, 0, stmt_column_count(s), run_json_cols));
}

static void
run_key(struct stmt *s, char *next)
{
	/* started_at and id: columns 9 and 0 of RUN_VIEW_COLS. */
	store_cursor_make(next, 'r', store_column_text(s, 9), store_column_text(s, 0));
}

/* Newest first; ids are UUIDv7, so they break ties of started_at in time
 * order. */
json_t *
store_page_runs(struct store *st, const char *project_id, const char *after, int limit,
		char next[STORE_CURSOR_MAX], bool *bad_cursor)
{
	static const char sql[] =
		"SELECT " RUN_VIEW_COLS " FROM runs r WHERE r.project_id = ?1"
		" AND (CAST(?2 AS TEXT) IS NULL OR r.started_at < ?2"
		"  OR (r.started_at = ?2 AND r.id < ?3))"
		" ORDER BY r.started_at DESC, r.id DESC LIMIT ?4";
	char a[STORE_CURSOR_MAX], b[STORE_CURSOR_MAX];
	struct stmt *s;

	*bad_cursor = after != NULL && (!store_cursor_read(after, 'r', a, b) ||
					strlen(a) != CURSOR_TS || !timestamp_valid(a) ||
					strlen(b) != 36);
	if (*bad_cursor || (s = store_stmt(st, sql)) == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	store_bind_text(s, 2, after != NULL ? a : NULL);
	store_bind_text(s, 3, after != NULL ? b : NULL);
	stmt_bind_int(s, 4, limit + 1);
	return store_page_rows(s, limit, next, run_item, run_key);
}

int64_t
store_run_done_seq(struct store *st, const char *run_id)
{
	/* `done` is a run's last event: one step down the primary key. */
	static const char sql[] =
		"SELECT seq, type FROM run_events WHERE run_id = ? ORDER BY seq DESC LIMIT 1";
	struct stmt *s = store_stmt(st, sql);
	int64_t seq = 0;

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, run_id);
	if (stmt_step(s) == STMT_ROW && strcmp(store_column_text(s, 1), "done") == 0)
		seq = stmt_column_int64(s, 0);
	stmt_reset(s);
	return seq;
}

json_t *
store_query_storyboard(struct store *st, const char *project_id, const char *storyboard_id)
{
	static const char sql[] =
		"SELECT id, position AS \"index\", image_prompt, negative_prompt, params"
		" FROM storyboards WHERE id = ? AND project_id = ?";
	static const char *const cols[] = { "params", NULL };
	return one_row(st, sql, storyboard_id, project_id, cols);
}
