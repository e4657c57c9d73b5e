/* store_query: read-only views as JSON, shared by the CLI and the HTTP API. */
#include "store_internal.h"

#include <string.h>

/* A row as an object whose keys are the column names; JSON text columns
 * named in json_cols are decoded. */
static json_t *
row_object(sqlite3_stmt *s, const char *const *json_cols)
{
	json_t *o = json_object();
	int n = sqlite3_column_count(s);

	for (int i = 0; i < n; i++) {
		const char *name = sqlite3_column_name(s, i);
		json_t *v = NULL;

		for (const char *const *c = json_cols; c != NULL && *c != NULL; c++)
			if (strcmp(*c, name) == 0 && sqlite3_column_type(s, i) == SQLITE_TEXT)
				v = json_loads(store_column_text(s, i), 0, NULL);
		if (v == NULL)
			v = store_column_json(s, i);
		json_object_set_new(o, name, v);
	}
	return o;
}

static json_t *
rows_array(struct store *st, sqlite3_stmt *s, const char *const *json_cols)
{
	json_t *a = json_array();
	int rc;

	(void)st;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(a, row_object(s, json_cols));
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return NULL;
	}
	return a;
}

static const char *const project_json_cols[] = { "image_providers", "params", NULL };

/* An image row's pending provider task (store_task.c) as a JSON object, or
 * null: what a plugin checkpointed and is polling. */
#define PROVIDER_TASK_COLUMN                                                              \
	" (SELECT json_object('provider', coalesce(tp.name, ''), 'state', json(t.state),"  \
	"  'checkpoints', t.checkpoints, 'created_at', t.created_at,"                      \
	"  'updated_at', t.updated_at) FROM provider_tasks t"                              \
	"  LEFT JOIN model_providers tp ON tp.id = t.model_provider_id"                    \
	"  WHERE t.image_id = g.id) AS provider_task"
static const char *const image_json_cols[] = { "generation_params", "provider_task", NULL };

json_t *
store_query_project_row(struct store *st, const char *project_id)
{
	static const char sql[] =
		"SELECT id, name, image_providers, params, created_at, updated_at"
		" FROM projects WHERE id = ?";
	sqlite3_stmt *s = store_stmt(st, sql);
	json_t *o = NULL;

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	if (sqlite3_step(s) == SQLITE_ROW)
		o = row_object(s, project_json_cols);
	sqlite3_reset(s);
	return o;
}

static json_t *
project_stages(struct store *st, const char *project_id)
{
	static const char sql[] =
		"SELECT id, stage_type, status, started_at, completed_at FROM project_stages"
		" WHERE project_id = ? ORDER BY created_at, stage_type DESC";
	sqlite3_stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	return rows_array(st, s, NULL);
}

/* Counts of storyboards by the state of their latest primary image. */
static json_t *
project_counts(struct store *st, const char *project_id)
{
	static const char sql[] =
		"WITH latest AS (SELECT s.id,"
		"  (SELECT g.status FROM generated_images g WHERE g.storyboard_id = s.id"
		"   AND g.is_primary = 1 ORDER BY (g.status = 'completed') DESC, g.created_at DESC"
		"   LIMIT 1) AS status FROM storyboards s WHERE s.project_id = ?)"
		" SELECT count(*) AS storyboards,"
		"  count(*) FILTER (WHERE status = 'completed') AS completed,"
		"  count(*) FILTER (WHERE status = 'failed') AS failed,"
		"  count(*) FILTER (WHERE status IN ('pending', 'processing')) AS pending,"
		"  count(*) FILTER (WHERE status IS NULL) AS not_started FROM latest";
	sqlite3_stmt *s = store_stmt(st, sql);
	json_t *o = NULL;

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	if (sqlite3_step(s) == SQLITE_ROW)
		o = row_object(s, NULL);
	sqlite3_reset(s);
	return o;
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
	sqlite3_stmt *s = store_stmt(st, sql);
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
	static const char sql[] =
		"SELECT g.id, g.storyboard_id, s.position AS storyboard_index, g.run_id,"
		" g.status, g.is_primary, g.primary_id, g.image_url AS url, g.width, g.height,"
		" g.file_path, g.file_size, g.thumbnail_path, g.sha256, g.mime, g.cached,"
		" g.attempts, g.error, g.generation_params, p.name AS provider,"
		" g.created_at, g.updated_at," PROVIDER_TASK_COLUMN
		" FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"
		" LEFT JOIN model_providers p ON p.id = g.model_provider_id"
		" WHERE s.project_id = ? ORDER BY s.position, g.created_at, g.is_primary DESC";
	sqlite3_stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	return rows_array(st, s, image_json_cols);
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
	sqlite3_stmt *s = store_stmt(st, sql);
	json_t *all, *out;
	size_t i;
	json_t *v;

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	sqlite3_bind_int(s, 2, missing_only);
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
	sqlite3_stmt *s = store_stmt(st, sql);
	json_t *o = json_object();

	if (s == NULL)
		return o;
	while (sqlite3_step(s) == SQLITE_ROW)
		json_object_set_new(o, store_column_text(s, 0),
				    json_integer(sqlite3_column_int64(s, 1)));
	sqlite3_reset(s);
	return o;
}

json_t *
store_query_runs_processing(struct store *st)
{
	static const char sql[] =
		"SELECT id, project_id FROM runs WHERE status = 'processing' ORDER BY started_at";
	sqlite3_stmt *s = store_stmt(st, sql);

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
	sqlite3_stmt *s = store_stmt(st, sql);
	json_t *o = NULL;

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, run_id);
	if (sqlite3_step(s) == SQLITE_ROW)
		o = row_object(s, NULL);
	sqlite3_reset(s);
	return o;
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
	sqlite3_stmt *s = store_stmt(st, sql);

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
	sqlite3_stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	return rows_array(st, s, cols);
}

/* --- for the HTTP API (api.c, sse.c) --- */

json_t *
store_query_image(struct store *st, const char *image_id)
{
	static const char sql[] =
		"SELECT g.id, g.storyboard_id, s.position AS storyboard_index, s.project_id,"
		" g.run_id, g.status, g.is_primary, g.primary_id, g.image_url AS url, g.width,"
		" g.height, g.file_path, g.file_size, g.thumbnail_path, g.sha256, g.mime,"
		" g.cached, g.attempts, g.error, g.generation_params, p.name AS provider,"
		" g.created_at, g.updated_at," PROVIDER_TASK_COLUMN
		" FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"
		" LEFT JOIN model_providers p ON p.id = g.model_provider_id WHERE g.id = ?";
	sqlite3_stmt *s = store_stmt(st, sql);
	json_t *o = NULL;

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, image_id);
	if (sqlite3_step(s) == SQLITE_ROW)
		o = row_object(s, image_json_cols);
	sqlite3_reset(s);
	return o;
}

/* One indexed lookup per storyboard (generated_images_storyboard): building
 * JSON for every image of every run to keep one per storyboard cost ~0.5 s
 * per request on 3,000 storyboards after a few runs; a window function over
 * them all, twice this query's time. */
json_t *
store_query_current_images(struct store *st, const char *project_id)
{
	static const char sql[] =
		"SELECT g.id, g.storyboard_id, s.position AS storyboard_index, g.run_id,"
		" g.status, g.is_primary, g.primary_id, g.image_url AS url, g.width, g.height,"
		" g.file_path, g.file_size, g.thumbnail_path, g.sha256, g.mime, g.cached,"
		" g.attempts, g.error, g.generation_params, p.name AS provider,"
		" g.created_at, g.updated_at," PROVIDER_TASK_COLUMN
		" FROM storyboards s JOIN generated_images g ON g.id = ("
		"  SELECT c.id FROM generated_images c WHERE c.storyboard_id = s.id"
		"  AND c.is_primary = 1 ORDER BY (c.status = 'completed') DESC, c.created_at DESC,"
		"  c.id DESC LIMIT 1)"
		" LEFT JOIN model_providers p ON p.id = g.model_provider_id"
		" WHERE s.project_id = ? ORDER BY s.position";
	sqlite3_stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	return rows_array(st, s, image_json_cols);
}

int
store_run_latest(struct store *st, const char *project_id, char out[37])
{
	/* Ids are UUIDv7: they break ties of started_at in time order. */
	static const char sql[] =
		"SELECT id FROM runs WHERE project_id = ? ORDER BY started_at DESC, id DESC LIMIT 1";
	sqlite3_stmt *s = store_stmt(st, sql);
	int rc;

	out[0] = '\0';
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, project_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *id = store_column_text(s, 0);
		size_t n = strnlen(id, 36);

		memcpy(out, id, n);
		out[n] = '\0';
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

json_t *
store_events_after(struct store *st, const char *run_id, int64_t after_seq, int limit)
{
	static const char sql[] =
		"SELECT seq, type, body FROM run_events WHERE run_id = ? AND seq > ?"
		" ORDER BY seq LIMIT ?";
	sqlite3_stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, run_id);
	sqlite3_bind_int64(s, 2, after_seq);
	sqlite3_bind_int(s, 3, limit);
	return rows_array(st, s, NULL);
}
