/* store_task: provider tasks that a plugin submitted and checkpointed
 * (table provider_tasks), so that nothing paid for is submitted again.
 *
 * A row is keyed on the storyboard, the provider and the generation
 * parameters (the image's cache key): every later attempt with the same
 * three, in this run or a later one, after a timeout, a crash or a kill -9
 * of the service, is handed its state.  image_id is the image row whose
 * attempt holds the task now, for the views.  Completion of the
 * storyboard's image deletes the storyboard's rows. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static void
bind_key(struct stmt *s, const struct store_task_key *k)
{
	store_bind_text(s, 1, k->storyboard_id);
	store_bind_text(s, 2, k->provider_id);
	store_bind_text(s, 3, k->cache_key);
}

int
store_task_save(struct store *st, const struct store_task_key *k, const char *image_id,
		const char *state)
{
	static const char sql[] =
		"INSERT INTO provider_tasks (storyboard_id, model_provider_id, cache_key, image_id,"
		"  state, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
		" ON CONFLICT (storyboard_id, model_provider_id, cache_key) DO UPDATE"
		" SET image_id = ?4, state = ?5, checkpoints = provider_tasks.checkpoints + 1,"
		" updated_at = ?6";
	struct stmt *s = store_stmt(st, sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	bind_key(s, k);
	store_bind_text(s, 4, image_id);
	store_bind_text(s, 5, state);
	store_bind_text(s, 6, now);
	return store_exec_stmt(st, s);
}

/* The row now belongs to image_id: the attempt about to poll it. */
static int
adopt(struct store *st, const struct store_task_key *k, const char *image_id)
{
	static const char sql[] =
		"UPDATE provider_tasks SET image_id = ?4 WHERE storyboard_id = ?1"
		" AND model_provider_id = ?2 AND cache_key = ?3 AND image_id IS DISTINCT FROM ?4";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	bind_key(s, k);
	store_bind_text(s, 4, image_id);
	return store_exec_stmt(st, s);
}

int
store_task_take(struct store *st, const struct store_task_key *k, const char *image_id,
		char **state)
{
	static const char sql[] =
		"SELECT state FROM provider_tasks WHERE storyboard_id = ?1"
		" AND model_provider_id = ?2 AND cache_key = ?3";
	struct stmt *s = store_stmt(st, sql);
	int rc;

	*state = NULL;
	if (s == NULL)
		return -1;
	bind_key(s, k);
	rc = stmt_step(s);
	if (rc == STMT_ROW && (*state = strdup(store_column_text(s, 0))) == NULL)
		rc = STMT_ERROR;
	stmt_reset(s);
	if (rc == STMT_DONE)
		return 0;
	if (rc != STMT_ROW || adopt(st, k, image_id) < 0) {
		free(*state);
		*state = NULL;
		return -1;
	}
	return 1;
}

int
store_task_clear(struct store *st, const struct store_task_key *k)
{
	static const char sql[] =
		"DELETE FROM provider_tasks WHERE storyboard_id = ?1 AND model_provider_id = ?2"
		" AND cache_key = ?3";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	bind_key(s, k);
	return store_exec_stmt(st, s);
}

int
store_task_clear_storyboard(struct store *st, const char *storyboard_id)
{
	static const char sql[] = "DELETE FROM provider_tasks WHERE storyboard_id = ?";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, storyboard_id);
	return store_exec_stmt(st, s);
}
