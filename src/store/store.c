/* store: opening, migrations, transactions and the prepared-statement cache.
 * The tables themselves are read and written in store_project.c,
 * store_run.c and store_query.c. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "owner.h"

/* Migration N takes user_version from N to N+1; append only. */
static const char *const migrations[] = {
	/* 0 -> 1: the original system's models, plus runs and run events. */
	"CREATE TABLE projects ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',"
	"  image_providers TEXT NOT NULL DEFAULT '[]', params TEXT NOT NULL DEFAULT '{}',"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
	"CREATE TABLE project_stages ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  stage_type TEXT NOT NULL, status TEXT NOT NULL,"
	"  started_at TEXT, completed_at TEXT, error TEXT,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
	"  UNIQUE (project_id, stage_type));"
	"CREATE TABLE storyboards ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  position INTEGER NOT NULL, image_prompt TEXT NOT NULL,"
	"  negative_prompt TEXT NOT NULL DEFAULT '', params TEXT NOT NULL DEFAULT '{}',"
	"  created_at TEXT NOT NULL, UNIQUE (project_id, position));"
	"CREATE TABLE model_providers ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	"  provider_type TEXT NOT NULL DEFAULT 'text2image', plugin TEXT NOT NULL,"
	"  model_name TEXT NOT NULL DEFAULT '', api_url TEXT NOT NULL DEFAULT '',"
	"  is_default INTEGER NOT NULL DEFAULT 0,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
	"CREATE TABLE runs ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL, storyboard_ids TEXT, no_cache INTEGER NOT NULL DEFAULT 0,"
	"  total INTEGER NOT NULL, success_count INTEGER NOT NULL DEFAULT 0,"
	"  failed_count INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0,"
	"  pid INTEGER, started_at TEXT NOT NULL, finished_at TEXT);"
	"CREATE INDEX runs_project ON runs (project_id, started_at);"
	"CREATE TABLE generated_images ("
	"  id TEXT PRIMARY KEY,"
	"  storyboard_id TEXT NOT NULL REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  run_id TEXT REFERENCES runs(id) ON DELETE SET NULL,"
	"  image_url TEXT, thumbnail_url TEXT, generation_params TEXT NOT NULL DEFAULT '{}',"
	"  model_provider_id TEXT REFERENCES model_providers(id),"
	"  status TEXT NOT NULL CHECK (status IN"
	"    ('pending', 'processing', 'completed', 'failed')),"
	"  width INTEGER, height INTEGER, file_size INTEGER, file_path TEXT,"
	"  thumbnail_path TEXT, sha256 TEXT, mime TEXT, error TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0, cached INTEGER NOT NULL DEFAULT 0,"
	"  cache_key TEXT, is_primary INTEGER NOT NULL DEFAULT 1,"
	"  primary_id TEXT REFERENCES generated_images(id) ON DELETE CASCADE,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
	"CREATE INDEX generated_images_storyboard ON generated_images (storyboard_id, status);"
	"CREATE INDEX generated_images_run ON generated_images (run_id);"
	"CREATE INDEX generated_images_cache ON generated_images (cache_key)"
	"  WHERE status = 'completed' AND is_primary = 1;"
	"CREATE TABLE run_events ("
	"  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,"
	"  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;",
	/* 1 -> 2: the latest image of a storyboard, read on every GET of a
	 * project, without scanning the storyboard's whole history. */
	"CREATE INDEX generated_images_latest ON generated_images"
	"  (storyboard_id, is_primary, created_at);",
	/* 2 -> 3: the provider task a plugin submitted and checkpointed (paid
	 * for), per storyboard, provider and generation parameters, so that a
	 * later attempt polls it instead of paying again (store_task.c). */
	"CREATE TABLE provider_tasks ("
	"  storyboard_id TEXT NOT NULL REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  model_provider_id TEXT NOT NULL REFERENCES model_providers(id),"
	"  cache_key TEXT NOT NULL,"
	"  image_id TEXT REFERENCES generated_images(id) ON DELETE SET NULL,"
	"  state TEXT NOT NULL CHECK (json_valid(state) AND json_type(state) = 'object'),"
	"  checkpoints INTEGER NOT NULL DEFAULT 1,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
	"  PRIMARY KEY (storyboard_id, model_provider_id, cache_key)) WITHOUT ROWID;"
	"CREATE INDEX provider_tasks_image ON provider_tasks (image_id);",
	/* 3 -> 4: the webhook outbox, one row per event and endpoint, written
	 * in the transaction that records the event (store_webhook.c).  No
	 * secret is stored: rows are signed when they are sent. */
	"CREATE TABLE webhook_outbox ("
	"  webhook_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL,"
	"  run_id TEXT NOT NULL, seq INTEGER NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending', 'delivered', 'gave_up')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, queued_ms INTEGER NOT NULL,"
	"  next_attempt_ms INTEGER NOT NULL, last_attempt_ms INTEGER,"
	"  last_status INTEGER, last_error TEXT, delivered_ms INTEGER,"
	"  UNIQUE (run_id, seq, endpoint),"
	"  FOREIGN KEY (run_id, seq) REFERENCES run_events (run_id, seq) ON DELETE CASCADE);"
	"CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_ms)"
	"  WHERE status = 'pending';",
	/* 4 -> 5: GET /v1/projects pages newest first by (created_at, rowid). */
	"CREATE INDEX projects_created"
	"  ON projects (created_at);",
	/* 5 -> 6: each storyboard's current image status (its latest completed
	 * primary image's, else its latest primary image's; NULL: none yet),
	 * and a project's storyboards counted by it, both kept by triggers on
	 * every write (whichever process makes it).  A project's counts then
	 * cost one indexed read, not a lookup per storyboard: 65 ms for
	 * 10,000 storyboards, on every view of the project. */
	"CREATE TABLE storyboard_status ("
	"  storyboard_id TEXT PRIMARY KEY REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  project_id TEXT NOT NULL, status TEXT) WITHOUT ROWID;"
	"CREATE TABLE project_counts ("
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL, n INTEGER NOT NULL,"
	"  PRIMARY KEY (project_id, status)) WITHOUT ROWID;"
	"INSERT INTO storyboard_status (storyboard_id, project_id, status)"
	"  SELECT s.id, s.project_id, (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = s.id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  FROM storyboards s;"
	"INSERT INTO project_counts (project_id, status, n)"
	"  SELECT project_id, coalesce(status, 'not_started'), count(*)"
	"  FROM storyboard_status GROUP BY 1, 2;"
	"CREATE TRIGGER storyboards_status_insert AFTER INSERT ON storyboards BEGIN"
	"  INSERT INTO storyboard_status (storyboard_id, project_id, status)"
	"  VALUES (NEW.id, NEW.project_id, NULL); END;"
	"CREATE TRIGGER storyboard_status_insert AFTER INSERT ON storyboard_status BEGIN"
	"  INSERT INTO project_counts (project_id, status, n)"
	"  VALUES (NEW.project_id, coalesce(NEW.status, 'not_started'), 1)"
	"  ON CONFLICT (project_id, status) DO UPDATE SET n = n + 1; END;"
	"CREATE TRIGGER storyboard_status_delete AFTER DELETE ON storyboard_status BEGIN"
	"  UPDATE project_counts SET n = n - 1 WHERE project_id = OLD.project_id"
	"  AND status = coalesce(OLD.status, 'not_started'); END;"
	"CREATE TRIGGER storyboard_status_update AFTER UPDATE OF status ON storyboard_status"
	"  WHEN OLD.status IS NOT NEW.status BEGIN"
	"  UPDATE project_counts SET n = n - 1 WHERE project_id = OLD.project_id"
	"  AND status = coalesce(OLD.status, 'not_started');"
	"  INSERT INTO project_counts (project_id, status, n)"
	"  VALUES (NEW.project_id, coalesce(NEW.status, 'not_started'), 1)"
	"  ON CONFLICT (project_id, status) DO UPDATE SET n = n + 1; END;"
	"CREATE TRIGGER images_status_insert AFTER INSERT ON generated_images"
	"  WHEN NEW.is_primary = 1 BEGIN"
	"  UPDATE storyboard_status SET status = (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = NEW.storyboard_id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  WHERE storyboard_id = NEW.storyboard_id; END;"
	"CREATE TRIGGER images_status_update"
	"  AFTER UPDATE OF status, is_primary, created_at ON generated_images BEGIN"
	"  UPDATE storyboard_status SET status = (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = NEW.storyboard_id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  WHERE storyboard_id = NEW.storyboard_id; END;"
	"CREATE TRIGGER images_status_delete AFTER DELETE ON generated_images"
	"  WHEN OLD.is_primary = 1 BEGIN"
	"  UPDATE storyboard_status SET status = (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = OLD.storyboard_id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  WHERE storyboard_id = OLD.storyboard_id; END;",
	/* 6 -> 7: the spend ledger, one row per request handed to a provider,
	 * reserved before it is sent and settled on the answer
	 * (store_spend.c), and the runs queued until the service has room
	 * for them (status 'queued'), taken oldest first.  A project's
	 * deletion keeps its spend: a day's budget counts it. */
	"CREATE TABLE spend_ledger ("
	"  id INTEGER PRIMARY KEY, provider TEXT NOT NULL,"
	"  run_id TEXT REFERENCES runs(id) ON DELETE SET NULL, image_id TEXT,"
	"  day TEXT NOT NULL, cost REAL NOT NULL CHECK (cost >= 0),"
	"  outcome TEXT NOT NULL DEFAULT 'reserved' CHECK (outcome IN"
	"    ('reserved', 'completed', 'failed', 'refused', 'local', 'unknown')),"
	"  error_class TEXT, created_at TEXT NOT NULL, settled_at TEXT);"
	"CREATE INDEX spend_ledger_day ON spend_ledger (day, provider);"
	"CREATE INDEX spend_ledger_run ON spend_ledger (run_id, provider);"
	"CREATE INDEX runs_queued ON runs (started_at) WHERE status = 'queued';",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

/* The names of SQLite's primary result codes that an admin meets: the
 * message alone ("database or disk is full") does not say which it was. */
static const char *
code_name(int rc)
{
	static const struct {
		int rc;
		const char *name;
	} names[] = {
		{ SQLITE_ERROR, "SQLITE_ERROR" },	{ SQLITE_PERM, "SQLITE_PERM" },
		{ SQLITE_BUSY, "SQLITE_BUSY" },		{ SQLITE_LOCKED, "SQLITE_LOCKED" },
		{ SQLITE_NOMEM, "SQLITE_NOMEM" },	{ SQLITE_READONLY, "SQLITE_READONLY" },
		{ SQLITE_IOERR, "SQLITE_IOERR" },	{ SQLITE_CORRUPT, "SQLITE_CORRUPT" },
		{ SQLITE_FULL, "SQLITE_FULL" },		{ SQLITE_CANTOPEN, "SQLITE_CANTOPEN" },
		{ SQLITE_PROTOCOL, "SQLITE_PROTOCOL" }, { SQLITE_CONSTRAINT, "SQLITE_CONSTRAINT" },
		{ SQLITE_NOTADB, "SQLITE_NOTADB" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].rc == (rc & 0xff))
			return names[i].name;
	return "SQLITE_?";
}

void
store_failed(struct store *st, int rc)
{
	const char *msg = sqlite3_errmsg(st->db);

	/* The first cause of a transaction's failure is kept: what follows
	 * (a ROLLBACK with no transaction left) says nothing about it. */
	if (st->err[0] == '\0' || (st->in_tx && !st->lost))
		snprintf(st->err, sizeof(st->err), "%s (%s)", msg, code_name(rc));
	if (st->in_tx && sqlite3_get_autocommit(st->db)) {
		st->in_tx = false;
		st->lost = true;
	}
}

static int
store_exec(struct store *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_errx("sqlite: %s", msg != NULL ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		store_failed(st, sqlite3_extended_errcode(st->db));
		return -1;
	}
	return 0;
}

static int
store_user_version(struct store *st)
{
	sqlite3_stmt *s;
	int v = -1;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* Each migration runs in its own transaction together with the bump of
 * user_version, so a crash leaves the schema at a whole version. */
static int
store_migrate(struct store *st, char *err, size_t errlen)
{
	int v = store_user_version(st);
	char bump[64];

	if (v < 0 || v > NMIGRATIONS) {
		snprintf(err, errlen, "database schema version %d is newer than this program (%d)",
			 v, NMIGRATIONS);
		return -1;
	}
	for (; v < NMIGRATIONS; v++) {
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		if (store_begin(st) < 0 || store_exec(st, migrations[v]) < 0 ||
		    store_exec(st, bump) < 0 || store_commit(st) < 0) {
			store_rollback(st);
			snprintf(err, errlen, "migration %d -> %d failed: %s", v, v + 1,
				 sqlite3_errmsg(st->db));
			return -1;
		}
	}
	return 0;
}

/* The database's directory, and the file itself when it is new: made with
 * the owner of the directory they are in (see owner.h), so that a database
 * an admin created as root stays the service's.  SQLite does the same for
 * its -wal and -shm files. */
static int
store_prepare_file(const char *path, char *err, size_t errlen)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (copy == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (owner_mkdirs(dirname(copy), err, errlen) == 0) {
		fd = owner_create(path, O_RDWR, 0640, err, errlen);
		if (fd >= 0)
			close(fd);
		rc = fd >= 0 || errno == EEXIST ? 0 : -1;
	}
	free(copy);
	return rc;
}

struct store *
store_open(const char *path, bool readonly, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

	if (st == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	st->readonly = readonly;
	if (!readonly && store_prepare_file(path, err, errlen) < 0)
		goto fail;
	if (sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
			 st->db != NULL ? sqlite3_errmsg(st->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, 10000);
	sqlite3_extended_result_codes(st->db, 1);
	/* WAL: readers (status, the HTTP API) never block the writer.
	 * synchronous=NORMAL: in WAL mode a commit is durable against process
	 * crashes; only an OS crash can lose the last transactions. */
	if (store_exec(st, "PRAGMA foreign_keys = ON") < 0)
		goto sqlfail;
	/* A page of a big project's storyboards reads hundreds of b-tree pages:
	 * with SQLite's default 2 MiB cache each is a pread() from the kernel,
	 * a third of the page's time (perf, 10,000 storyboards).  Up to 32 MiB
	 * is kept, grown only as the database is read. */
	if (store_exec(st, "PRAGMA cache_size = -32768") < 0)
		goto sqlfail;
	if (!readonly && (store_exec(st, "PRAGMA journal_mode = WAL") < 0 ||
			  store_exec(st, "PRAGMA synchronous = NORMAL") < 0))
		goto sqlfail;
	if (readonly) {
		int v = store_user_version(st);

		if (v > 0 && v < NMIGRATIONS) {
			snprintf(err, errlen, "%s: database schema version %d is older than this "
				 "program's (%d): `import`, `run` or `serve` migrate it", path, v,
				 NMIGRATIONS);
			goto fail;
		}
		if (v != NMIGRATIONS) {
			snprintf(err, errlen, "%s: not a t2istage database of schema version %d",
				 path, NMIGRATIONS);
			goto fail;
		}
	} else if (store_migrate(st, err, errlen) < 0) {
		goto fail;
	}
	return st;
sqlfail:
	snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
fail:
	store_close(st);
	return NULL;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < st->nstmts; i++)
		sqlite3_finalize(st->stmts[i].stmt);
	sqlite3_close(st->db);
	free(st);
}

int
store_begin(struct store *st)
{
	if (st->in_tx)
		return 0;
	if (store_exec(st, "BEGIN IMMEDIATE") < 0)
		return -1;
	st->in_tx = true;
	if (!st->lost)
		st->err[0] = '\0';	/* the cause of lost writes waits for store_lost() */
	return 0;
}

int
store_commit(struct store *st)
{
	if (!st->in_tx)
		return 0;
	if (store_exec(st, "COMMIT") < 0) {
		/* A failed COMMIT may leave the transaction open (SQLITE_BUSY)
		 * or rolled back already (SQLITE_FULL, SQLITE_IOERR): only the
		 * first is ours to roll back. */
		st->lost = true;
		store_rollback(st);
		return -1;
	}
	st->in_tx = false;
	return 0;
}

void
store_rollback(struct store *st)
{
	if (!st->in_tx)
		return;
	if (!sqlite3_get_autocommit(st->db))
		(void)store_exec(st, "ROLLBACK");
	st->in_tx = false;
}

const char *
store_lost(struct store *st)
{
	if (!st->lost)
		return NULL;
	st->lost = false;
	return store_errmsg(st);
}

/* Savepoints nest inside the loop's transaction: an HTTP request that is
 * refused undoes its own writes and nothing else. */
int
store_savepoint(struct store *st)
{
	if (!st->in_tx && store_begin(st) < 0)
		return -1;
	return store_exec(st, "SAVEPOINT request");
}

int
store_savepoint_release(struct store *st)
{
	return store_exec(st, "RELEASE request");
}

void
store_savepoint_rollback(struct store *st)
{
	(void)store_exec(st, "ROLLBACK TO request");
	(void)store_exec(st, "RELEASE request");
}

bool
store_in_tx(const struct store *st)
{
	return st->in_tx;
}

const char *
store_errmsg(struct store *st)
{
	return st->err[0] != '\0' ? st->err : sqlite3_errmsg(st->db);
}

void
store_now(char out[32])
{
	struct timespec ts;
	struct tm tm;
	char base[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

sqlite3_stmt *
store_stmt(struct store *st, const char *sql)
{
	sqlite3_stmt *s;

	for (int i = 0; i < st->nstmts; i++) {
		if (st->stmts[i].sql == sql) {
			s = st->stmts[i].stmt;
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return s;
		}
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		log_errx("sqlite prepare: %s", sqlite3_errmsg(st->db));
		store_failed(st, sqlite3_extended_errcode(st->db));
		return NULL;
	}
	if (st->nstmts < STORE_STMT_MAX) {
		st->stmts[st->nstmts].sql = sql;
		st->stmts[st->nstmts].stmt = s;
		st->nstmts++;
	} else {
		fatalx("store: statement cache full; raise STORE_STMT_MAX");
	}
	return s;
}

int
store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

int
store_exec_stmt(struct store *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE) {
		log_errx("sqlite: %s", sqlite3_errmsg(st->db));
		store_failed(st, rc);
		sqlite3_reset(s);
		/* Writes after an automatic rollback would each commit on their
		 * own; a new transaction keeps them together (and lost with it
		 * if the disk is still full). */
		if (!st->in_tx && st->lost)
			(void)store_begin(st);
		return -1;
	}
	sqlite3_reset(s);
	return 0;
}

json_t *
store_column_json(sqlite3_stmt *s, int i)
{
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(s, i));
	case SQLITE_FLOAT:
		return json_real(sqlite3_column_double(s, i));
	case SQLITE_TEXT:
		return json_stringn((const char *)sqlite3_column_text(s, i),
				    (size_t)sqlite3_column_bytes(s, i));
	default:
		return json_null();
	}
}

const char *
store_column_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t != NULL ? (const char *)t : "";
}
