/* store_stmt: the prepared-statement cache and the engine calls, dispatched
 * to SQLite or to PostgreSQL (see store_internal.h).  Values are bound as
 * text for PostgreSQL, which reads them as the type the statement's
 * context gives the parameter. */
#include "store_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static struct stmt *
prepare(struct store *st, const char *key, const char *sql)
{
	struct stmt *s;

	if (st->nstmts >= STORE_STMT_MAX)
		fatalx("store: statement cache full; raise STORE_STMT_MAX");
	s = &st->stmts[st->nstmts];
	memset(s, 0, sizeof(*s));
	s->st = st;
	s->sql = key;
	if (st->backend == STORE_PG) {
		if ((s->pg = pg_prepare(st, sql)) == NULL)
			return NULL;
	} else if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->lite,
				      NULL) != SQLITE_OK) {
		log_errx("sqlite prepare: %s", sqlite3_errmsg(st->db));
		store_failed(st, sqlite3_extended_errcode(st->db));
		return NULL;
	}
	st->nstmts++;
	return s;
}

struct stmt *
store_stmt2(struct store *st, const char *sql, const char *pg_sql)
{
	for (int i = 0; i < st->nstmts; i++) {
		struct stmt *s = &st->stmts[i];

		if (s->sql != sql)
			continue;
		stmt_reset(s);
		if (s->lite != NULL)
			sqlite3_clear_bindings(s->lite);
		return s;
	}
	return prepare(st, sql, st->backend == STORE_PG && pg_sql != NULL ? pg_sql : sql);
}

struct stmt *
store_stmt(struct store *st, const char *sql)
{
	return store_stmt2(st, sql, NULL);
}

int
store_bind_text(struct stmt *s, int i, const char *v)
{
	if (s->pg != NULL)
		return pg_bind(s->pg, i, v, v != NULL ? strlen(v) : 0);
	if (v == NULL)
		return sqlite3_bind_null(s->lite, i);
	return sqlite3_bind_text(s->lite, i, v, -1, SQLITE_TRANSIENT);
}

int
stmt_bind_int64(struct stmt *s, int i, int64_t v)
{
	char text[24];
	int n;

	if (s->lite != NULL)
		return sqlite3_bind_int64(s->lite, i, (sqlite3_int64)v);
	n = snprintf(text, sizeof(text), "%" PRId64, v);
	return pg_bind(s->pg, i, text, (size_t)n);
}

int
stmt_bind_int(struct stmt *s, int i, int v)
{
	return stmt_bind_int64(s, i, v);
}

int
stmt_bind_double(struct stmt *s, int i, double v)
{
	char text[40];
	int n;

	if (s->lite != NULL)
		return sqlite3_bind_double(s->lite, i, v);
	n = snprintf(text, sizeof(text), "%.17g", v);
	return pg_bind(s->pg, i, text, (size_t)n);
}

int
stmt_bind_null(struct stmt *s, int i)
{
	if (s->lite != NULL)
		return sqlite3_bind_null(s->lite, i);
	return pg_bind(s->pg, i, NULL, 0);
}

int
stmt_step(struct stmt *s)
{
	s->st->last = s;
	if (s->lite != NULL)
		return sqlite3_step(s->lite);
	return pg_step(s->st, s->pg);
}

void
stmt_reset(struct stmt *s)
{
	if (s->lite != NULL)
		sqlite3_reset(s->lite);
	else if (s->pg != NULL)
		pg_reset(s->pg);
}

int
stmt_column_count(struct stmt *s)
{
	return s->lite != NULL ? sqlite3_column_count(s->lite) : pg_column_count(s->pg);
}

const char *
stmt_column_name(struct stmt *s, int i)
{
	return s->lite != NULL ? sqlite3_column_name(s->lite, i) : pg_column_name(s->pg, i);
}

int
stmt_column_type(struct stmt *s, int i)
{
	return s->lite != NULL ? sqlite3_column_type(s->lite, i) : pg_column_type(s->pg, i);
}

const char *
store_column_text(struct stmt *s, int i)
{
	const unsigned char *t;

	if (s->pg != NULL)
		return pg_column_text(s->pg, i);
	t = sqlite3_column_text(s->lite, i);
	return t != NULL ? (const char *)t : "";
}

int64_t
stmt_column_int64(struct stmt *s, int i)
{
	if (s->lite != NULL)
		return sqlite3_column_int64(s->lite, i);
	return strtoll(pg_column_text(s->pg, i), NULL, 10);
}

int
stmt_column_int(struct stmt *s, int i)
{
	return (int)stmt_column_int64(s, i);
}

double
stmt_column_double(struct stmt *s, int i)
{
	if (s->lite != NULL)
		return sqlite3_column_double(s->lite, i);
	return strtod(pg_column_text(s->pg, i), NULL);
}

int
stmt_column_bytes(struct stmt *s, int i)
{
	return s->lite != NULL ? sqlite3_column_bytes(s->lite, i) : pg_column_bytes(s->pg, i);
}

void
store_step_failed(struct store *st, struct stmt *s, int rc)
{
	if (st->backend == STORE_SQLITE) {
		log_errx("sqlite: %s", sqlite3_errmsg(st->db));
		store_failed(st, rc);
	} else {
		log_errx("postgresql: %s", store_errmsg(st));
	}
	stmt_reset(s);
	/* Writes after SQLite's automatic rollback would each commit on their
	 * own; a new transaction keeps them together (and lost with it if the
	 * disk is still full). */
	if (!st->in_tx && st->lost)
		(void)store_begin(st);
}

int
store_exec_stmt(struct store *st, struct stmt *s)
{
	int rc = stmt_step(s);

	if (rc != STMT_DONE) {
		store_step_failed(st, s, rc);
		return -1;
	}
	stmt_reset(s);
	return 0;
}

int64_t
store_exec_int64(struct store *st, struct stmt *s)
{
	int rc = stmt_step(s);
	int64_t v = -1;

	if (rc == STMT_ROW)
		v = stmt_column_int64(s, 0);
	else if (rc != STMT_DONE) {
		store_step_failed(st, s, rc);
		return -1;
	}
	stmt_reset(s);
	return v;
}

json_t *
store_texts(struct store *st, const char *sql, const char *key)
{
	struct stmt *s = store_stmt(st, sql);
	json_t *a;
	int rc;

	if (s == NULL || (a = json_array()) == NULL)
		return NULL;
	store_bind_text(s, 1, key);
	while ((rc = stmt_step(s)) == STMT_ROW)
		json_array_append_new(a, json_string(store_column_text(s, 0)));
	if (rc != STMT_DONE) {
		store_step_failed(st, s, rc);
		json_decref(a);
		return NULL;
	}
	stmt_reset(s);
	return a;
}

int64_t
store_changes(struct store *st)
{
	if (st->backend == STORE_SQLITE)
		return sqlite3_changes64(st->db);
	return st->last != NULL && st->last->pg != NULL ? pg_changes(st->last->pg) : 0;
}

json_t *
store_column_json(struct stmt *s, int i)
{
	switch (stmt_column_type(s, i)) {
	case STMT_INTEGER:
		return json_integer(stmt_column_int64(s, i));
	case STMT_FLOAT:
		return json_real(stmt_column_double(s, i));
	case STMT_TEXT:
		return json_stringn(store_column_text(s, i), (size_t)stmt_column_bytes(s, i));
	default:
		return json_null();
	}
}
