/* store_webhook: the webhook outbox.  A row is queued by the same
 * transaction that appends its event, so an event is never recorded without
 * its deliveries nor delivered without being recorded.  The row holds no
 * body (it is the run_events row's, joined) and no secret. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int
store_webhook_queue(struct store *st, const char *webhook_id, const char *endpoint,
		    const char *run_id, int64_t seq, int64_t now_ms)
{
	static const char sql[] =
		"INSERT INTO webhook_outbox (webhook_id, endpoint, run_id, seq, queued_ms,"
		"  next_attempt_ms) VALUES (?, ?, ?, ?, ?, ?)";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, webhook_id);
	store_bind_text(s, 2, endpoint);
	store_bind_text(s, 3, run_id);
	stmt_bind_int64(s, 4, seq);
	stmt_bind_int64(s, 5, now_ms);
	stmt_bind_int64(s, 6, now_ms);
	return store_exec_stmt(st, s);
}

static int
row_fill(struct stmt *s, struct store_webhook_row *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->webhook_id, sizeof(r->webhook_id), "%s", store_column_text(s, 0));
	r->endpoint = strdup(store_column_text(s, 1));
	r->body_len = (size_t)stmt_column_bytes(s, 2);
	r->body = malloc(r->body_len + 1);
	if (r->endpoint == NULL || r->body == NULL) {
		store_webhook_row_free(r);
		return -1;
	}
	memcpy(r->body, store_column_text(s, 2), r->body_len);
	r->body[r->body_len] = '\0';
	r->attempts = stmt_column_int(s, 3);
	r->queued_ms = stmt_column_int64(s, 4);
	return 0;
}

int
store_webhook_due(struct store *st, int64_t now_ms, const char *run_id,
		  struct store_webhook_row *rows, int max)
{
#define DUE_SQL(LOCK)                                                                      \
	"SELECT o.webhook_id, o.endpoint, e.body, o.attempts, o.queued_ms"                 \
	" FROM webhook_outbox o JOIN run_events e ON e.run_id = o.run_id AND e.seq = o.seq" \
	" WHERE o.status = 'pending' AND o.next_attempt_ms <= ?1"                          \
	"   AND (CAST(?2 AS TEXT) IS NULL OR o.run_id = ?2)"                                             \
	" ORDER BY o.next_attempt_ms LIMIT ?3" LOCK
	/* With several instances on PostgreSQL the rows stay locked until the
	 * caller's lease of them is committed: another instance skips them,
	 * then finds them leased. */
	static const char sql[] = DUE_SQL(""), pg_sql[] = DUE_SQL(" FOR UPDATE OF o SKIP LOCKED");
	struct stmt *s = store_stmt2(st, sql, pg_sql);
	int n = 0;

	if (s == NULL)
		return -1;
	stmt_bind_int64(s, 1, now_ms);
	store_bind_text(s, 2, run_id);
	stmt_bind_int(s, 3, max);
	while (n < max && stmt_step(s) == STMT_ROW)
		if (row_fill(s, &rows[n]) == 0)
			n++;
	stmt_reset(s);
	return n;
}

void
store_webhook_row_free(struct store_webhook_row *r)
{
	free(r->endpoint);
	free(r->body);
	r->endpoint = r->body = NULL;
}

int
store_webhook_lease(struct store *st, const char *webhook_id, int64_t until_ms)
{
	static const char sql[] =
		"UPDATE webhook_outbox SET next_attempt_ms = ? WHERE webhook_id = ?"
		" AND status = 'pending'";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	stmt_bind_int64(s, 1, until_ms);
	store_bind_text(s, 2, webhook_id);
	return store_exec_stmt(st, s);
}

int
store_webhook_delivered(struct store *st, const char *webhook_id, long http_status,
			int64_t now_ms)
{
	static const char sql[] =
		"UPDATE webhook_outbox SET status = 'delivered', attempts = attempts + 1,"
		" last_attempt_ms = ?1, delivered_ms = ?1, last_status = ?2, last_error = NULL"
		" WHERE webhook_id = ?3 AND status = 'pending'";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	stmt_bind_int64(s, 1, now_ms);
	stmt_bind_int64(s, 2, http_status);
	store_bind_text(s, 3, webhook_id);
	return store_exec_stmt(st, s);
}

int
store_webhook_failed(struct store *st, const char *webhook_id, long http_status,
		     const char *error, int64_t now_ms, int64_t next_ms)
{
	static const char sql[] =
		"UPDATE webhook_outbox SET attempts = attempts + 1, last_attempt_ms = ?1,"
		" last_status = ?2, last_error = ?3,"
		" status = CASE WHEN CAST(?4 AS BIGINT) < 0 THEN 'gave_up' ELSE 'pending' END,"
		" next_attempt_ms = CASE WHEN ?4 < 0 THEN next_attempt_ms ELSE ?4 END"
		" WHERE webhook_id = ?5 AND status = 'pending'";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	stmt_bind_int64(s, 1, now_ms);
	if (http_status > 0)
		stmt_bind_int64(s, 2, http_status);
	else
		stmt_bind_null(s, 2);
	store_bind_text(s, 3, error);
	stmt_bind_int64(s, 4, next_ms);
	store_bind_text(s, 5, webhook_id);
	return store_exec_stmt(st, s);
}

int64_t
store_webhook_next_due(struct store *st, int64_t after_ms)
{
	static const char sql[] =
		"SELECT min(next_attempt_ms) FROM webhook_outbox WHERE status = 'pending'"
		" AND next_attempt_ms > ?";
	struct stmt *s = store_stmt(st, sql);
	int64_t next = INT64_MAX;

	if (s == NULL)
		return INT64_MAX;
	stmt_bind_int64(s, 1, after_ms);
	if (stmt_step(s) == STMT_ROW && stmt_column_type(s, 0) != STMT_NULL)
		next = stmt_column_int64(s, 0);
	stmt_reset(s);
	return next;
}

long
store_webhook_pending(struct store *st, const char *run_id, int64_t before_ms)
{
	static const char sql[] =
		"SELECT count(*) FROM webhook_outbox WHERE status = 'pending'"
		" AND next_attempt_ms <= ?1 AND (CAST(?2 AS TEXT) IS NULL OR run_id = ?2)";
	struct stmt *s = store_stmt(st, sql);
	long n = -1;

	if (s == NULL)
		return -1;
	stmt_bind_int64(s, 1, before_ms);
	store_bind_text(s, 2, run_id);
	if (stmt_step(s) == STMT_ROW)
		n = (long)stmt_column_int64(s, 0);
	else
		log_errx("database: %s", store_errmsg(st));
	stmt_reset(s);
	return n;
}
