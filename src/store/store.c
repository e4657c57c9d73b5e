/* store: opening, migrations and transactions, on either engine (see
 * store_internal.h).  The schema is in store_schema.c, the statement cache
 * in store_stmt.c; the tables themselves are read and written in
 * store_project.c, store_run.c, store_query.c and the others. */
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

#include "config.h"
#include "log.h"
#include "owner.h"

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
	const char *msg;

	if (st->backend == STORE_PG)
		return;		/* the engine keeps its errors (store_pg.c) */
	msg = sqlite3_errmsg(st->db);
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

	if (st->backend == STORE_PG)
		return pg_exec(st, sql);
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
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

	if (v < 0 || v > store_nmigrations) {
		snprintf(err, errlen, "database schema version %d is newer than this program (%d)",
			 v, store_nmigrations);
		return -1;
	}
	for (; v < store_nmigrations; v++) {
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		if (store_begin(st) < 0 || store_exec(st, store_lite_migrations[v]) < 0 ||
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

		if (v > 0 && v < store_nmigrations) {
			snprintf(err, errlen, "%s: database schema version %d is older than this "
				 "program's (%d): `import`, `run` or `serve` migrate it", path, v,
				 store_nmigrations);
			goto fail;
		}
		if (v != store_nmigrations) {
			snprintf(err, errlen, "%s: not a t2istage database of schema version %d",
				 path, store_nmigrations);
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
	for (int i = 0; i < st->nstmts; i++) {
		sqlite3_finalize(st->stmts[i].lite);
		pg_stmt_free(st->stmts[i].pg);
	}
	sqlite3_close(st->db);
	pg_close(st->pg);
	free(st);
}

int
store_begin(struct store *st)
{
	if (st->in_tx)
		return 0;
	/* PostgreSQL locks rows, not the database: a plain BEGIN. */
	if (store_exec(st, st->backend == STORE_PG ? "BEGIN" : "BEGIN IMMEDIATE") < 0)
		return -1;
	st->in_tx = true;
	st->tx_serial++;
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
		st->failed_commits++;
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
	if (st->backend == STORE_PG || !sqlite3_get_autocommit(st->db))
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
	if (st->backend == STORE_PG)
		return st->errbuf;
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

/* --- PostgreSQL --- */

/* schema_version's one row, 0 when it has none; -1 on error. */
static int
pg_schema_version(struct store *st)
{
	static const char sql[] = "SELECT coalesce(max(version), 0) FROM schema_version";
	struct stmt *s = store_stmt(st, sql);
	int v = -1;

	if (s != NULL && stmt_step(s) == STMT_ROW)
		v = stmt_column_int(s, 0);
	if (s != NULL)
		stmt_reset(s);
	return v;
}

/* Every migration due, in one transaction (PostgreSQL's DDL is
 * transactional) under an advisory lock, so that instances starting at
 * once on a new database migrate it once. */
static int
pg_migrate(struct store *st, const char *where, char *err, size_t errlen)
{
	char bump[96];
	int v;

	if (store_begin(st) < 0 ||
	    store_exec(st, "SELECT pg_advisory_xact_lock(7411201401)") < 0 ||
	    store_exec(st, "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)") < 0 ||
	    (v = pg_schema_version(st)) < 0)
		goto fail;
	if (v > store_nmigrations) {
		store_rollback(st);
		snprintf(err, errlen, "database (%s): schema version %d is newer than this "
			 "program's (%d): run the newer t2istage, or a database of its own", where, v,
			 store_nmigrations);
		return -1;
	}
	for (int from = v; from < store_nmigrations; from++)
		if (store_exec(st, store_pg_migrations[from]) < 0)
			goto fail;
	snprintf(bump, sizeof(bump), "DELETE FROM schema_version; INSERT INTO schema_version"
		 " VALUES (%d)", store_nmigrations);
	if (v < store_nmigrations && store_exec(st, bump) < 0)
		goto fail;
	if (store_commit(st) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "database (%s): migration to schema version %d failed: %s", where,
		 store_nmigrations, store_errmsg(st));
	store_rollback(st);
	return -1;
}

static int
pg_check_version(struct store *st, const char *where, char *err, size_t errlen)
{
	int v = pg_schema_version(st);

	if (v == store_nmigrations)
		return 0;
	if (v < 0)
		snprintf(err, errlen, "database (%s): not a t2istage database: %s", where,
			 store_errmsg(st));
	else if (v > store_nmigrations)
		snprintf(err, errlen, "database (%s): schema version %d is newer than this "
			 "program's (%d)", where, v, store_nmigrations);
	else
		snprintf(err, errlen, "database (%s): schema version %d is older than this "
			 "program's (%d): `import`, `run` or `serve` migrate it", where, v,
			 store_nmigrations);
	return -1;
}

static struct store *
store_open_pg(const struct config *cfg, bool readonly, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	char msg[512];

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->backend = STORE_PG;
	st->readonly = readonly;
	if ((st->pg = pg_open(cfg->database, cfg->database_password, cfg->database_timeout, err,
			      errlen)) == NULL)
		goto fail;
	if (pg_connect_first(st, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "database (%s): cannot connect: %s", cfg->database_display,
			 msg);
		goto fail;
	}
	if (readonly ? pg_check_version(st, cfg->database_display, err, errlen) < 0
		     : pg_migrate(st, cfg->database_display, err, errlen) < 0)
		goto fail;
	return st;
fail:
	store_close(st);
	return NULL;
}

struct store *
store_open_config(const struct config *cfg, bool readonly, char *err, size_t errlen)
{
	if (cfg->database_pg)
		return store_open_pg(cfg, readonly, err, errlen);
	return store_open(cfg->database, readonly, err, errlen);
}

bool
store_is_pg(const struct store *st)
{
	return st->backend == STORE_PG;
}

bool
store_connected(struct store *st)
{
	if (st->backend != STORE_PG)
		return true;
	return !pg_lost(st->pg) || pg_reconnect(st) == 0;
}

void
store_stats(const struct store *st, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (st->backend == STORE_PG)
		pg_stats(st->pg, out);
	else
		out->connected = true;
}

uint64_t
store_failed_commits(const struct store *st)
{
	return st->failed_commits;
}

uint64_t
store_tx_serial(const struct store *st)
{
	return st->in_tx ? st->tx_serial : 0;
}
