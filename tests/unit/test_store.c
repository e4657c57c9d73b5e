/* Unit tests for the SQLite store (src/store/store*.c): schema and migrations,
 * opening refusals, project import, stages, the provider mirror, the image
 * lifecycle, the cache, variants, run events, the JSON views and
 * transactions.  Each test has its own database in a mkdtemp() directory;
 * the tests look at the rows through the store's own connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "project.h"
#include "store.h"
#include "store_internal.h"

#define P1 "aaaaaaaa-0000-4000-8000-000000000001"
#define P2 "aaaaaaaa-0000-4000-8000-000000000002"
#define SB1 "bbbbbbbb-0000-4000-8000-000000000001"
#define SB2 "bbbbbbbb-0000-4000-8000-000000000002"
#define SB3 "bbbbbbbb-0000-4000-8000-000000000003"
#define SB4 "bbbbbbbb-0000-4000-8000-000000000004"
#define RUN1 "cccccccc-0000-4000-8000-000000000001"
#define RUN2 "cccccccc-0000-4000-8000-000000000002"
#define IMG1 "dddddddd-0000-4000-8000-000000000001"
#define IMG2 "dddddddd-0000-4000-8000-000000000002"
#define IMG3 "dddddddd-0000-4000-8000-000000000003"
#define IMG4 "dddddddd-0000-4000-8000-000000000004"
#define VAR1 "eeeeeeee-0000-4000-8000-000000000001"
#define VAR2 "eeeeeeee-0000-4000-8000-000000000002"
#define SHA_A "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_B "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define KEY_A "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY_B "2222222222222222222222222222222222222222222222222222222222222222"

/* Three storyboards; the second with its own parameters. */
static const char project1[] =
	"{\"id\": \"" P1 "\", \"name\": \"Demo \\\"one\\\" \xe4\xb8\x80\","
	" \"image_providers\": [\"jimeng\", \"preview\"],"
	" \"params\": {\"ratio\": \"16:9\", \"options\": {\"seed\": 7}},"
	" \"storyboards\": ["
	"  {\"id\": \"" SB1 "\", \"image_prompt\": \"a cat\"},"
	"  {\"id\": \"" SB2 "\", \"image_prompt\": \"a dog\", \"negative_prompt\": \"blur\","
	"   \"params\": {\"ratio\": \"9:16\", \"resolution\": \"4k\"}},"
	"  {\"id\": \"" SB3 "\", \"image_prompt\": \"a bird\"}"
	" ]}";

/* The storyboard stage still running upstream. */
static const char project2[] =
	"{\"id\": \"" P2 "\", \"storyboard_stage\": \"processing\","
	" \"storyboards\": [{\"id\": \"" SB4 "\", \"image_prompt\": \"a fish\"}]}";

struct fixture {
	char dir[PATH_MAX];
	char db[PATH_MAX + 32];	/* dir/var/lib/t2i.db: parents do not exist yet */
	char err[1024];
	struct store *st;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char tmpl[] = "/tmp/t2i-store-XXXXXX";

	if (fx == NULL || mkdtemp(tmpl) == NULL || realpath(tmpl, fx->dir) == NULL)
		return -1;
	snprintf(fx->db, sizeof(fx->db), "%s/var/lib/t2i.db", fx->dir);
	*state = fx;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc;

	store_close(fx->st);
	rc = nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return rc;
}

static struct store *
open_rw(struct fixture *fx)
{
	struct store *st;

	strcpy(fx->err, "(no error)");
	st = store_open(fx->db, false, fx->err, sizeof(fx->err));
	if (st == NULL)
		print_error("store_open %s: %s\n", fx->db, fx->err);
	assert_non_null(st);
	return st;
}

/* The first column of the first row of a query, as text: "(null)" for
 * NULL, "(none)" without a row.  fmt is a sqlite3_mprintf format (%Q). */
static const char *
q(struct store *st, const char *fmt, ...)
{
	static char out[4096];
	sqlite3_stmt *s;
	va_list ap;
	char *sql;
	int rc;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	assert_non_null(sql);
	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		print_error("%s: %s\n", sql, sqlite3_errmsg(st->db));
	sqlite3_free(sql);
	assert_int_equal(rc, SQLITE_OK);
	if (sqlite3_step(s) != SQLITE_ROW)
		snprintf(out, sizeof(out), "(none)");
	else if (sqlite3_column_type(s, 0) == SQLITE_NULL)
		snprintf(out, sizeof(out), "(null)");
	else
		snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return out;
}

#define qi(st, ...) atoll(q(st, __VA_ARGS__))

static struct project *
parse(const char *text)
{
	char err[512];
	struct project *p = project_parse(text, strlen(text), "test.json", err, sizeof(err));

	if (p == NULL)
		print_error("project_parse: %s\n", err);
	assert_non_null(p);
	return p;
}

static void
import(struct store *st, const char *text)
{
	struct project *p = parse(text);

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_project_import(st, p), 0);
	assert_int_equal(store_commit(st), 0);
	project_free(p);
}

/* Two providers, as config_load would give them; secrets included, so that
 * the test can check they are not mirrored. */
static struct config_provider providers[] = {
	{ .name = "jimeng", .plugin = "jimeng", .plugin_path = "/p/jimeng.so",
	  .api_url = "http://localhost:5100/v1/images/generations", .api_key = "sk-SECRET-1",
	  .model = "jimeng-4.0", .options_json = "{\"sample_strength\":0.5}", .concurrency = 2,
	  .is_default = true },
	{ .name = "preview", .plugin = "placeholder", .plugin_path = "/p/placeholder.so",
	  .api_url = "", .api_key = "", .model = "placeholder-1", .options_json = "{}",
	  .concurrency = 4, .is_default = false },
};

static struct config cfg = {
	.path = "(test)", .nproviders = 2, .providers = providers,
};

/* A project, the providers and a run: what an image row needs. */
static struct store *
open_with_run(struct fixture *fx, char prov_id[37])
{
	struct store *st = open_rw(fx);

	import(st, project1);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_providers_sync(st, &cfg), 0);
	assert_int_equal(store_provider_id(st, "jimeng", prov_id), 0);
	assert_int_equal(store_run_create(st, RUN1, P1, NULL, false, 3), 0);
	assert_int_equal(store_commit(st), 0);
	return st;
}

static const struct store_image_meta meta_a = {
	.file_path = "/img/ba/" SHA_A ".png", .thumbnail_path = "/img/ba/" SHA_A ".thumb.webp",
	.sha256 = SHA_A, .mime = "image/png", .url = "https://cdn.example/a.png?sig=1",
	.width = 2560, .height = 1440, .file_size = 123456,
};

static const struct store_image_meta meta_b = {
	.file_path = "/img/e3/" SHA_B ".jpg", .thumbnail_path = NULL, .sha256 = SHA_B,
	.mime = "image/jpeg", .url = NULL, .width = 1024, .height = 576,
	.file_size = 5000000000LL,
};

/* ---- schema ---- */

static void
test_schema(void **state)
{
	struct fixture *fx = *state;
	static const char *const tables[] = {
		"projects", "project_stages", "storyboards", "model_providers",
		"generated_images", "runs", "run_events", "provider_tasks", "webhook_outbox",
		NULL,
	};
	static const char *const image_cols[] = {
		"id", "storyboard_id", "image_url", "thumbnail_url", "generation_params",
		"model_provider_id", "status", "width", "height", "file_size", "file_path",
		"sha256", "error", "attempts", "created_at", "updated_at", NULL,
	};
	char dir[PATH_MAX + 32];
	struct stat sb;
	struct store *st = fx->st = open_rw(fx);

	/* The database's directory was created, private to the service. */
	snprintf(dir, sizeof(dir), "%s/var/lib", fx->dir);
	assert_int_equal(stat(dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777 & ~0750, 0);

	assert_int_equal(STORE_SCHEMA_VERSION, 7);
	assert_int_equal(qi(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_string_equal(q(st, "PRAGMA journal_mode"), "wal");
	assert_string_equal(q(st, "PRAGMA foreign_keys"), "1");
	assert_false(store_in_tx(st));
	for (const char *const *t = tables; *t != NULL; t++)
		assert_string_equal(q(st, "SELECT type FROM sqlite_master WHERE name = %Q", *t),
				    "table");
	for (const char *const *c = image_cols; *c != NULL; c++) {
		const char *got = q(st,
				    "SELECT name FROM pragma_table_info('generated_images')"
				    " WHERE name = %Q", *c);

		if (strcmp(got, *c) != 0)
			print_error("generated_images has no column %s\n", *c);
		assert_string_equal(got, *c);
	}
	/* status is constrained to the original's four values (foreign keys off,
	 * so that only the CHECK speaks). */
	assert_int_equal(sqlite3_exec(st->db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_exec(st->db,
				      "INSERT INTO generated_images (id, storyboard_id,"
				      " status, created_at, updated_at) VALUES"
				      " ('x', 'y', 'done', '', '')",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT_CHECK);
	assert_int_equal(sqlite3_exec(st->db,
				      "INSERT INTO generated_images (id, storyboard_id,"
				      " status, created_at, updated_at) VALUES"
				      " ('x', 'y', 'pending', '', '')",
				      NULL, NULL, NULL),
			 SQLITE_OK);
}

static void
test_reopen(void **state)
{
	struct fixture *fx = *state;
	struct store *st = open_rw(fx);
	char tables[64];

	import(st, project1);
	snprintf(tables, sizeof(tables), "%s", q(st, "SELECT count(*) FROM sqlite_master"));
	store_close(st);

	/* Reopening finds version 1 and runs no migration (which would fail on
	 * the existing tables); the data is all there. */
	st = fx->st = open_rw(fx);
	assert_int_equal(qi(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_string_equal(q(st, "SELECT count(*) FROM sqlite_master"), tables);
	assert_true(store_project_exists(st, P1));
	assert_int_equal(qi(st, "SELECT count(*) FROM storyboards"), 3);
	store_close(st);

	/* Read-only opens it too. */
	st = fx->st = store_open(fx->db, true, fx->err, sizeof(fx->err));
	assert_non_null(st);
	assert_true(store_project_exists(st, P1));
	assert_int_equal(qi(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
}

static void
test_newer_version(void **state)
{
	struct fixture *fx = *state;
	struct store *st = open_rw(fx);
	const int v = STORE_SCHEMA_VERSION;
	char sql[64], want[128];

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
	assert_int_equal(sqlite3_exec(st->db, sql, NULL, NULL, NULL), SQLITE_OK);
	store_close(st);

	assert_null(store_open(fx->db, false, fx->err, sizeof(fx->err)));
	snprintf(want, sizeof(want), "database schema version %d is newer than this program (%d)",
		 v + 1, v);
	assert_non_null(strstr(fx->err, want));
	assert_null(store_open(fx->db, true, fx->err, sizeof(fx->err)));
	assert_non_null(strstr(fx->err, fx->db));
	snprintf(want, sizeof(want), "not a t2istage database of schema version %d", v);
	assert_non_null(strstr(fx->err, want));

	/* Nothing was changed by the refusals. */
	st = fx->st = store_open(fx->db, true, fx->err, sizeof(fx->err));
	assert_null(st);
	{
		sqlite3 *db;
		sqlite3_stmt *s;

		assert_int_equal(sqlite3_open_v2(fx->db, &db, SQLITE_OPEN_READONLY, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(s, 0), v + 1);
		sqlite3_finalize(s);
		sqlite3_close(db);
	}
}

static void
test_open_refused(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 32];
	FILE *f;
	sqlite3 *db;

	/* Read-only: a missing file is not created. */
	snprintf(path, sizeof(path), "%s/missing.db", fx->dir);
	assert_null(store_open(path, true, fx->err, sizeof(fx->err)));
	assert_non_null(strstr(fx->err, path));
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/no/such/dir/t2i.db", fx->dir);
	assert_null(store_open(path, true, fx->err, sizeof(fx->err)));
	assert_non_null(strstr(fx->err, path));

	/* A file that is not a database at all. */
	snprintf(path, sizeof(path), "%s/text.db", fx->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("this is not an SQLite database, but it is long enough to look like one......"
	      "...............................................................................",
	      f);
	fclose(f);
	assert_null(store_open(path, true, fx->err, sizeof(fx->err)));
	assert_non_null(strstr(fx->err, path));
	assert_null(store_open(path, false, fx->err, sizeof(fx->err)));
	assert_non_null(strstr(fx->err, path));

	/* Another program's SQLite database: refused read-only. */
	snprintf(path, sizeof(path), "%s/other.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(store_open(path, true, fx->err, sizeof(fx->err)));
	assert_non_null(strstr(fx->err, "not a t2istage database"));

	/* A file where the database's directory should be. */
	snprintf(path, sizeof(path), "%s/text.db/sub/t2i.db", fx->dir);
	assert_null(store_open(path, false, fx->err, sizeof(fx->err)));
	assert_non_null(strstr(fx->err, "/text.db/sub: mkdir: Not a directory"));
}

static void
test_readonly_writes_fail(void **state)
{
	struct fixture *fx = *state;
	struct store *st = open_rw(fx);
	struct project *p = parse(project1);

	store_close(st);
	st = fx->st = store_open(fx->db, true, fx->err, sizeof(fx->err));
	assert_non_null(st);
	if (store_begin(st) == 0) {
		assert_int_equal(store_project_import(st, p), -1);
		store_rollback(st);
	}
	assert_false(store_project_exists(st, P1));
	project_free(p);
}

/* ---- projects and stages ---- */

static void
test_import(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->st = open_rw(fx);
	char status[32];
	int total = -1, completed = -1;
	json_t *row;

	assert_false(store_project_exists(st, P1));
	import(st, project1);
	import(st, project2);
	assert_true(store_project_exists(st, P1));
	assert_true(store_project_exists(st, P2));
	assert_false(store_project_exists(st, "ffffffff-0000-4000-8000-000000000000"));

	/* The hand-off from the upstream stage. */
	assert_int_equal(store_stage_status(st, P1, "storyboard", status, sizeof(status)), 0);
	assert_string_equal(status, "completed");
	assert_int_equal(store_stage_status(st, P2, "storyboard", status, sizeof(status)), 0);
	assert_string_equal(status, "processing");
	assert_int_equal(store_stage_status(st, P1, "image_generation", status, sizeof(status)),
			 0);
	assert_string_equal(status, "");
	assert_string_equal(q(st, "SELECT completed_at IS NOT NULL FROM project_stages"
				  " WHERE project_id = %Q AND stage_type = 'storyboard'", P1), "1");

	assert_int_equal(store_stage_counts(st, P1, &total, &completed), 0);
	assert_int_equal(total, 3);
	assert_int_equal(completed, 0);
	assert_int_equal(store_stage_counts(st, P2, &total, &completed), 0);
	assert_int_equal(total, 1);
	total = completed = -1;
	assert_int_equal(store_stage_counts(st, "nope", &total, &completed), 0);
	assert_int_equal(total, 0);
	assert_int_equal(completed, 0);

	/* Rows as imported: positions, prompts, parameters given. */
	assert_string_equal(q(st, "SELECT group_concat(position || ':' || image_prompt, ',')"
				  " FROM (SELECT * FROM storyboards WHERE project_id = %Q"
				  " ORDER BY position)", P1),
			    "1:a cat,2:a dog,3:a bird");
	assert_string_equal(q(st, "SELECT params FROM storyboards WHERE id = %Q", SB2),
			    "{\"ratio\":\"9:16\",\"resolution\":\"4k\"}");
	assert_string_equal(q(st, "SELECT params FROM storyboards WHERE id = %Q", SB1), "{}");
	assert_string_equal(q(st, "SELECT negative_prompt FROM storyboards WHERE id = %Q", SB2),
			    "blur");

	row = store_query_project_row(st, P1);
	assert_non_null(row);
	assert_string_equal(json_string_value(json_object_get(row, "id")), P1);
	assert_string_equal(json_string_value(json_object_get(row, "name")),
			    "Demo \"one\" \xe4\xb8\x80");
	assert_true(json_is_array(json_object_get(row, "image_providers")));
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(row, "image_providers"), 1)),
			    "preview");
	assert_true(json_is_object(json_object_get(row, "params")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(row, "params"),
							      "ratio")),
			    "16:9");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_object_get(row, "params"), "options"),
				 "seed")),
			 7);
	assert_non_null(json_object_get(row, "created_at"));
	json_decref(row);
	assert_null(store_query_project_row(st, "nope"));

	/* The same project twice is refused whole. */
	{
		struct project *p = parse(project1);

		assert_int_equal(store_begin(st), 0);
		assert_int_equal(store_project_import(st, p), -1);
		store_rollback(st);
		project_free(p);
	}
	assert_int_equal(qi(st, "SELECT count(*) FROM storyboards"), 4);
	assert_int_equal(qi(st, "SELECT count(*) FROM projects"), 2);
}

static void
test_stage_set(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->st = open_rw(fx);
	char id1[37] = "", id2[37] = "", started1[32] = "", started2[32] = "", status[32];

	import(st, project1);
	assert_int_equal(store_stage_set(st, P1, "image_generation", "processing", id1, started1),
			 0);
	assert_true(project_is_uuid(id1));
	assert_int_equal(strlen(started1), 24);	/* 2026-11-29T03:54:51.123Z */
	assert_int_equal(started1[23], 'Z');
	assert_string_equal(q(st, "SELECT completed_at FROM project_stages WHERE id = %Q", id1),
			    "(null)");

	/* Finishing keeps the row, its id and started_at. */
	assert_int_equal(store_stage_set(st, P1, "image_generation", "partial", id2, started2), 0);
	assert_string_equal(id2, id1);
	assert_string_equal(started2, started1);
	assert_int_equal(store_stage_status(st, P1, "image_generation", status, sizeof(status)),
			 0);
	assert_string_equal(status, "partial");
	assert_string_not_equal(q(st, "SELECT completed_at FROM project_stages WHERE id = %Q",
				  id1),
				"(null)");
	assert_int_equal(store_stage_set(st, P1, "image_generation", "completed", NULL, NULL), 0);
	assert_int_equal(qi(st, "SELECT count(*) FROM project_stages WHERE project_id = %Q", P1),
			 2);

	/* A new run clears completed_at and sets a new started_at. */
	usleep(2000);
	assert_int_equal(store_stage_set(st, P1, "image_generation", "processing", id2, started2),
			 0);
	assert_string_equal(id2, id1);
	assert_true(strcmp(started2, started1) > 0);
	assert_string_equal(q(st, "SELECT completed_at FROM project_stages WHERE id = %Q", id1),
			    "(null)");

	/* The stage of a project that does not exist: the foreign key says no. */
	assert_int_equal(store_stage_set(st, "nope", "image_generation", "processing", NULL, NULL),
			 -1);
}

static void
test_providers_sync(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->st = open_rw(fx);
	char id_j[37] = "", id_p[37] = "", again[37] = "";

	assert_int_equal(store_provider_id(st, "jimeng", id_j), -1);
	assert_int_equal(store_providers_sync(st, &cfg), 0);
	assert_int_equal(store_provider_id(st, "jimeng", id_j), 0);
	assert_int_equal(store_provider_id(st, "preview", id_p), 0);
	assert_true(project_is_uuid(id_j));
	assert_string_not_equal(id_j, id_p);
	assert_string_equal(q(st, "SELECT plugin || '|' || model_name || '|' || api_url || '|' ||"
				  " is_default FROM model_providers WHERE id = %Q", id_j),
			    "jimeng|jimeng-4.0|http://localhost:5100/v1/images/generations|1");
	assert_string_equal(q(st, "SELECT plugin || '|' || model_name || '|' || is_default"
				  " FROM model_providers WHERE id = %Q", id_p),
			    "placeholder|placeholder-1|0");
	/* No secret is mirrored, in any column. */
	assert_int_equal(qi(st, "SELECT count(*) FROM model_providers WHERE"
				" instr(id || name || plugin || model_name || api_url, 'SECRET')"),
			 0);

	/* Syncing again (a reload) keeps the ids, so images keep their key;
	 * changes are applied. */
	providers[1].model = "placeholder-2";
	assert_int_equal(store_providers_sync(st, &cfg), 0);
	providers[1].model = "placeholder-1";
	assert_int_equal(store_provider_id(st, "jimeng", again), 0);
	assert_string_equal(again, id_j);
	assert_int_equal(store_provider_id(st, "preview", again), 0);
	assert_string_equal(again, id_p);
	assert_string_equal(q(st, "SELECT model_name FROM model_providers WHERE id = %Q", id_p),
			    "placeholder-2");
	assert_int_equal(qi(st, "SELECT count(*) FROM model_providers"), 2);
	assert_int_equal(store_provider_id(st, "nope", again), -1);
}

/* ---- images ---- */

static const char *
img(struct store *st, const char *col, const char *id)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT %s FROM generated_images WHERE id = %%Q", col);
	return q(st, sql, id);
}

static void
test_image_lifecycle(void **state)
{
	struct fixture *fx = *state;
	char prov[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	int total, completed;

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_image_insert(st, IMG1, SB1, RUN1, prov,
					    "{\"model\":\"jimeng-4.0\"}", KEY_A), 0);
	assert_int_equal(store_image_insert(st, IMG2, SB2, RUN1, prov, "{}", KEY_B), 0);
	assert_int_equal(store_commit(st), 0);

	assert_string_equal(img(st, "status", IMG1), "pending");
	assert_string_equal(img(st, "attempts", IMG1), "0");
	assert_string_equal(img(st, "run_id", IMG1), RUN1);
	assert_string_equal(img(st, "model_provider_id", IMG1), prov);
	assert_string_equal(img(st, "storyboard_id", IMG1), SB1);
	assert_string_equal(img(st, "generation_params", IMG1), "{\"model\":\"jimeng-4.0\"}");
	assert_string_equal(img(st, "is_primary", IMG1), "1");
	assert_string_equal(img(st, "file_path", IMG1), "(null)");

	/* pending -> processing, attempts counted */
	assert_int_equal(store_image_processing(st, IMG1), 0);
	assert_string_equal(img(st, "status", IMG1), "processing");
	assert_string_equal(img(st, "attempts", IMG1), "1");

	/* -> completed, with its metadata */
	assert_int_equal(store_image_complete(st, IMG1, &meta_a, false), 0);
	assert_string_equal(img(st, "status", IMG1), "completed");
	assert_string_equal(img(st, "image_url", IMG1), meta_a.url);
	assert_string_equal(img(st, "file_path", IMG1), meta_a.file_path);
	assert_string_equal(img(st, "thumbnail_path", IMG1), meta_a.thumbnail_path);
	assert_string_equal(img(st, "sha256", IMG1), SHA_A);
	assert_string_equal(img(st, "mime", IMG1), "image/png");
	assert_string_equal(img(st, "width", IMG1), "2560");
	assert_string_equal(img(st, "height", IMG1), "1440");
	assert_string_equal(img(st, "file_size", IMG1), "123456");
	assert_string_equal(img(st, "cached", IMG1), "0");
	assert_string_equal(img(st, "error", IMG1), "(null)");
	assert_string_equal(img(st, "attempts", IMG1), "1");
	assert_true(strcmp(img(st, "updated_at", IMG1), "") > 0);

	/* -> failed, twice processed, with the reason */
	assert_int_equal(store_image_processing(st, IMG2), 0);
	assert_int_equal(store_image_reset(st, IMG2), 0);	/* crashed worker: back */
	assert_string_equal(img(st, "status", IMG2), "pending");
	assert_int_equal(store_image_processing(st, IMG2), 0);
	assert_string_equal(img(st, "attempts", IMG2), "2");
	assert_int_equal(store_image_fail(st, IMG2, "rejected: content policy (HTTP 400)"), 0);
	assert_string_equal(img(st, "status", IMG2), "failed");
	assert_string_equal(img(st, "error", IMG2), "rejected: content policy (HTTP 400)");

	/* reset: a failed image goes back to pending, without its error; a
	 * completed one is never touched. */
	assert_int_equal(store_image_reset(st, IMG2), 0);
	assert_string_equal(img(st, "status", IMG2), "pending");
	assert_string_equal(img(st, "error", IMG2), "(null)");
	assert_int_equal(store_image_reset(st, IMG1), 0);
	assert_string_equal(img(st, "status", IMG1), "completed");
	assert_string_equal(img(st, "file_path", IMG1), meta_a.file_path);

	/* A retry that fails, then succeeds, clears the error. */
	assert_int_equal(store_image_processing(st, IMG2), 0);
	assert_int_equal(store_image_fail(st, IMG2, "transient: timeout"), 0);
	assert_int_equal(store_image_processing(st, IMG2), 0);
	assert_string_equal(img(st, "error", IMG2), "(null)");
	assert_int_equal(store_image_complete(st, IMG2, &meta_b, true), 0);
	assert_string_equal(img(st, "error", IMG2), "(null)");
	assert_string_equal(img(st, "image_url", IMG2), "(null)");
	assert_string_equal(img(st, "thumbnail_path", IMG2), "(null)");
	assert_string_equal(img(st, "file_size", IMG2), "5000000000");
	assert_string_equal(img(st, "cached", IMG2), "1");
	assert_string_equal(img(st, "attempts", IMG2), "4");

	assert_int_equal(store_stage_counts(st, P1, &total, &completed), 0);
	assert_int_equal(total, 3);
	assert_int_equal(completed, 2);

	/* Foreign keys hold: no image for a storyboard that does not exist. */
	assert_int_equal(store_image_insert(st, IMG3, "nope", RUN1, prov, "{}", KEY_A), -1);
	/* Nor twice the same id. */
	assert_int_equal(store_image_insert(st, IMG1, SB1, RUN1, prov, "{}", KEY_A), -1);
}

static void
test_cache_lookup(void **state)
{
	struct fixture *fx = *state;
	char prov[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	struct store_image_meta m;

	assert_int_equal(store_image_insert(st, IMG1, SB1, RUN1, prov, "{}", KEY_A), 0);
	assert_int_equal(store_image_insert(st, IMG2, SB2, RUN1, prov, "{}", KEY_B), 0);
	assert_int_equal(store_image_insert(st, IMG3, SB3, RUN1, prov, "{}", KEY_B), 0);

	/* Nothing completed yet: pending, processing and failed never match. */
	assert_int_equal(store_cache_lookup(st, KEY_A, &m), 0);
	assert_null(m.file_path);
	assert_int_equal(store_image_processing(st, IMG1), 0);
	assert_int_equal(store_cache_lookup(st, KEY_A, &m), 0);
	assert_int_equal(store_image_fail(st, IMG1, "x"), 0);
	assert_int_equal(store_cache_lookup(st, KEY_A, &m), 0);

	/* A completed primary matches, with everything needed to serve it. */
	assert_int_equal(store_image_complete(st, IMG2, &meta_a, false), 0);
	assert_int_equal(store_cache_lookup(st, KEY_B, &m), 1);
	assert_string_equal(m.file_path, meta_a.file_path);
	assert_string_equal(m.thumbnail_path, meta_a.thumbnail_path);
	assert_string_equal(m.sha256, SHA_A);
	assert_string_equal(m.mime, "image/png");
	assert_string_equal(m.url, meta_a.url);
	assert_int_equal(m.width, 2560);
	assert_int_equal(m.height, 1440);
	assert_true(m.file_size == 123456);
	store_image_meta_free(&m);
	assert_null(m.file_path);

	/* NULL columns come back NULL. */
	assert_int_equal(store_image_complete(st, IMG2, &meta_b, false), 0);
	assert_int_equal(store_cache_lookup(st, KEY_B, &m), 1);
	assert_null(m.url);
	assert_null(m.thumbnail_path);
	assert_true(m.file_size == 5000000000LL);
	store_image_meta_free(&m);

	/* Other keys, and no key, do not match. */
	assert_int_equal(store_cache_lookup(st, KEY_A, &m), 0);
	assert_int_equal(store_cache_lookup(st, "", &m), 0);
	assert_int_equal(store_cache_lookup(st, "0000", &m), 0);

	/* A variant is never a cache hit, even with a key of its own. */
	assert_int_equal(store_image_variant(st, VAR1, IMG1, &meta_a), 0);
	assert_int_equal(sqlite3_exec(st->db,
				      "UPDATE generated_images SET cache_key = '" KEY_A "'"
				      " WHERE id = '" VAR1 "'",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(store_cache_lookup(st, KEY_A, &m), 0);

	/* An empty key never matches, even rows stored with one. */
	assert_int_equal(store_image_insert(st, IMG4, SB1, RUN1, prov, "{}", ""), 0);
	assert_int_equal(store_image_complete(st, IMG4, &meta_a, false), 0);
	assert_int_equal(store_cache_lookup(st, "", &m), 0);
	assert_null(m.file_path);
}

static void
test_variants(void **state)
{
	struct fixture *fx = *state;
	char prov[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	int total, completed;

	assert_int_equal(store_image_insert(st, IMG1, SB1, RUN1, prov,
					    "{\"provider\":\"jimeng\"}", KEY_A), 0);
	assert_int_equal(store_image_processing(st, IMG1), 0);
	assert_int_equal(store_image_complete(st, IMG1, &meta_a, false), 0);
	assert_int_equal(store_image_variant(st, VAR1, IMG1, &meta_b), 0);
	assert_int_equal(store_image_variant(st, VAR2, IMG1, &meta_a), 0);

	/* A variant copies its primary's storyboard, run, provider, parameters
	 * and attempts, and has its own file. */
	assert_string_equal(img(st, "status", VAR1), "completed");
	assert_string_equal(img(st, "is_primary", VAR1), "0");
	assert_string_equal(img(st, "primary_id", VAR1), IMG1);
	assert_string_equal(img(st, "storyboard_id", VAR1), SB1);
	assert_string_equal(img(st, "run_id", VAR1), RUN1);
	assert_string_equal(img(st, "model_provider_id", VAR1), prov);
	assert_string_equal(img(st, "generation_params", VAR1), "{\"provider\":\"jimeng\"}");
	assert_string_equal(img(st, "attempts", VAR1), "1");
	assert_string_equal(img(st, "file_path", VAR1), meta_b.file_path);
	assert_string_equal(img(st, "sha256", VAR1), SHA_B);
	assert_string_equal(img(st, "cache_key", VAR1), "(null)");
	assert_int_equal(qi(st, "SELECT count(*) FROM generated_images WHERE primary_id = %Q",
			    IMG1),
			 2);

	/* Variants do not count as the storyboard's image. */
	assert_int_equal(store_stage_counts(st, P1, &total, &completed), 0);
	assert_int_equal(completed, 1);
	assert_int_equal(store_image_insert(st, IMG2, SB2, RUN1, prov, "{}", KEY_B), 0);
	assert_int_equal(store_image_fail(st, IMG2, "x"), 0);
	assert_int_equal(store_image_variant(st, "eeeeeeee-0000-4000-8000-000000000009", IMG2,
					     &meta_b), 0);
	assert_int_equal(store_stage_counts(st, P1, &total, &completed), 0);
	assert_int_equal(completed, 1);

	/* Deleting the primary takes its variants along. */
	assert_int_equal(sqlite3_exec(st->db, "DELETE FROM generated_images WHERE id = '" IMG1 "'",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(qi(st, "SELECT count(*) FROM generated_images WHERE primary_id = %Q",
			    IMG1),
			 0);
}

/* ---- runs and events ---- */

static void
test_runs_and_events(void **state)
{
	struct fixture *fx = *state;
	char prov[37], run[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	long pid = 0;
	json_t *ids = json_pack("[ss]", SB1, SB3);

	assert_string_equal(q(st, "SELECT status || '|' || total || '|' || last_seq || '|' ||"
				  " no_cache FROM runs WHERE id = %Q", RUN1),
			    "processing|3|0|0");
	assert_int_equal(qi(st, "SELECT pid FROM runs WHERE id = %Q", RUN1), getpid());
	assert_string_equal(q(st, "SELECT storyboard_ids FROM runs WHERE id = %Q", RUN1),
			    "(null)");

	/* The active run of a project, with its pid. */
	assert_int_equal(store_run_active(st, P1, run, &pid), 0);
	assert_string_equal(run, RUN1);
	assert_int_equal(pid, getpid());
	assert_int_equal(store_run_active(st, P2, run, &pid), 0);
	assert_string_equal(run, "");
	assert_int_equal(pid, 0);

	/* Events: stored in order, last_seq follows. */
	assert_int_equal(store_event_append(st, RUN1, 1, "stage_update", "{\"seq\":1}"), 0);
	assert_int_equal(qi(st, "SELECT last_seq FROM runs WHERE id = %Q", RUN1), 1);
	assert_int_equal(store_event_append(st, RUN1, 2, "info", "{\"seq\":2}"), 0);
	assert_int_equal(store_event_append(st, RUN1, 3, "progress", "{\"seq\":3}"), 0);
	assert_int_equal(qi(st, "SELECT last_seq FROM runs WHERE id = %Q", RUN1), 3);
	assert_string_equal(q(st, "SELECT group_concat(seq || type, ',') FROM"
				  " (SELECT * FROM run_events WHERE run_id = %Q ORDER BY seq)",
				  RUN1),
			    "1stage_update,2info,3progress");
	assert_string_equal(q(st, "SELECT body FROM run_events WHERE run_id = %Q AND seq = 2",
			      RUN1),
			    "{\"seq\":2}");
	/* A seq is used once; last_seq does not move back. */
	assert_int_equal(store_event_append(st, RUN1, 2, "info", "{}"), -1);
	assert_int_equal(qi(st, "SELECT last_seq FROM runs WHERE id = %Q", RUN1), 3);
	/* No events for a run that does not exist. */
	assert_int_equal(store_event_append(st, RUN2, 1, "info", "{}"), -1);

	/* Finishing: no longer active. */
	assert_int_equal(store_run_finish(st, RUN1, "partial", 2, 1), 0);
	assert_string_equal(q(st, "SELECT status || '|' || success_count || '|' || failed_count"
				  " || '|' || (finished_at IS NOT NULL) FROM runs WHERE id = %Q",
				  RUN1),
			    "partial|2|1|1");
	assert_int_equal(store_run_active(st, P1, run, &pid), 0);
	assert_string_equal(run, "");

	/* A run over chosen storyboards records them; set_status. */
	assert_int_equal(store_run_create(st, RUN2, P1, ids, true, 2), 0);
	assert_string_equal(q(st, "SELECT storyboard_ids FROM runs WHERE id = %Q", RUN2),
			    "[\"" SB1 "\",\"" SB3 "\"]");
	assert_string_equal(q(st, "SELECT no_cache FROM runs WHERE id = %Q", RUN2), "1");
	assert_int_equal(store_run_active(st, P1, run, &pid), 0);
	assert_string_equal(run, RUN2);
	assert_int_equal(store_run_set_status(st, RUN2, "interrupted"), 0);
	assert_int_equal(store_run_active(st, P1, run, &pid), 0);
	assert_string_equal(run, "");
	/* A run of a project that does not exist. */
	assert_int_equal(store_run_create(st, "cccccccc-0000-4000-8000-000000000009", "nope", NULL,
					  false, 1), -1);
	json_decref(ids);
}

/* ---- the webhook outbox ---- */

#define OUTBOX_ROW(id)                                                                  \
	"SELECT status || '|' || attempts || '|' || next_attempt_ms || '|' ||"           \
	" coalesce(last_status, '-') || '|' || coalesce(last_error, '-') || '|' ||"     \
	" coalesce(delivered_ms, '-') FROM webhook_outbox WHERE webhook_id = '" id "'"

static void
test_webhook_outbox(void **state)
{
	struct fixture *fx = *state;
	char prov[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	struct store_webhook_row rows[4];

	assert_int_equal(store_event_append(st, RUN1, 1, "info", "{\"seq\":1}"), 0);
	assert_int_equal(store_event_append(st, RUN1, 2, "done", "{\"seq\":2,\"type\":\"done\"}"), 0);
	assert_int_equal(store_webhook_queue(st, "msg_a", "https://a.example/", RUN1, 1, 1000), 0);
	assert_int_equal(store_webhook_queue(st, "msg_b", "https://b.example/", RUN1, 2, 1000), 0);
	/* Only a recorded event, once per endpoint. */
	assert_int_equal(store_webhook_queue(st, "msg_c", "https://a.example/", RUN1, 9, 1000), -1);
	assert_int_equal(store_webhook_queue(st, "msg_d", "https://a.example/", RUN1, 1, 1000), -1);

	/* Due rows, earliest first, with the event's body as stored. */
	assert_int_equal(store_webhook_due(st, 999, NULL, rows, 4), 0);
	assert_int_equal(store_webhook_due(st, 1000, RUN2, rows, 4), 0);
	assert_int_equal(store_webhook_due(st, 1000, RUN1, rows, 4), 2);
	assert_string_equal(rows[1].webhook_id, "msg_b");
	assert_string_equal(rows[1].endpoint, "https://b.example/");
	assert_string_equal(rows[1].body, "{\"seq\":2,\"type\":\"done\"}");
	assert_int_equal(rows[1].body_len, strlen(rows[1].body));
	assert_int_equal(rows[1].attempts, 0);
	assert_int_equal(rows[1].queued_ms, 1000);
	for (int i = 0; i < 2; i++)
		store_webhook_row_free(&rows[i]);

	/* A leased row is not due until the lease ends. */
	assert_int_equal(store_webhook_lease(st, "msg_a", 5000), 0);
	assert_int_equal(store_webhook_due(st, 1000, NULL, rows, 4), 1);
	assert_string_equal(rows[0].webhook_id, "msg_b");
	store_webhook_row_free(&rows[0]);
	assert_int_equal(store_webhook_next_due(st, 1000), 5000);

	/* A failed attempt, then the retry is due later; delivered; given up;
	 * a row that is no longer pending does not change. */
	assert_int_equal(store_webhook_failed(st, "msg_b", 500, "answered HTTP 500", 1100, 3000), 0);
	assert_string_equal(q(st, OUTBOX_ROW("msg_b")), "pending|1|3000|500|answered HTTP 500|-");
	assert_int_equal(store_webhook_pending(st, NULL, INT64_MAX), 2);
	assert_int_equal(store_webhook_pending(st, RUN1, 2999), 0);
	assert_int_equal(store_webhook_next_due(st, 1100), 3000);
	assert_int_equal(store_webhook_delivered(st, "msg_a", 204, 1200), 0);
	assert_string_equal(q(st, OUTBOX_ROW("msg_a")), "delivered|1|5000|204|-|1200");
	assert_int_equal(store_webhook_failed(st, "msg_a", 0, "late", 1300, 9000), 0);
	assert_string_equal(q(st, OUTBOX_ROW("msg_a")), "delivered|1|5000|204|-|1200");
	assert_int_equal(store_webhook_failed(st, "msg_b", 0, "timed out", 3100, -1), 0);
	assert_string_equal(q(st, OUTBOX_ROW("msg_b")), "gave_up|2|3000|-|timed out|-");
	assert_int_equal(store_webhook_pending(st, NULL, INT64_MAX), 0);
	assert_true(store_webhook_next_due(st, 0) == INT64_MAX);

	/* No secret has a place in the table. */
	assert_string_equal(q(st, "SELECT count(*) FROM pragma_table_info('webhook_outbox')"
				  " WHERE name LIKE '%%secret%%' OR name LIKE '%%key%%'"), "0");
	/* The rows go with their run. */
	assert_int_equal(sqlite3_exec(st->db, "DELETE FROM runs", NULL, NULL, NULL), SQLITE_OK);
	assert_string_equal(q(st, "SELECT count(*) FROM webhook_outbox"), "0");
}

/* ---- JSON views ---- */

static json_t *
find_by(json_t *a, const char *key, const char *value)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
		if (strcmp(json_string_value(json_object_get(v, key)), value) == 0)
			return v;
	return NULL;
}

static void
assert_keys(json_t *o, const char *const *keys)
{
	size_t n = 0;

	assert_true(json_is_object(o));
	for (const char *const *k = keys; *k != NULL; k++, n++) {
		if (json_object_get(o, *k) == NULL)
			print_error("missing key %s\n", *k);
		assert_non_null(json_object_get(o, *k));
	}
	assert_int_equal(json_object_size(o), n);
}

static void
test_queries(void **state)
{
	struct fixture *fx = *state;
	char prov[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	static const char *const project_keys[] = {
		"id", "name", "image_providers", "params", "created_at", "updated_at",
		"stages", "counts", "provider_tasks", NULL,
	};
	static const char *const stage_keys[] = {
		"id", "stage_type", "status", "started_at", "completed_at", NULL,
	};
	static const char *const count_keys[] = {
		"storyboards", "completed", "failed", "pending", "not_started", NULL,
	};
	static const char *const image_keys[] = {
		"id", "storyboard_id", "storyboard_index", "run_id", "status", "is_primary",
		"primary_id", "url", "width", "height", "file_path", "file_size",
		"thumbnail_path", "sha256", "mime", "cached", "attempts", "error",
		"generation_params", "provider", "created_at", "updated_at", "provider_task", NULL,
	};
	static const char *const sb_keys[] = {
		"id", "index", "image_prompt", "negative_prompt", "params", NULL,
	};
	json_t *o, *a, *v, *counts, *want;
	char next[STORE_CURSOR_MAX], cursor[STORE_CURSOR_MAX];
	bool bad;

	import(st, project2);
	/* SB1 completed with a variant, SB2 failed, SB3 pending. */
	assert_int_equal(store_image_insert(st, IMG1, SB1, RUN1, prov,
					    "{\"model\":\"jimeng-4.0\",\"width\":2560}", KEY_A), 0);
	assert_int_equal(store_image_insert(st, IMG2, SB2, RUN1, prov, "{}", KEY_B), 0);
	assert_int_equal(store_image_insert(st, IMG3, SB3, RUN1, prov, "{}", KEY_B), 0);
	assert_int_equal(store_image_processing(st, IMG1), 0);
	assert_int_equal(store_image_complete(st, IMG1, &meta_a, false), 0);
	assert_int_equal(store_image_variant(st, VAR1, IMG1, &meta_b), 0);
	assert_int_equal(store_image_fail(st, IMG2, "auth: bad key"), 0);
	assert_int_equal(store_stage_set(st, P1, "image_generation", "processing", NULL, NULL),
			 0);

	/* One project */
	o = store_query_project(st, P1);
	assert_keys(o, project_keys);
	assert_true(json_is_array(json_object_get(o, "image_providers")));
	assert_true(json_is_object(json_object_get(o, "params")));
	a = json_object_get(o, "stages");
	assert_int_equal(json_array_size(a), 2);
	assert_keys(json_array_get(a, 0), stage_keys);
	v = find_by(a, "stage_type", "storyboard");
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "status")), "completed");
	v = find_by(a, "stage_type", "image_generation");
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "status")), "processing");
	assert_true(json_is_string(json_object_get(v, "started_at")));
	assert_true(json_is_null(json_object_get(v, "completed_at")));
	counts = json_object_get(o, "counts");
	assert_keys(counts, count_keys);
	want = json_pack("{si si si si si}", "storyboards", 3, "completed", 1, "failed", 1,
			 "pending", 1, "not_started", 0);
	assert_true(json_equal(counts, want));
	json_decref(want);
	json_decref(o);
	assert_null(store_query_project(st, "nope"));

	/* P2: nothing started. */
	o = store_query_project(st, P2);
	want = json_pack("{si si si si si}", "storyboards", 1, "completed", 0, "failed", 0,
			 "pending", 0, "not_started", 1);
	assert_true(json_equal(json_object_get(o, "counts"), want));
	json_decref(want);
	json_decref(o);

	/* All projects */
	a = store_query_projects(st);
	assert_true(json_is_array(a));
	assert_int_equal(json_array_size(a), 2);
	assert_keys(json_array_get(a, 0), project_keys);
	assert_non_null(find_by(a, "id", P1));
	assert_non_null(find_by(a, "id", P2));
	json_decref(a);

	/* Images, in storyboard order, the primary before its variant. */
	a = store_query_images(st, P1);
	assert_int_equal(json_array_size(a), 4);
	for (size_t i = 0; i < 4; i++)
		assert_keys(json_array_get(a, i), image_keys);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "id")), IMG1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "id")), VAR1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 2), "id")), IMG2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 3), "id")), IMG3);
	v = json_array_get(a, 0);
	assert_int_equal(json_integer_value(json_object_get(v, "storyboard_index")), 1);
	assert_string_equal(json_string_value(json_object_get(v, "status")), "completed");
	assert_int_equal(json_integer_value(json_object_get(v, "is_primary")), 1);
	assert_true(json_is_null(json_object_get(v, "primary_id")));
	assert_string_equal(json_string_value(json_object_get(v, "url")), meta_a.url);
	assert_int_equal(json_integer_value(json_object_get(v, "width")), 2560);
	assert_int_equal(json_integer_value(json_object_get(v, "file_size")), 123456);
	assert_string_equal(json_string_value(json_object_get(v, "provider")), "jimeng");
	/* generation_params is JSON, not text. */
	assert_true(json_is_object(json_object_get(v, "generation_params")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(v,
									    "generation_params"),
							    "width")),
			 2560);
	v = json_array_get(a, 1);
	assert_int_equal(json_integer_value(json_object_get(v, "is_primary")), 0);
	assert_string_equal(json_string_value(json_object_get(v, "primary_id")), IMG1);
	assert_true(json_is_null(json_object_get(v, "url")));
	assert_true(json_integer_value(json_object_get(v, "file_size")) == 5000000000LL);
	v = json_array_get(a, 2);
	assert_string_equal(json_string_value(json_object_get(v, "status")), "failed");
	assert_string_equal(json_string_value(json_object_get(v, "error")), "auth: bad key");
	assert_true(json_is_null(json_object_get(v, "file_path")));
	json_decref(a);
	a = store_query_images(st, P2);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);

	/* The same a page at a time: three, then the last after the cursor. */
	a = store_page_images(st, P1, NULL, 3, next, &bad);
	assert_int_equal(json_array_size(a), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "id")), VAR1);
	assert_keys(json_array_get(a, 2), image_keys);
	json_decref(a);
	snprintf(cursor, sizeof(cursor), "%s", next);
	a = store_page_images(st, P1, cursor, 3, next, &bad);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "id")), IMG3);
	assert_string_equal(next, "");
	json_decref(a);
	assert_null(store_page_storyboards(st, P1, cursor, 3, next, &bad));
	assert_true(bad);
	/* Storyboards with their current images: SB1's completed one, SB3's
	 * pending one. */
	a = store_page_storyboards(st, P1, NULL, 2, next, &bad);
	assert_int_equal(json_array_size(a), 2);
	v = json_array_get(a, 0);
	assert_keys(v, (const char *const[]){ "id", "index", "image_prompt", "negative_prompt",
					      "params", "image", NULL });
	assert_string_equal(json_string_value(json_object_get(json_object_get(v, "image"), "id")),
			    IMG1);
	assert_keys(json_object_get(v, "image"), image_keys);
	json_decref(a);
	a = store_page_storyboards(st, P1, next, 2, next, &bad);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(a, 0),
									      "image"), "id")), IMG3);
	assert_string_equal(next, "");
	json_decref(a);
	a = store_page_storyboards(st, P2, NULL, 2, next, &bad);
	assert_true(json_is_null(json_object_get(json_array_get(a, 0), "image")));
	json_decref(a);


	/* Storyboards: all, in order */
	a = store_query_storyboards(st, P1, NULL, false);
	assert_int_equal(json_array_size(a), 3);
	for (size_t i = 0; i < 3; i++) {
		v = json_array_get(a, i);
		assert_keys(v, sb_keys);
		assert_int_equal(json_integer_value(json_object_get(v, "index")), (int)i + 1);
	}
	v = json_array_get(a, 1);
	assert_string_equal(json_string_value(json_object_get(v, "id")), SB2);
	assert_string_equal(json_string_value(json_object_get(v, "image_prompt")), "a dog");
	assert_string_equal(json_string_value(json_object_get(v, "negative_prompt")), "blur");
	assert_true(json_is_object(json_object_get(v, "params")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(v, "params"),
							      "resolution")),
			    "4k");
	json_decref(a);

	/* ... only those without a completed image (retry) */
	a = store_query_storyboards(st, P1, NULL, true);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "id")), SB2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "id")), SB3);
	json_decref(a);

	/* ... only the requested ones, in project order, ignoring others */
	want = json_pack("[sss]", SB3, SB1, SB4);
	a = store_query_storyboards(st, P1, want, false);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "id")), SB1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "id")), SB3);
	json_decref(a);
	a = store_query_storyboards(st, P1, want, true);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "id")), SB3);
	json_decref(a);
	json_decref(want);
	/* Ids that are not strings match nothing (and do not crash). */
	want = json_pack("[i n s]", 1, SB2);
	a = store_query_storyboards(st, P1, want, false);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "id")), SB2);
	json_decref(a);
	json_decref(want);
	want = json_array();
	a = store_query_storyboards(st, P1, want, false);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);
	json_decref(want);
	a = store_query_storyboards(st, "nope", NULL, false);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);

	/* The counts follow every change (triggers): a later failed attempt
	 * leaves SB1 completed; SB2's retry is pending, then completed. */
	assert_int_equal(store_image_insert(st, IMG4, SB1, RUN1, prov, "{}", KEY_B), 0);
	assert_int_equal(store_image_fail(st, IMG4, "timeout"), 0);
	assert_int_equal(store_image_reset(st, IMG2), 0);
	o = store_query_project(st, P1);
	want = json_pack("{si si si si si}", "storyboards", 3, "completed", 1, "failed", 0,
			 "pending", 2, "not_started", 0);
	assert_true(json_equal(json_object_get(o, "counts"), want));
	json_decref(want);
	json_decref(o);
	assert_int_equal(store_image_complete(st, IMG2, &meta_a, false), 0);
	o = store_query_project(st, P1);
	want = json_pack("{si si si si si}", "storyboards", 3, "completed", 2, "failed", 0,
			 "pending", 1, "not_started", 0);
	assert_true(json_equal(json_object_get(o, "counts"), want));
	json_decref(want);
	json_decref(o);
	assert_int_equal(qi(st, "SELECT count(*) FROM storyboard_status"), 4);
}

/* ---- provider tasks ---- */

static json_t *
image_by_id(json_t *images, const char *id)
{
	size_t i;
	json_t *v;

	json_array_foreach(images, i, v)
		if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0)
			return v;
	return NULL;
}

static const char *
task_state_of(json_t *image, const char *member)
{
	json_t *t = json_object_get(image, "provider_task");

	return json_string_value(json_object_get(json_object_get(t, "state"), member));
}

static void
test_tasks(void **state)
{
	struct fixture *fx = *state;
	char prov[37], other[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	struct store_task_key k1 = { SB1, prov, KEY_A };
	struct store_task_key k2 = { SB2, prov, KEY_B };
	char created[64], next[STORE_CURSOR_MAX];
	json_t *a, *v, *t;
	char *got;
	bool bad;

	assert_int_equal(store_provider_id(st, "preview", other), 0);
	assert_int_equal(store_image_insert(st, IMG1, SB1, RUN1, prov, "{}", KEY_A), 0);
	assert_int_equal(store_image_insert(st, IMG2, SB2, RUN1, prov, "{}", KEY_B), 0);

	/* Nothing recorded: nothing to resume. */
	got = (char *)1;
	assert_int_equal(store_task_take(st, &k1, IMG1, &got), 0);
	assert_null(got);

	/* A checkpoint, then another for the same task key: one row. */
	assert_int_equal(store_task_save(st, &k1, IMG1, "{\"task\":\"t1\"}"), 0);
	snprintf(created, sizeof(created), "%s",
		 q(st, "SELECT created_at FROM provider_tasks WHERE storyboard_id = %Q", SB1));
	assert_int_equal(store_task_save(st, &k1, IMG1, "{\"task\":\"t2\", \"n\": 2}"), 0);
	assert_int_equal(qi(st, "SELECT count(*) FROM provider_tasks"), 1);
	assert_string_equal(q(st, "SELECT checkpoints FROM provider_tasks"), "2");
	assert_string_equal(q(st, "SELECT created_at FROM provider_tasks"), created);
	assert_true(strcmp(q(st, "SELECT updated_at FROM provider_tasks"), created) >= 0);
	assert_int_equal(store_task_take(st, &k1, IMG1, &got), 1);
	assert_string_equal(got, "{\"task\":\"t2\", \"n\": 2}");	/* the text as given */
	free(got);

	/* Another storyboard, provider or set of parameters has none. */
	assert_int_equal(store_task_take(st, &k2, IMG2, &got), 0);
	assert_int_equal(store_task_take(st, &(struct store_task_key){ SB1, other, KEY_A }, IMG1,
					 &got), 0);
	assert_int_equal(store_task_take(st, &(struct store_task_key){ SB1, prov, KEY_B }, IMG1,
					 &got), 0);

	/* Only JSON objects are stored; only real storyboards and providers. */
	assert_int_equal(store_task_save(st, &k2, IMG2, "[\"t\"]"), -1);
	assert_int_equal(store_task_save(st, &k2, IMG2, "{\"t\""), -1);
	assert_int_equal(store_task_save(st, &(struct store_task_key){ "nope", prov, KEY_A }, IMG1,
					 "{}"), -1);
	assert_int_equal(store_task_save(st, &(struct store_task_key){ SB2, "nope", KEY_B }, IMG2,
					 "{}"), -1);
	assert_int_equal(qi(st, "SELECT count(*) FROM provider_tasks"), 1);

	/* The views show the task on the image whose attempt holds it. */
	a = store_query_images(st, P1);
	assert_string_equal(task_state_of(image_by_id(a, IMG1), "task"), "t2");
	t = json_object_get(image_by_id(a, IMG1), "provider_task");
	assert_string_equal(json_string_value(json_object_get(t, "provider")), "jimeng");
	assert_int_equal(json_integer_value(json_object_get(t, "checkpoints")), 2);
	assert_string_equal(json_string_value(json_object_get(t, "created_at")), created);
	assert_true(json_is_null(json_object_get(image_by_id(a, IMG2), "provider_task")));
	json_decref(a);
	v = store_query_image(st, IMG1);
	assert_string_equal(task_state_of(v, "task"), "t2");
	json_decref(v);
	a = store_page_storyboards(st, P1, NULL, 10, next, &bad);
	assert_false(bad);
	assert_string_equal(next, "");
	for (size_t i = 0; i < json_array_size(a); i++) {
		t = json_object_get(json_array_get(a, i), "image");
		if (json_is_object(t) && strcmp(json_string_value(json_object_get(t, "id")), IMG1) == 0)
			assert_string_equal(task_state_of(t, "task"), "t2");
	}
	json_decref(a);
	v = store_query_project(st, P1);
	a = json_object_get(v, "provider_tasks");
	assert_int_equal(json_array_size(a), 1);
	t = json_array_get(a, 0);
	assert_string_equal(json_string_value(json_object_get(t, "storyboard_id")), SB1);
	assert_int_equal(json_integer_value(json_object_get(t, "storyboard_index")), 1);
	assert_string_equal(json_string_value(json_object_get(t, "image_id")), IMG1);
	assert_string_equal(json_string_value(json_object_get(t, "provider")), "jimeng");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "state"),
							      "task")), "t2");
	json_decref(v);

	/* A later run with the same parameters takes the task over. */
	assert_int_equal(store_run_create(st, RUN2, P1, NULL, false, 1), 0);
	assert_int_equal(store_image_insert(st, IMG3, SB1, RUN2, prov, "{}", KEY_A), 0);
	assert_int_equal(store_task_take(st, &k1, IMG3, &got), 1);
	free(got);
	a = store_query_images(st, P1);
	assert_true(json_is_null(json_object_get(image_by_id(a, IMG1), "provider_task")));
	assert_string_equal(task_state_of(image_by_id(a, IMG3), "task"), "t2");
	json_decref(a);

	/* Forgotten one at a time, or all of a storyboard's at once. */
	assert_int_equal(store_task_save(st, &k2, IMG2, "{\"task\":\"u\"}"), 0);
	assert_int_equal(store_task_clear(st, &k1), 0);
	assert_int_equal(store_task_take(st, &k1, IMG3, &got), 0);
	assert_int_equal(qi(st, "SELECT count(*) FROM provider_tasks"), 1);
	assert_int_equal(store_task_save(st, &k1, IMG3, "{}"), 0);
	assert_int_equal(store_task_save(st, &(struct store_task_key){ SB1, other, KEY_B }, IMG3,
					 "{}"), 0);
	assert_int_equal(store_task_clear_storyboard(st, SB1), 0);
	assert_int_equal(qi(st, "SELECT count(*) FROM provider_tasks WHERE storyboard_id = %Q",
			    SB1), 0);
	assert_int_equal(qi(st, "SELECT count(*) FROM provider_tasks"), 1);

	/* They go with their project. */
	assert_int_equal(sqlite3_exec(st->db, "DELETE FROM projects", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(qi(st, "SELECT count(*) FROM provider_tasks"), 0);
}

/* ---- transactions ---- */

static void
test_rollback(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->st = open_rw(fx);
	struct project *p = parse(project1);
	char prov[37];
	static const char *const tables[] = {
		"projects", "project_stages", "storyboards", "model_providers",
		"generated_images", "runs", "run_events", "provider_tasks", "webhook_outbox",
		NULL,
	};
	const struct store_task_key k = { SB1, prov, KEY_A };

	assert_int_equal(store_begin(st), 0);
	assert_true(store_in_tx(st));
	assert_int_equal(store_begin(st), 0);	/* nested begin: the same transaction */
	assert_int_equal(store_project_import(st, p), 0);
	assert_int_equal(store_providers_sync(st, &cfg), 0);
	assert_int_equal(store_provider_id(st, "jimeng", prov), 0);
	assert_int_equal(store_run_create(st, RUN1, P1, NULL, false, 3), 0);
	assert_int_equal(store_image_insert(st, IMG1, SB1, RUN1, prov, "{}", KEY_A), 0);
	assert_int_equal(store_image_complete(st, IMG1, &meta_a, false), 0);
	assert_int_equal(store_image_variant(st, VAR1, IMG1, &meta_b), 0);
	assert_int_equal(store_stage_set(st, P1, "image_generation", "processing", NULL, NULL),
			 0);
	assert_int_equal(store_event_append(st, RUN1, 1, "info", "{}"), 0);
	assert_int_equal(store_task_save(st, &k, IMG1, "{\"task\":\"t\"}"), 0);
	assert_int_equal(store_webhook_queue(st, "msg_r", "https://x.example/", RUN1, 1, 1), 0);
	assert_true(store_project_exists(st, P1));
	store_rollback(st);
	assert_false(store_in_tx(st));

	for (const char *const *t = tables; *t != NULL; t++) {
		if (qi(st, "SELECT count(*) FROM %s", *t) != 0)
			print_error("table %s is not empty after rollback\n", *t);
		assert_int_equal(qi(st, "SELECT count(*) FROM %s", *t), 0);
	}
	assert_false(store_project_exists(st, P1));
	store_rollback(st);	/* without a transaction: nothing */
	assert_int_equal(store_commit(st), 0);

	/* The same work commits afterwards: the statement cache survived. */
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_project_import(st, p), 0);
	assert_int_equal(store_commit(st), 0);
	assert_false(store_in_tx(st));
	store_close(st);
	st = fx->st = open_rw(fx);
	assert_true(store_project_exists(st, P1));
	project_free(p);
}

static void
test_now(void **state)
{
	char a[32], b[32];

	(void)state;
	store_now(a);
	usleep(2000);
	store_now(b);
	assert_int_equal(strlen(a), 24);
	assert_int_equal(a[4], '-');
	assert_int_equal(a[10], 'T');
	assert_int_equal(a[19], '.');
	assert_int_equal(a[23], 'Z');
	assert_true(strcmp(a, b) < 0);
}

/* ---- version 2 of the HTTP API: pages, run views, edits, deletion ---- */

/* Projects P1..Pn with their created_at set: two share a millisecond, so
 * that the id breaks the tie. */
static void
import_dated(struct store *st, int n)
{
	for (int i = 1; i <= n; i++) {
		char text[256];

		snprintf(text, sizeof(text), "{\"id\": \"aaaaaaaa-0000-4000-8000-%012d\","
			 " \"storyboards\": [{\"image_prompt\": \"p%d\"}]}", i, i);
		import(st, text);
	}
	assert_int_equal(sqlite3_exec(st->db, "UPDATE projects SET created_at ="
				      " '2026-01-0' || (CASE WHEN substr(id, -1) = '4' THEN 3"
				      " ELSE substr(id, -1) END) || 'T00:00:00.000Z'",
				      NULL, NULL, NULL), SQLITE_OK);
}

static const char *
page_ids(json_t *page)
{
	static char out[256];
	size_t i, n = 0;
	json_t *p;

	out[0] = '\0';
	json_array_foreach(page, i, p)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%c", n > 0 ? "," : "",
				      json_string_value(json_object_get(p, "id"))[35]);
	return out;
}

static void
test_project_page(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->st = open_rw(fx);
	static const char *const bad_cursors[] = { "zz", "00", "", NULL };
	char next[STORE_CURSOR_MAX], next2[STORE_CURSOR_MAX];
	bool bad;
	json_t *page;

	import_dated(st, 5);	/* created: 1, 2, 3, 3 (id 4), 5 */
	page = store_query_project_page(st, NULL, 2, next, &bad);
	assert_false(bad);
	assert_string_equal(page_ids(page), "5,4");
	assert_non_null(json_object_get(json_array_get(page, 0), "counts"));
	json_decref(page);
	page = store_query_project_page(st, next, 2, next2, &bad);
	assert_string_equal(page_ids(page), "3,2");
	json_decref(page);
	/* The cursor stays good after its project is gone. */
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_project_delete(st, "aaaaaaaa-0000-4000-8000-000000000002"), 0);
	assert_int_equal(store_commit(st), 0);
	page = store_query_project_page(st, next2, 2, next, &bad);
	assert_string_equal(page_ids(page), "1");
	assert_string_equal(next, "");	/* the last page */
	json_decref(page);
	/* Bad cursors: not hex, wrong length, hex of something else. */
	for (const char *const *c = bad_cursors; *c != NULL; c++) {
		assert_null(store_query_project_page(st, *c, 2, next, &bad));
		assert_true(bad);
	}
	memset(next2, 'a', 120);
	next2[120] = '\0';
	assert_null(store_query_project_page(st, next2, 2, next, &bad));
	assert_true(bad);
}

static void
test_run_views(void **state)
{
	struct fixture *fx = *state;
	char prov[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	json_t *ids = json_pack("[s]", SB2), *v, *runs;
	char next[STORE_CURSOR_MAX], cursor[STORE_CURSOR_MAX];
	bool bad;

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_run_done_seq(st, RUN1), 0);
	assert_int_equal(store_event_append(st, RUN1, 1, "info", "{}"), 0);
	assert_int_equal(store_event_append(st, RUN1, 2, "done", "{}"), 0);
	assert_int_equal(store_run_finish(st, RUN1, "completed", 3, 0), 0);
	assert_int_equal(store_run_create(st, RUN2, P1, ids, true, 1), 0);
	assert_int_equal(store_event_append(st, RUN2, 1, "info", "{}"), 0);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(store_run_done_seq(st, RUN1), 2);
	assert_int_equal(store_run_done_seq(st, RUN2), 0);
	assert_int_equal(store_run_done_seq(st, "cccccccc-0000-4000-8000-000000000009"), 0);

	v = store_query_run_view(st, RUN1);
	assert_string_equal(json_string_value(json_object_get(v, "status")), "completed");
	assert_int_equal(json_integer_value(json_object_get(v, "success_count")), 3);
	assert_int_equal(json_integer_value(json_object_get(v, "last_seq")), 2);
	assert_true(json_is_false(json_object_get(v, "no_cache")));
	assert_true(json_is_null(json_object_get(v, "storyboard_ids")));
	json_decref(v);
	assert_null(store_query_run_view(st, "cccccccc-0000-4000-8000-000000000009"));
	/* Newest first (RUN2 started later, or in the same ms with a later id). */
	runs = store_page_runs(st, P1, NULL, 10, next, &bad);
	assert_string_equal(next, "");
	assert_int_equal(json_array_size(runs), 2);
	v = json_array_get(runs, 0);
	assert_string_equal(json_string_value(json_object_get(v, "id")), RUN2);
	assert_true(json_is_true(json_object_get(v, "no_cache")));
	assert_true(json_equal(json_object_get(v, "storyboard_ids"), ids));
	json_decref(runs);
	json_decref(ids);
	/* A page at a time: the cursor of the first page leads to the second;
	 * a cursor of another list, or none of ours, is refused. */
	runs = store_page_runs(st, P1, NULL, 1, next, &bad);
	assert_int_equal(json_array_size(runs), 1);
	assert_string_not_equal(next, "");
	json_decref(runs);
	snprintf(cursor, sizeof(cursor), "%s", next);
	runs = store_page_runs(st, P1, cursor, 1, next, &bad);
	assert_false(bad);
	assert_int_equal(json_array_size(runs), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(runs, 0), "id")), RUN1);
	assert_string_equal(next, "");
	json_decref(runs);
	assert_null(store_page_events(st, RUN1, cursor, 1, next, &bad));
	assert_true(bad);
	assert_null(store_page_runs(st, P1, "7a7a", 1, next, &bad));
	assert_true(bad);
	v = store_page_events(st, RUN1, NULL, 1, next, &bad);
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);
	v = store_page_events(st, RUN1, next, 5, next, &bad);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(v, 0), "seq")), 2);
	assert_string_equal(next, "");
	json_decref(v);
}

static void
test_storyboard_update(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->st = open_rw(fx);
	json_t *sb;

	import(st, project1);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_storyboard_update(st, SB2, "a wolf", NULL, NULL), 0);
	assert_int_equal(store_commit(st), 0);
	sb = store_query_storyboard(st, P1, SB2);
	assert_string_equal(json_string_value(json_object_get(sb, "image_prompt")), "a wolf");
	assert_string_equal(json_string_value(json_object_get(sb, "negative_prompt")), "blur");
	assert_string_equal(json_string_value(json_object_get(json_object_get(sb, "params"),
							      "ratio")), "9:16");
	json_decref(sb);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_storyboard_update(st, SB2, NULL, "", "{}"), 0);
	assert_int_equal(store_commit(st), 0);
	sb = store_query_storyboard(st, P1, SB2);
	assert_string_equal(json_string_value(json_object_get(sb, "image_prompt")), "a wolf");
	assert_string_equal(json_string_value(json_object_get(sb, "negative_prompt")), "");
	assert_int_equal(json_object_size(json_object_get(sb, "params")), 0);
	json_decref(sb);
	/* A storyboard of another project is not found under this one. */
	assert_null(store_query_storyboard(st, P2, SB2));
}

/* Files only the project uses are named; one the cache shares is kept. */
static void
test_project_files_and_delete(void **state)
{
	struct fixture *fx = *state;
	char prov[37];
	struct store *st = fx->st = open_with_run(fx, prov);
	static const char *const owned[] = { "storyboards", "runs", "run_events",
					     "project_stages", NULL };
	json_t *files;

	import(st, project2);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_image_insert(st, IMG1, SB1, RUN1, prov, "{}", KEY_A), 0);
	assert_int_equal(store_image_complete(st, IMG1, &meta_a, false), 0);
	assert_int_equal(store_image_insert(st, IMG2, SB2, RUN1, prov, "{}", KEY_B), 0);
	assert_int_equal(store_image_complete(st, IMG2, &meta_b, false), 0);
	assert_int_equal(store_image_insert(st, IMG3, SB3, RUN1, prov, "{}", KEY_B), 0);
	assert_int_equal(store_image_fail(st, IMG3, "boom"), 0);
	/* P2's storyboard was served meta_b's file from the cache. */
	assert_int_equal(store_run_create(st, RUN2, P2, NULL, false, 1), 0);
	assert_int_equal(store_image_insert(st, IMG4, SB4, RUN2, prov, "{}", KEY_B), 0);
	assert_int_equal(store_image_complete(st, IMG4, &meta_b, true), 0);
	assert_int_equal(store_event_append(st, RUN1, 1, "info", "{}"), 0);
	assert_int_equal(store_commit(st), 0);

	files = store_project_files(st, P1);
	assert_int_equal(json_array_size(files), 2);
	for (size_t i = 0; i < json_array_size(files); i++) {
		const char *f = json_string_value(json_array_get(files, i));

		assert_true(strcmp(f, meta_a.file_path) == 0 || strcmp(f, meta_a.thumbnail_path) == 0);
	}
	json_decref(files);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_project_delete(st, P1), 0);
	assert_int_equal(store_commit(st), 0);
	assert_false(store_project_exists(st, P1));
	for (const char *const *t = owned; *t != NULL; t++)
		assert_int_equal(qi(st, "SELECT count(*) FROM %s WHERE %s", *t,
				    strcmp(*t, "run_events") == 0 ? "run_id = '" RUN1 "'"
								  : "project_id = '" P1 "'"), 0);
	assert_int_equal(qi(st, "SELECT count(*) FROM generated_images"), 1);	/* P2's */
	/* Now P2 alone uses meta_b's file. */
	files = store_project_files(st, P2);
	assert_int_equal(json_array_size(files), 1);
	assert_string_equal(json_string_value(json_array_get(files, 0)), meta_b.file_path);
	json_decref(files);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_schema),
		T(test_reopen),
		T(test_newer_version),
		T(test_open_refused),
		T(test_readonly_writes_fail),
		T(test_import),
		T(test_stage_set),
		T(test_providers_sync),
		T(test_image_lifecycle),
		T(test_cache_lookup),
		T(test_variants),
		T(test_runs_and_events),
		T(test_webhook_outbox),
		T(test_queries),
		T(test_tasks),
		T(test_rollback),
		T(test_project_page),
		T(test_run_views),
		T(test_storyboard_update),
		T(test_project_files_and_delete),
		cmocka_unit_test(test_now),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
