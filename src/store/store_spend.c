/* store_spend: the spend ledger (table spend_ledger), one row per request
 * handed to a provider.
 *
 * A row is written when the request is handed out, with the provider's
 * cost reserved, and committed before the worker can send it, so that a
 * kill -9 never loses a request that may have been paid for.  The answer
 * settles it with what it cost: the cost (an image, a failure the
 * provider may bill), or 0 (refused before any work: rate limited, a
 * refused key, no credits; a poll of a task already paid for).  A request
 * that was never sent is deleted.  Rows left reserved by a process that
 * died are counted in full: nobody knows whether they were sent. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
store_spend_today(char out[STORE_DAY_MAX])
{
	time_t t = time(NULL);
	struct tm tm;

	/* The service's time zone: TZ when set, else UTC (not the machine's
	 * /etc/localtime, which a unit's admin may not even see). */
	if (getenv("TZ") != NULL) {
		tzset();
		localtime_r(&t, &tm);
	} else {
		gmtime_r(&t, &tm);
	}
	strftime(out, STORE_DAY_MAX, "%Y-%m-%d", &tm);
}

int64_t
store_spend_reserve(struct store *st, const struct store_spend_req *q)
{
	static const char sql[] =
		"INSERT INTO spend_ledger (provider, run_id, image_id, day, cost, created_at)"
		" VALUES (?, ?, ?, ?, ?, ?) RETURNING id";
	struct stmt *s = store_stmt(st, sql);
	int64_t id;
	char now[32];
	int rc;

	if (s == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, q->provider);
	store_bind_text(s, 2, q->run_id);
	store_bind_text(s, 3, q->image_id);
	store_bind_text(s, 4, q->day);
	stmt_bind_double(s, 5, q->cost);
	store_bind_text(s, 6, now);
	if ((rc = stmt_step(s)) != STMT_ROW) {
		store_step_failed(st, s, rc);
		return -1;
	}
	id = stmt_column_int64(s, 0);
	stmt_reset(s);
	return id;
}

int
store_spend_settle(struct store *st, int64_t id, const char *outcome, const char *error_class,
		   bool charged)
{
	static const char sql[] =
		"UPDATE spend_ledger SET outcome = ?2, error_class = ?3,"
		" cost = CASE WHEN ?4 <> 0 THEN cost ELSE 0 END, settled_at = ?5"
		" WHERE id = ?1 AND outcome = 'reserved'";
	struct stmt *s = store_stmt(st, sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	stmt_bind_int64(s, 1, id);
	store_bind_text(s, 2, outcome);
	store_bind_text(s, 3, error_class);
	stmt_bind_int(s, 4, charged);
	store_bind_text(s, 5, now);
	return store_exec_stmt(st, s);
}

int
store_spend_release(struct store *st, int64_t id)
{
	static const char sql[] =
		"DELETE FROM spend_ledger WHERE id = ? AND outcome = 'reserved'";
	struct stmt *s = store_stmt(st, sql);

	if (s == NULL)
		return -1;
	stmt_bind_int64(s, 1, id);
	return store_exec_stmt(st, s);
}

int
store_spend_lost(struct store *st, const char *run_id)
{
	static const char sql[] =
		"UPDATE spend_ledger SET outcome = 'unknown', settled_at = ?2"
		" WHERE run_id = ?1 AND outcome = 'reserved'";
	struct stmt *s = store_stmt(st, sql);
	char now[32];

	if (s == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, run_id);
	store_bind_text(s, 2, now);
	return store_exec_stmt(st, s);
}

int
store_spend_sum(struct store *st, const char *provider, const char *run_id, const char *day,
		struct store_spend_sums *out)
{
	static const char by_run[] =
		"SELECT coalesce(sum(cost), 0), coalesce(sum(cost) FILTER"
		"  (WHERE outcome = 'reserved'), 0) FROM spend_ledger"
		" WHERE run_id = ? AND provider = ?";
	static const char by_day[] =
		"SELECT coalesce(sum(cost), 0), coalesce(sum(cost) FILTER"
		"  (WHERE outcome = 'reserved'), 0) FROM spend_ledger"
		" WHERE day = ? AND provider = ?";
	struct stmt *s = store_stmt(st, run_id != NULL ? by_run : by_day);
	int rc;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, run_id != NULL ? run_id : day);
	store_bind_text(s, 2, provider);
	if ((rc = stmt_step(s)) == STMT_ROW) {
		out->total = stmt_column_double(s, 0);
		out->reserved = stmt_column_double(s, 1);
	}
	stmt_reset(s);
	return rc == STMT_ROW ? 0 : -1;
}

/* {provider: {requests, spent}} of the rows a statement selects, bound
 * with key. */
static json_t *
per_provider(struct store *st, const char *sql, const char *key)
{
	struct stmt *s = store_stmt(st, sql);
	json_t *o = json_object();
	int rc;

	if (s == NULL || o == NULL) {
		json_decref(o);
		return NULL;
	}
	store_bind_text(s, 1, key);
	while ((rc = stmt_step(s)) == STMT_ROW)
		json_object_set_new(o, store_column_text(s, 0),
				    json_pack("{sI sf}", "requests",
					      (json_int_t)stmt_column_int64(s, 1), "spent",
					      stmt_column_double(s, 2)));
	stmt_reset(s);
	if (rc != STMT_DONE) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
store_query_spend(struct store *st, const char *run_id, const char *day)
{
	static const char by_run[] =
		"SELECT provider, count(*), sum(cost) FROM spend_ledger WHERE run_id = ?"
		" GROUP BY provider ORDER BY provider";
	static const char by_day[] =
		"SELECT provider, count(*), sum(cost) FROM spend_ledger WHERE day = ?"
		" GROUP BY provider ORDER BY provider";
	json_t *run = run_id != NULL ? per_provider(st, by_run, run_id) : json_object();
	json_t *today = per_provider(st, by_day, day);

	if (run == NULL || today == NULL) {
		json_decref(run);
		json_decref(today);
		return NULL;
	}
	return json_pack("{s:s? so ss so}", "run_id", run_id, "run", run, "day", day, "today",
			 today);
}

json_t *
store_spend_totals(struct store *st)
{
	static const char sql[] =
		"SELECT provider, count(*), sum(cost), count(*) FILTER (WHERE outcome = 'completed')"
		" FROM spend_ledger GROUP BY provider ORDER BY provider";
	struct stmt *s = store_stmt(st, sql);
	json_t *a = json_array();
	int rc;

	if (s == NULL || a == NULL) {
		json_decref(a);
		return NULL;
	}
	while ((rc = stmt_step(s)) == STMT_ROW)
		json_array_append_new(a, json_pack("{ss sI sf sI}", "provider",
						   store_column_text(s, 0), "requests",
						   (json_int_t)stmt_column_int64(s, 1), "spent",
						   stmt_column_double(s, 2), "images",
						   (json_int_t)stmt_column_int64(s, 3)));
	stmt_reset(s);
	if (rc != STMT_DONE) {
		json_decref(a);
		return NULL;
	}
	return a;
}
