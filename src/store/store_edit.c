/* store_edit: what the HTTP API changes after an import: a storyboard's
 * prompts and parameters, and the deletion of a whole project. */
#include "store_internal.h"

#include <string.h>

int
store_storyboard_update(struct store *st, const char *storyboard_id, const char *image_prompt,
			const char *negative_prompt, const char *params_json)
{
	/* NULL keeps a column as it is. */
	static const char sql[] =
		"UPDATE storyboards SET image_prompt = coalesce(?2, image_prompt),"
		" negative_prompt = coalesce(?3, negative_prompt), params = coalesce(?4, params)"
		" WHERE id = ?1";
	static const char touch[] =
		"UPDATE projects SET updated_at = ?2 WHERE id ="
		" (SELECT project_id FROM storyboards WHERE id = ?1)";
	struct stmt *s = store_stmt(st, sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, storyboard_id);
	store_bind_text(s, 2, image_prompt);
	store_bind_text(s, 3, negative_prompt);
	store_bind_text(s, 4, params_json);
	if (store_exec_stmt(st, s) < 0 || (s = store_stmt(st, touch)) == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, storyboard_id);
	store_bind_text(s, 2, now);
	return store_exec_stmt(st, s);
}

/* Image files are named by their content and shared: the cache serves one
 * file to every project whose storyboard asks for the same image.  One
 * pass over generated_images, whatever the number of paths. */
json_t *
store_project_files(struct store *st, const char *project_id)
{
	static const char sql[] =
		"WITH img AS (SELECT g.file_path, g.thumbnail_path,"
		"  CASE WHEN s.project_id = ?1 THEN 1 ELSE 0 END AS mine"
		"  FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id),"
		" paths AS (SELECT file_path AS path, mine FROM img WHERE file_path IS NOT NULL"
		"  UNION ALL SELECT thumbnail_path, mine FROM img WHERE thumbnail_path IS NOT NULL)"
		" SELECT path FROM paths WHERE path <> '' GROUP BY path HAVING min(mine) = 1";
	return store_texts(st, sql, project_id);
}

/* Stages, storyboards, runs, their events and images go with it (ON
 * DELETE CASCADE); the caller removes the files store_project_files named. */
int
store_project_delete(struct store *st, const char *project_id)
{
	static const char sql[] = "DELETE FROM projects WHERE id = ?";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, project_id);
	return store_exec_stmt(st, s);
}
