/* store_project: projects, storyboards, stages and the provider mirror. */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "jsontext.h"
#include "log.h"
#include "project.h"

bool
store_project_exists(struct store *st, const char *project_id)
{
	static const char sql[] = "SELECT 1 FROM projects WHERE id = ?";
	struct stmt *s = store_stmt(st, sql);
	bool found;

	if (s == NULL)
		return false;
	store_bind_text(s, 1, project_id);
	found = stmt_step(s) == STMT_ROW;
	stmt_reset(s);
	return found;
}

char *
store_params_json(const struct project_params *pp)
{
	json_t *o = json_object();
	char *text;

	if (pp->ratio != NULL)
		json_object_set_new(o, "ratio", json_string(pp->ratio));
	if (pp->resolution != NULL)
		json_object_set_new(o, "resolution", json_string(pp->resolution));
	if (pp->options_json != NULL)
		json_object_set_new(o, "options", json_loads(pp->options_json, 0, NULL));
	text = jsontext_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return text;
}

static int
import_row(struct store *st, const struct project *p, const char *now)
{
	static const char sql[] =
		"INSERT INTO projects (id, name, image_providers, params, created_at, updated_at)"
		" VALUES (?, ?, ?, ?, ?, ?)";
	struct stmt *s = store_stmt(st, sql);
	json_t *prov = json_array();
	char *prov_text, *par_text;
	int rc;

	for (size_t i = 0; i < p->nproviders; i++)
		json_array_append_new(prov, json_string(p->image_providers[i]));
	prov_text = jsontext_dumps(prov, JSON_COMPACT);
	par_text = store_params_json(&p->params);
	json_decref(prov);
	if (s == NULL || prov_text == NULL || par_text == NULL) {
		free(prov_text);
		free(par_text);
		return -1;
	}
	store_bind_text(s, 1, p->id);
	store_bind_text(s, 2, p->name);
	store_bind_text(s, 3, prov_text);
	store_bind_text(s, 4, par_text);
	store_bind_text(s, 5, now);
	store_bind_text(s, 6, now);
	rc = store_exec_stmt(st, s);
	free(prov_text);
	free(par_text);
	return rc;
}

static int
import_storyboard(struct store *st, const char *project_id,
		  const struct project_storyboard *sb, const char *now)
{
	static const char sql[] =
		"INSERT INTO storyboards (id, project_id, position, image_prompt,"
		" negative_prompt, params, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)";
	struct stmt *s = store_stmt(st, sql);
	char *par = store_params_json(&sb->params);
	int rc;

	if (s == NULL || par == NULL) {
		free(par);
		return -1;
	}
	store_bind_text(s, 1, sb->id);
	store_bind_text(s, 2, project_id);
	stmt_bind_int(s, 3, sb->index);
	store_bind_text(s, 4, sb->image_prompt);
	store_bind_text(s, 5, sb->negative_prompt);
	store_bind_text(s, 6, par);
	store_bind_text(s, 7, now);
	rc = store_exec_stmt(st, s);
	free(par);
	return rc;
}

/* Inserts the project, its storyboards and its storyboard stage.  The
 * caller owns the transaction so that an import is all or nothing. */
int
store_project_import(struct store *st, const struct project *p)
{
	char now[32];

	store_now(now);
	if (import_row(st, p, now) < 0)
		return -1;
	for (size_t i = 0; i < p->nstoryboards; i++)
		if (import_storyboard(st, p->id, &p->storyboards[i], now) < 0)
			return -1;
	return store_stage_set(st, p->id, "storyboard",
			       p->storyboard_completed ? "completed" : "processing", NULL, NULL);
}

int
store_stage_status(struct store *st, const char *project_id, const char *stage_type,
		   char *out, size_t outlen)
{
	static const char sql[] =
		"SELECT status FROM project_stages WHERE project_id = ? AND stage_type = ?";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, project_id);
	store_bind_text(s, 2, stage_type);
	snprintf(out, outlen, "%s", stmt_step(s) == STMT_ROW ? store_column_text(s, 0) : "");
	stmt_reset(s);
	return 0;
}

int
store_stage_set(struct store *st, const char *project_id, const char *stage_type,
		const char *status, char stage_id_out[37], char started_at_out[32])
{
	static const char sql[] =
		"INSERT INTO project_stages (id, project_id, stage_type, status, started_at,"
		"  completed_at, created_at, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IN ('processing', 'queued') THEN ?5 END,"
		"  CASE WHEN ?4 NOT IN ('processing', 'queued') THEN ?5 END, ?5, ?5)"
		" ON CONFLICT (project_id, stage_type) DO UPDATE SET status = ?4,"
		"  started_at = CASE WHEN ?4 IN ('processing', 'queued') THEN ?5"
		"    ELSE project_stages.started_at END,"
		"  completed_at = CASE WHEN ?4 IN ('processing', 'queued') THEN NULL ELSE ?5 END,"
		"  updated_at = ?5"
		" RETURNING id, coalesce(project_stages.started_at, '')";
	struct stmt *s = store_stmt(st, sql);
	char id[37], now[32];
	int rc;

	if (s == NULL)
		return -1;
	project_uuid(id);
	store_now(now);
	store_bind_text(s, 1, id);
	store_bind_text(s, 2, project_id);
	store_bind_text(s, 3, stage_type);
	store_bind_text(s, 4, status);
	store_bind_text(s, 5, now);
	rc = stmt_step(s);
	if (rc == STMT_ROW) {
		if (stage_id_out != NULL)
			snprintf(stage_id_out, 37, "%s", store_column_text(s, 0));
		if (started_at_out != NULL)
			snprintf(started_at_out, 32, "%s", store_column_text(s, 1));
		rc = stmt_step(s);
	}
	stmt_reset(s);
	if (rc != STMT_DONE) {
		log_errx("database: stage %s: %s", stage_type, store_errmsg(st));
		return -1;
	}
	return 0;
}

int
store_stage_counts(struct store *st, const char *project_id, int *total, int *completed)
{
	static const char sql[] =
		"SELECT count(*), count(*) FILTER (WHERE EXISTS ("
		"  SELECT 1 FROM generated_images g WHERE g.storyboard_id = s.id"
		"  AND g.status = 'completed' AND g.is_primary = 1))"
		" FROM storyboards s WHERE s.project_id = ?";
	struct stmt *s = store_stmt(st, sql);
	int rc;

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, project_id);
	rc = stmt_step(s);
	if (rc == STMT_ROW) {
		*total = stmt_column_int(s, 0);
		*completed = stmt_column_int(s, 1);
	}
	stmt_reset(s);
	return rc == STMT_ROW ? 0 : -1;
}

int
store_providers_sync(struct store *st, const struct config *cfg)
{
	static const char sql[] =
		"INSERT INTO model_providers (id, name, plugin, model_name, api_url, is_default,"
		"  created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)"
		" ON CONFLICT (name) DO UPDATE SET plugin = ?3, model_name = ?4, api_url = ?5,"
		"  is_default = ?6, updated_at = ?7"
		" WHERE model_providers.plugin IS DISTINCT FROM ?3"
		"  OR model_providers.model_name IS DISTINCT FROM ?4"
		"  OR model_providers.api_url IS DISTINCT FROM ?5"
		"  OR model_providers.is_default IS DISTINCT FROM ?6";
	char id[37], now[32];

	store_now(now);
	for (size_t i = 0; i < cfg->nproviders; i++) {
		const struct config_provider *p = &cfg->providers[i];
		struct stmt *s = store_stmt(st, sql);

		if (s == NULL)
			return -1;
		project_uuid(id);
		store_bind_text(s, 1, id);
		store_bind_text(s, 2, p->name);
		store_bind_text(s, 3, p->plugin);
		store_bind_text(s, 4, p->model);
		store_bind_text(s, 5, p->api_url);
		stmt_bind_int(s, 6, p->is_default);
		store_bind_text(s, 7, now);
		if (store_exec_stmt(st, s) < 0)
			return -1;
	}
	return 0;
}

int
store_provider_id(struct store *st, const char *name, char out[37])
{
	static const char sql[] = "SELECT id FROM model_providers WHERE name = ?";
	struct stmt *s = store_stmt(st, sql);
	int rc;

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = stmt_step(s);
	if (rc == STMT_ROW)
		snprintf(out, 37, "%s", store_column_text(s, 0));
	stmt_reset(s);
	return rc == STMT_ROW ? 0 : -1;
}
