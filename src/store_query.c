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
		" g.created_at, g.updated_at"
		" FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"
		" LEFT JOIN model_providers p ON p.id = g.model_provider_id"
		" WHERE s.project_id = ? ORDER BY s.position, g.created_at, g.is_primary DESC";
	static const char *const cols[] = { "generation_params", NULL };
	sqlite3_stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return NULL;
	store_bind_text(s, 1, project_id);
	return rows_array(st, s, cols);
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
