/* store_pg: the PostgreSQL engine, over libpq.
 *
 * One connection, in non-blocking mode: every round trip is sent with
 * PQsend*() and its answer awaited with poll() for at most the
 * configured timeout (database_timeout), so that the supervisor's loop is
 * never held by the database for longer than that.  The server is told
 * the same bound (statement_timeout, idle_in_transaction_session_timeout),
 * so that a statement we gave up on does not go on holding locks.  Every
 * wait is measured (pg_stats: round trips, the longest wait, the total).
 *
 * A connection that fails (the server restarted, the network, a timeout)
 * is dropped: the transaction in progress is lost, every call fails at
 * once without I/O until pg_reconnect() succeeds, which it tries with a
 * backoff (100 ms doubling to 5 s), each attempt bounded by the timeout.
 * Statements are prepared on a connection the first time they are used
 * on it, so a new connection prepares them again.  The store's caller
 * learns of a loss through store_epoch() and acts (see sup/cluster.c).
 *
 * Secrets: the connection URI may hold a password and database_password
 * is one; neither is ever written to a message.  libpq's own messages
 * name the host, port and user, never the password. */
#include "store_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "clock.h"
#include "log.h"

#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
#define PG_PARAMS_MAX 32

struct pg {
	PGconn *conn;		/* NULL while lost */
	char *conninfo;		/* secret: may hold a password */
	char *password;		/* secret, or NULL */
	int timeout_ms;
	unsigned epoch;		/* connections made: statements prepared on an older one are gone */
	unsigned nnames;	/* statement names handed out */
	bool tx_begin;		/* BEGIN is owed before the next statement (lazy) */
	bool tx_failed;		/* a statement of the transaction failed */
	bool tx_lost;		/* the connection went with the transaction */
	int64_t next_attempt_ms; /* monotonic: when a lost connection is tried again */
	int backoff_ms;
	struct store_stats stats;
};

struct pg_stmt {
	char *sql;		/* with $N placeholders */
	char name[24];
	int nparams;
	char *vals[PG_PARAMS_MAX];
	int lens[PG_PARAMS_MAX];
	unsigned epoch;		/* the connection it is prepared on, 0 none */
	PGresult *res;
	int row, nrows;		/* the current row (-1 before the first) */
	int64_t changes;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
set_err(struct store *st, const char *fmt, const char *what)
{
	size_t n;

	snprintf(st->errbuf, sizeof(st->errbuf), fmt, what != NULL ? what : "");
	n = strlen(st->errbuf);
	while (n > 0 && (st->errbuf[n - 1] == '\n' || st->errbuf[n - 1] == ' '))
		st->errbuf[--n] = '\0';
}

/* The connection is gone: what it held (the transaction, the prepared
 * statements) with it. */
static void
drop(struct store *st, const char *why)
{
	struct pg *pg = st->pg;

	if (pg->conn == NULL)
		return;
	log_warnx("postgresql: connection lost: %s; reconnecting", why);
	set_err(st, "connection lost: %s", why);
	PQfinish(pg->conn);
	pg->conn = NULL;
	pg->tx_lost = st->in_tx && !pg->tx_begin;
	pg->tx_begin = pg->tx_failed = false;
	pg->backoff_ms = PG_BACKOFF_MIN_MS;
	pg->next_attempt_ms = clock_now_ms();	/* once at once, then with backoff */
}

/* Waits until fd is ready for events or the deadline (monotonic ns). */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left = (deadline - now_ns()) / 1000000;
	int rc;

	if (left <= 0)
		return 0;
	do
		rc = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
	while (rc < 0 && errno == EINTR);
	return rc;
}

/* Sends what libpq buffered, then collects the results of the query sent
 * last; returns the last one (the first error one wins), NULL when the
 * connection failed or the timeout passed (then it is dropped). */
static PGresult *
await(struct store *st)
{
	struct pg *pg = st->pg;
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)pg->timeout_ms * 1000000, dt;
	int fd = PQsocket(pg->conn), f;
	PGresult *res = NULL, *r;

	while ((f = PQflush(pg->conn)) == 1) {
		if (wait_fd(fd, POLLOUT | POLLIN, deadline) <= 0)
			goto timeout;
		if (!PQconsumeInput(pg->conn))
			goto broken;
	}
	if (f < 0)
		goto broken;
	for (;;) {
		while (PQisBusy(pg->conn)) {
			if (wait_fd(fd, POLLIN, deadline) <= 0)
				goto timeout;
			if (!PQconsumeInput(pg->conn))
				goto broken;
		}
		if ((r = PQgetResult(pg->conn)) == NULL)
			break;
		if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR)
			PQclear(r);
		else {
			PQclear(res);
			res = r;
		}
	}
	dt = now_ns() - t0;
	pg->stats.round_trips++;
	pg->stats.wait_total_s += (double)dt / 1e9;
	if ((double)dt / 1e9 > pg->stats.wait_max_s)
		pg->stats.wait_max_s = (double)dt / 1e9;
	if (res == NULL || PQstatus(pg->conn) == CONNECTION_BAD)
		goto broken_res;
	return res;
timeout:
	PQclear(res);
	drop(st, "no answer within database_timeout");
	return NULL;
broken_res:
	PQclear(res);
broken:
	drop(st, PQerrorMessage(pg->conn));
	return NULL;
}

/* A result's error into errbuf; true when it is one. */
static bool
failed(struct store *st, PGresult *res)
{
	ExecStatusType s = PQresultStatus(res);

	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return false;
	/* The primary message alone: one line, as every error of ours. */
	set_err(st, "%s", primary != NULL ? primary : PQresultErrorMessage(res));
	if (st->in_tx)
		st->pg->tx_failed = true;
	return true;
}

/* Run a simple statement; with its result's command status when wanted. */
static int
simple(struct store *st, const char *sql, char *status, size_t statuslen)
{
	PGresult *res;
	int rc = -1;

	if (st->pg->conn == NULL) {
		set_err(st, "%s", "not connected (reconnecting)");
		return -1;
	}
	if (!PQsendQuery(st->pg->conn, sql)) {
		drop(st, PQerrorMessage(st->pg->conn));
		return -1;
	}
	if ((res = await(st)) == NULL)
		return -1;
	if (!failed(st, res)) {
		rc = 0;
		if (status != NULL)
			snprintf(status, statuslen, "%s", PQcmdStatus(res));
	}
	PQclear(res);
	return rc;
}

/* BEGIN is sent with the first statement of a transaction, so that an
 * iteration of the loop that reads and writes nothing costs no round trip. */
static int
owed_begin(struct store *st)
{
	if (!st->pg->tx_begin)
		return 0;
	st->pg->tx_begin = false;
	return simple(st, "BEGIN", NULL, 0);
}

int
pg_exec(struct store *st, const char *sql)
{
	struct pg *pg = st->pg;
	char status[32] = "";
	int rc;

	if (strcmp(sql, "BEGIN") == 0) {
		if (pg->conn == NULL && pg_reconnect(st) < 0)
			return -1;
		pg->tx_begin = true;
		pg->tx_failed = false;
		return 0;
	}
	if (strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0) {
		bool owed = pg->tx_begin, bad = pg->tx_failed, lost = pg->tx_lost;

		pg->tx_begin = pg->tx_failed = pg->tx_lost = false;
		if (lost || pg->conn == NULL)	/* gone with the connection */
			return sql[0] == 'C' && (lost || !owed) ? -1 : 0;
		if (owed)
			return 0;	/* nothing was sent: nothing to end */
		rc = simple(st, sql, status, sizeof(status));
		/* COMMIT of a transaction with a failed statement rolls back,
		 * and says so only in its command status. */
		if (rc == 0 && sql[0] == 'C' && (bad || strcmp(status, "ROLLBACK") == 0)) {
			if (!bad)
				set_err(st, "%s", "the transaction was rolled back");
			return -1;
		}
		return rc;
	}
	if (owed_begin(st) < 0)
		return -1;
	rc = simple(st, sql, NULL, 0);
	/* A savepoint rolled back to undoes the failure too. */
	if (rc == 0 && strncmp(sql, "ROLLBACK TO", 11) == 0)
		pg->tx_failed = false;
	return rc;
}

/* SQLite's placeholders (`?`, `?N`) as PostgreSQL's ($N); quoted text and
 * identifiers are copied as they are. */
static char *
translate(const char *sql, int *nparams)
{
	char *out = malloc(strlen(sql) * 2 + 16), *o = out;
	int next = 0, max = 0;
	char quote = 0;

	if (out == NULL)
		return NULL;
	for (const char *p = sql; *p != '\0'; p++) {
		if (quote != 0) {
			quote = *p == quote ? 0 : quote;
			*o++ = *p;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
			*o++ = *p;
		} else if (*p == '?') {
			int n = 0;

			while (p[1] >= '0' && p[1] <= '9')
				n = n * 10 + (*++p - '0');
			if (n == 0)
				n = max + 1;
			next = n;
			max = n > max ? n : max;
			o += sprintf(o, "$%d", next);
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	*nparams = max;
	return out;
}

struct pg_stmt *
pg_prepare(struct store *st, const char *sql)
{
	struct pg_stmt *ps = calloc(1, sizeof(*ps));

	if (ps == NULL || (ps->sql = translate(sql, &ps->nparams)) == NULL) {
		free(ps);
		log_errx("postgresql prepare: out of memory");
		return NULL;
	}
	if (ps->nparams > PG_PARAMS_MAX) {
		log_errx("postgresql prepare: %d parameters, at most %d", ps->nparams,
			 PG_PARAMS_MAX);
		pg_stmt_free(ps);
		return NULL;
	}
	snprintf(ps->name, sizeof(ps->name), "t2i_%u", ++st->pg->nnames);
	ps->row = -1;
	return ps;
}

void
pg_stmt_free(struct pg_stmt *ps)
{
	if (ps == NULL)
		return;
	pg_reset(ps);
	free(ps->sql);
	free(ps);
}

int
pg_bind(struct pg_stmt *ps, int i, const char *text, size_t len)
{
	char *v = NULL;

	if (i < 1 || i > ps->nparams)
		return -1;
	if (text != NULL && (v = strndup(text, len)) == NULL)
		return -1;
	free(ps->vals[i - 1]);
	ps->vals[i - 1] = v;
	ps->lens[i - 1] = (int)len;
	return 0;
}

void
pg_reset(struct pg_stmt *ps)
{
	PQclear(ps->res);
	ps->res = NULL;
	ps->row = -1;
	ps->nrows = 0;
	for (int i = 0; i < ps->nparams; i++) {
		free(ps->vals[i]);
		ps->vals[i] = NULL;
	}
}

/* Prepared on this connection, once. */
static int
ensure_prepared(struct store *st, struct pg_stmt *ps)
{
	PGresult *res;
	bool bad;

	if (ps->epoch == st->pg->epoch)
		return 0;
	if (!PQsendPrepare(st->pg->conn, ps->name, ps->sql, ps->nparams, NULL)) {
		drop(st, PQerrorMessage(st->pg->conn));
		return -1;
	}
	if ((res = await(st)) == NULL)
		return -1;
	if ((bad = failed(st, res)))
		log_errx("postgresql prepare: %s: %s", st->errbuf, ps->sql);
	PQclear(res);
	if (bad)
		return -1;
	ps->epoch = st->pg->epoch;
	return 0;
}

static int
execute(struct store *st, struct pg_stmt *ps)
{
	const char *vals[PG_PARAMS_MAX];

	if (st->pg->conn == NULL) {
		set_err(st, "%s", "not connected (reconnecting)");
		return STMT_ERROR;
	}
	if (st->pg->tx_failed) {
		set_err(st, "%s", "an earlier statement of the transaction failed");
		return STMT_ERROR;
	}
	if (owed_begin(st) < 0 || ensure_prepared(st, ps) < 0)
		return STMT_ERROR;
	for (int i = 0; i < ps->nparams; i++)
		vals[i] = ps->vals[i];
	if (!PQsendQueryPrepared(st->pg->conn, ps->name, ps->nparams, vals, ps->lens, NULL, 0)) {
		drop(st, PQerrorMessage(st->pg->conn));
		return STMT_ERROR;
	}
	if ((ps->res = await(st)) == NULL)
		return STMT_ERROR;
	if (failed(st, ps->res)) {
		PQclear(ps->res);
		ps->res = NULL;
		return STMT_ERROR;
	}
	ps->nrows = PQntuples(ps->res);
	ps->changes = strtoll(PQcmdTuples(ps->res), NULL, 10);
	return 0;
}

int
pg_step(struct store *st, struct pg_stmt *ps)
{
	if (ps->res == NULL && ps->row < 0 && execute(st, ps) != 0)
		return STMT_ERROR;
	if (ps->res == NULL)
		return STMT_DONE;
	if (++ps->row < ps->nrows)
		return STMT_ROW;
	return STMT_DONE;
}

int
pg_column_count(struct pg_stmt *ps)
{
	return ps->res != NULL ? PQnfields(ps->res) : 0;
}

const char *
pg_column_name(struct pg_stmt *ps, int i)
{
	return ps->res != NULL ? PQfname(ps->res, i) : "";
}

/* Type OIDs of pg_type.h, which libpq-fe.h does not include. */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

int
pg_column_type(struct pg_stmt *ps, int i)
{
	if (ps->res == NULL || ps->row < 0 || ps->row >= ps->nrows ||
	    PQgetisnull(ps->res, ps->row, i))
		return STMT_NULL;
	switch (PQftype(ps->res, i)) {
	case OID_INT8:
	case OID_INT2:
	case OID_INT4:
		return STMT_INTEGER;
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		return STMT_FLOAT;
	default:
		return STMT_TEXT;
	}
}

const char *
pg_column_text(struct pg_stmt *ps, int i)
{
	if (ps->res == NULL || ps->row < 0 || ps->row >= ps->nrows)
		return "";
	return PQgetvalue(ps->res, ps->row, i);	/* "" for NULL */
}

int
pg_column_bytes(struct pg_stmt *ps, int i)
{
	if (ps->res == NULL || ps->row < 0 || ps->row >= ps->nrows)
		return 0;
	return PQgetlength(ps->res, ps->row, i);
}

int64_t
pg_changes(struct pg_stmt *ps)
{
	return ps->changes;
}

/* --- connecting --- */

/* One attempt, its every wait bounded by the timeout. */
static PGconn *
connect_once(struct pg *pg, char *err, size_t errlen)
{
	const char *keys[] = { "dbname", "password", "fallback_application_name", NULL };
	const char *vals[] = { pg->conninfo, pg->password, "t2istage", NULL };
	int64_t deadline = now_ns() + (int64_t)pg->timeout_ms * 1000000;
	PGconn *c;
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;

	if (pg->password == NULL) {
		keys[1] = "fallback_application_name";
		vals[1] = "t2istage";
		keys[2] = vals[2] = NULL;
	}
	if ((c = PQconnectStartParams(keys, vals, 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while (PQstatus(c) != CONNECTION_BAD && ps != PGRES_POLLING_OK &&
	       ps != PGRES_POLLING_FAILED) {
		short ev = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT;

		if (wait_fd(PQsocket(c), ev, deadline) <= 0) {
			snprintf(err, errlen, "no answer within database_timeout (%d ms)",
				 pg->timeout_ms);
			PQfinish(c);
			return NULL;
		}
		ps = PQconnectPoll(c);
	}
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* The server's notices (NOTICE, WARNING) are for the debug log, not for
 * stderr, where libpq would print them. */
static void
notice(void *arg, const char *message)
{
	(void)arg;
	log_debug("postgresql: %s", message);
}

/* What every connection is told: the bounds, UTC, quiet notices.  A
 * healthy instance is never idle inside a transaction (its transactions
 * never span a poll()), so a session that is has frozen (SIGSTOP, a
 * debugger, swap): the server ends it after 40% of the timeout (1 s at
 * least), before the others' lock waits (80%) give up on its row locks.
 * The longest a loop then waits for a lock is that 40%. */
static int
configure(struct store *st)
{
	int t = st->pg->timeout_ms, idle = t * 2 / 5 > 1000 ? t * 2 / 5 : 1000;
	char sql[256];

	PQsetnonblocking(st->pg->conn, 1);
	PQsetNoticeProcessor(st->pg->conn, notice, NULL);
	snprintf(sql, sizeof(sql),
		 "SET statement_timeout = %d; SET idle_in_transaction_session_timeout = %d;"
		 " SET lock_timeout = %d; SET TIME ZONE 'UTC'; SET client_min_messages = warning",
		 t, idle, t * 4 / 5 > idle ? t * 4 / 5 : idle + 500);
	return simple(st, sql, NULL, 0);
}

static int
connect_now(struct store *st, char *err, size_t errlen)
{
	struct pg *pg = st->pg;

	if ((pg->conn = connect_once(pg, err, errlen)) == NULL)
		return -1;
	pg->epoch++;
	if (configure(st) < 0) {
		snprintf(err, errlen, "%s", st->errbuf);
		if (pg->conn != NULL)
			PQfinish(pg->conn);
		pg->conn = NULL;
		return -1;
	}
	return 0;
}

struct pg *
pg_open(const char *conninfo, const char *password, double timeout_s, char *err,
	size_t errlen)
{
	struct pg *pg = calloc(1, sizeof(*pg));

	if (pg == NULL || (pg->conninfo = strdup(conninfo)) == NULL ||
	    (password != NULL && (pg->password = strdup(password)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		pg_close(pg);
		return NULL;
	}
	pg->timeout_ms = (int)(timeout_s * 1000.0);
	if (pg->timeout_ms < 100)
		pg->timeout_ms = 100;
	pg->backoff_ms = PG_BACKOFF_MIN_MS;
	return pg;
}

void
pg_close(struct pg *pg)
{
	if (pg == NULL)
		return;
	if (pg->conn != NULL)
		PQfinish(pg->conn);
	if (pg->conninfo != NULL)
		explicit_bzero(pg->conninfo, strlen(pg->conninfo));
	if (pg->password != NULL)
		explicit_bzero(pg->password, strlen(pg->password));
	free(pg->conninfo);
	free(pg->password);
	free(pg);
}

/* The first connection (store_open), whose failure is the caller's error. */
int
pg_connect_first(struct store *st, char *err, size_t errlen)
{
	return connect_now(st, err, errlen);
}

int
pg_reconnect(struct store *st)
{
	struct pg *pg = st->pg;
	int64_t now = clock_now_ms();
	char err[512];

	if (pg->conn != NULL)
		return 0;
	if (now < pg->next_attempt_ms) {
		set_err(st, "%s", "not connected (reconnecting)");
		return -1;
	}
	if (connect_now(st, err, sizeof(err)) < 0) {
		set_err(st, "cannot reconnect: %s", err);
		log_debug("postgresql: %s; next attempt in %d ms", st->errbuf, pg->backoff_ms);
		pg->next_attempt_ms = now + pg->backoff_ms;
		pg->backoff_ms = pg->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS
									 : pg->backoff_ms * 2;
		return -1;
	}
	pg->stats.reconnects++;
	pg->backoff_ms = PG_BACKOFF_MIN_MS;
	log_info("postgresql: reconnected");
	return 0;
}

bool
pg_lost(const struct pg *pg)
{
	return pg->conn == NULL;
}

void
pg_stats(const struct pg *pg, struct store_stats *out)
{
	*out = pg->stats;
	out->epoch = pg->epoch;
	out->connected = pg->conn != NULL;
}

/* --- LISTEN (store_listen) --- */

int
pg_socket(const struct pg *pg)
{
	return pg->conn != NULL ? PQsocket(pg->conn) : -1;
}

/* Every notification received, as fn(channel payload); -1 when the
 * connection was lost. */
int
pg_notifies(struct store *st, void (*fn)(void *arg, const char *payload), void *arg)
{
	PGnotify *n;
	int count = 0;

	if (st->pg->conn == NULL)
		return -1;
	if (!PQconsumeInput(st->pg->conn) || PQstatus(st->pg->conn) == CONNECTION_BAD) {
		drop(st, PQerrorMessage(st->pg->conn));
		return -1;
	}
	while ((n = PQnotifies(st->pg->conn)) != NULL) {
		fn(arg, n->extra);
		PQfreemem(n);
		count++;
	}
	return count;
}
