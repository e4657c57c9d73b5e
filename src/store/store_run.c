/* store_run: runs, generated images and run events. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsontext.h"
#include "log.h"

int
store_run_create(struct store *st, const char *run_id, const char *project_id,
		 json_t *storyboard_ids, bool no_cache, int total)
{
	static const char sql[] =
		"INSERT INTO runs (id, project_id, status, storyboard_ids, no_cache, total, pid,"
		"  started_at) VALUES (?, ?, 'processing', ?, ?, ?, ?, ?)";
	struct stmt *s = store_stmt(st, sql);
	char *ids = storyboard_ids != NULL ? jsontext_dumps(storyboard_ids, JSON_COMPACT) : NULL;
	char now[32];
	int rc;

	if (s == NULL) {
		free(ids);
		return -1;
	}
	store_now(now);
	store_bind_text(s, 1, run_id);
	store_bind_text(s, 2, project_id);
	store_bind_text(s, 3, ids);
	stmt_bind_int(s, 4, no_cache);
	stmt_bind_int(s, 5, total);
	stmt_bind_int64(s, 6, (int64_t)getpid());
	store_bind_text(s, 7, now);
	rc = store_exec_stmt(st, s);
	free(ids);
	return rc;
}

int
store_run_finish(struct store *st, const char *run_id, const char *status, int success,
		 int failed)
{
	static const char sql[] =
		"UPDATE runs SET status = ?, success_count = ?, failed_count = ?,"
		" finished_at = ? WHERE id = ?";
	struct stmt *s = store_stmt(st, sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, status);
	stmt_bind_int(s, 2, success);
	stmt_bind_int(s, 3, failed);
	store_bind_text(s, 4, now);
	store_bind_text(s, 5, run_id);
	return store_exec_stmt(st, s);
}

int
store_run_set_status(struct store *st, const char *run_id, const char *status)
{
	static const char sql[] = "UPDATE runs SET status = ? WHERE id = ?";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, status);
	store_bind_text(s, 2, run_id);
	return store_exec_stmt(st, s);
}

int
store_run_set_pid(struct store *st, const char *run_id, long pid)
{
	static const char sql[] = "UPDATE runs SET pid = ? WHERE id = ?";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	stmt_bind_int64(s, 1, pid);
	store_bind_text(s, 2, run_id);
	return store_exec_stmt(st, s);
}

int
store_run_active(struct store *st, const char *project_id, char out[37], long *pid)
{
	static const char sql[] =
		"SELECT id, coalesce(pid, 0) FROM runs WHERE project_id = ?"
		" AND status IN ('processing', 'queued') ORDER BY started_at DESC LIMIT 1";
	struct stmt *s = store_stmt(st, sql);

	out[0] = '\0';
	*pid = 0;
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, project_id);
	if (stmt_step(s) == STMT_ROW) {
		snprintf(out, 37, "%s", store_column_text(s, 0));
		*pid = (long)stmt_column_int64(s, 1);
	}
	stmt_reset(s);
	return 0;
}

int
store_event_append(struct store *st, const char *run_id, int64_t seq, const char *type,
		   const char *body)
{
	static const char ins[] =
		"INSERT INTO run_events (run_id, seq, type, body) VALUES (?, ?, ?, ?)";
	static const char upd[] = "UPDATE runs SET last_seq = ? WHERE id = ?";
	struct stmt *s = store_stmt(st, ins);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, run_id);
	stmt_bind_int64(s, 2, seq);
	store_bind_text(s, 3, type);
	store_bind_text(s, 4, body);
	if (store_exec_stmt(st, s) < 0)
		return -1;
	if ((s = store_stmt(st, upd)) == NULL)
		return -1;
	stmt_bind_int64(s, 1, seq);
	store_bind_text(s, 2, run_id);
	return store_exec_stmt(st, s);
}

int
store_image_insert(struct store *st, const char *image_id, const char *storyboard_id,
		   const char *run_id, const char *provider_id, const char *params_json,
		   const char *cache_key)
{
	static const char sql[] =
		"INSERT INTO generated_images (id, storyboard_id, run_id, generation_params,"
		"  model_provider_id, status, cache_key, created_at, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7)";
	static const char pg_sql[] =
		"INSERT INTO generated_images (id, storyboard_id, run_id, generation_params,"
		"  model_provider_id, status, cache_key, created_at, updated_at, position)"
		" VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7,"
		"  (SELECT position FROM storyboards WHERE id = ?2))";
	struct stmt *s = store_stmt2(st, sql, pg_sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, image_id);
	store_bind_text(s, 2, storyboard_id);
	store_bind_text(s, 3, run_id);
	store_bind_text(s, 4, params_json);
	store_bind_text(s, 5, provider_id);
	store_bind_text(s, 6, cache_key);
	store_bind_text(s, 7, now);
	return store_exec_stmt(st, s);
}

/* One statement for the simple status moves keeps them consistent.  On
 * PostgreSQL a row back to pending is unclaimed (its lease goes), and the
 * attempts on its current provider are counted for whichever instance
 * takes it next. */
static int
image_set(struct store *st, const char *sql, const char *pg_sql, const char *image_id,
	  const char *text)
{
	struct stmt *s = store_stmt2(st, sql, pg_sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, image_id);
	store_bind_text(s, 2, now);
	store_bind_text(s, 3, text);
	return store_exec_stmt(st, s);
}

int
store_image_processing(struct store *st, const char *image_id)
{
	static const char sql[] =
		"UPDATE generated_images SET status = 'processing', attempts = attempts + 1,"
		" updated_at = ?2, error = ?3 WHERE id = ?1";
	static const char pg_sql[] =
		"UPDATE generated_images SET status = 'processing', attempts = attempts + 1,"
		" chain_attempts = chain_attempts + 1, updated_at = ?2, error = ?3 WHERE id = ?1";
	return image_set(st, sql, pg_sql, image_id, NULL);
}

int
store_image_fail(struct store *st, const char *image_id, const char *error)
{
	static const char sql[] =
		"UPDATE generated_images SET status = 'failed', error = ?3, updated_at = ?2"
		" WHERE id = ?1";
	return image_set(st, sql, NULL, image_id, error);
}

int
store_image_reset(struct store *st, const char *image_id)
{
	static const char sql[] =
		"UPDATE generated_images SET status = 'pending', updated_at = ?2, error = ?3"
		" WHERE id = ?1 AND status <> 'completed'";
	static const char pg_sql[] =
		"UPDATE generated_images SET status = 'pending', updated_at = ?2, error = ?3,"
		" lease_owner = NULL, lease_token = NULL, lease_until = NULL"
		" WHERE id = ?1 AND status <> 'completed'";
	return image_set(st, sql, pg_sql, image_id, NULL);
}

int
store_image_rebind(struct store *st, const char *image_id, const char *provider_id,
		   const char *params_json, const char *cache_key)
{
	static const char sql[] =
		"UPDATE generated_images SET model_provider_id = ?2, generation_params = ?3,"
		" cache_key = ?4, status = 'pending', updated_at = ?5 WHERE id = ?1";
	static const char pg_sql[] =
		"UPDATE generated_images SET model_provider_id = ?2, generation_params = ?3,"
		" cache_key = ?4, status = 'pending', updated_at = ?5, chain_attempts = 0,"
		" lease_owner = NULL, lease_token = NULL, lease_until = NULL WHERE id = ?1";
	struct stmt *s = store_stmt2(st, sql, pg_sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, image_id);
	store_bind_text(s, 2, provider_id);
	store_bind_text(s, 3, params_json);
	store_bind_text(s, 4, cache_key);
	store_bind_text(s, 5, now);
	return store_exec_stmt(st, s);
}

static void
bind_meta(struct stmt *s, const struct store_image_meta *m)
{
	store_bind_text(s, 3, m->url);
	store_bind_text(s, 4, m->file_path);
	store_bind_text(s, 5, m->thumbnail_path);
	store_bind_text(s, 6, m->sha256);
	store_bind_text(s, 7, m->mime);
	stmt_bind_int(s, 8, m->width);
	stmt_bind_int(s, 9, m->height);
	stmt_bind_int64(s, 10, m->file_size);
}

int
store_image_complete(struct store *st, const char *image_id, const struct store_image_meta *m,
		     bool cached)
{
	static const char sql[] =
		"UPDATE generated_images SET status = 'completed', updated_at = ?2,"
		" image_url = ?3, file_path = ?4, thumbnail_path = ?5, sha256 = ?6, mime = ?7,"
		" width = ?8, height = ?9, file_size = ?10, cached = ?11, error = NULL"
		" WHERE id = ?1";
	struct stmt *s = store_stmt(st, sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, image_id);
	store_bind_text(s, 2, now);
	bind_meta(s, m);
	stmt_bind_int(s, 11, cached);
	return store_exec_stmt(st, s);
}

/* A variant copies its primary's storyboard, run, provider and parameters. */
int
store_image_variant(struct store *st, const char *variant_id, const char *primary_id,
		    const struct store_image_meta *m)
{
	static const char sql[] =
		"INSERT INTO generated_images (id, storyboard_id, run_id, generation_params,"
		"  model_provider_id, status, image_url, file_path, thumbnail_path, sha256, mime,"
		"  width, height, file_size, is_primary, primary_id, attempts, created_at,"
		"  updated_at)"
		" SELECT ?1, storyboard_id, run_id, generation_params, model_provider_id,"
		"  'completed', ?3, ?4, ?5, ?6, ?7, CAST(?8 AS BIGINT), CAST(?9 AS BIGINT),"
		"  CAST(?10 AS BIGINT), 0, ?11, attempts, ?2, ?2"
		" FROM generated_images WHERE id = ?11";
	struct stmt *s = store_stmt(st, sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, variant_id);
	store_bind_text(s, 2, now);
	bind_meta(s, m);
	store_bind_text(s, 11, primary_id);
	return store_exec_stmt(st, s);
}

static char *
dup_col(struct stmt *s, int i)
{
	return stmt_column_type(s, i) == STMT_NULL ? NULL : strdup(store_column_text(s, i));
}

int
store_cache_lookup(struct store *st, const char *cache_key, struct store_image_meta *m)
{
	static const char sql[] =
		"SELECT file_path, thumbnail_path, sha256, mime, image_url, width, height,"
		" file_size FROM generated_images WHERE cache_key = ? AND status = 'completed'"
		" AND is_primary = 1 AND file_path IS NOT NULL"
		" ORDER BY created_at LIMIT 1";
	struct stmt *s = store_stmt(st, sql);
	int found = 0;

	memset(m, 0, sizeof(*m));
	if (cache_key == NULL || cache_key[0] == '\0')
		return 0;	/* no key (out of memory when it was made): no match */
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, cache_key);
	if (stmt_step(s) == STMT_ROW) {
		m->file_path = dup_col(s, 0);
		m->thumbnail_path = dup_col(s, 1);
		m->sha256 = dup_col(s, 2);
		m->mime = dup_col(s, 3);
		m->url = dup_col(s, 4);
		m->width = stmt_column_int(s, 5);
		m->height = stmt_column_int(s, 6);
		m->file_size = stmt_column_int64(s, 7);
		found = 1;
	}
	stmt_reset(s);
	return found;
}

void
store_image_meta_free(struct store_image_meta *m)
{
	free((char *)m->file_path);
	free((char *)m->thumbnail_path);
	free((char *)m->sha256);
	free((char *)m->mime);
	free((char *)m->url);
	memset(m, 0, sizeof(*m));
}
