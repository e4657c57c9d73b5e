/* store_cluster: what several instances on one PostgreSQL share (see
 * sup/cluster.h for how the supervisor uses it).  PostgreSQL only: on
 * SQLite each of these fails (-1), and nothing calls them there.
 *
 * Times are Unix milliseconds of the wall clock, passed by the caller as
 * "now" to every statement (so that tests can drive time), never read by
 * the database itself.  A claimed generation is 'processing' with a lease:
 * lease_owner (the instance), lease_token (its batch) and lease_until; a
 * write of its result holds the row locked under that token first
 * (store_lease_hold), so that a worker whose lease was lost and taken over
 * never records over the new owner's. */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

static int
pg_only(struct store *st)
{
	if (st->backend == STORE_PG)
		return 0;
	snprintf(st->errbuf, sizeof(st->errbuf), "only with PostgreSQL");
	return -1;
}

int
store_instance_upsert(struct store *st, const struct store_instance *in, int64_t now_ms)
{
	static const char sql[] =
		"INSERT INTO cluster_instances (name, host, pid, started_ms, heartbeat_ms,"
		"  providers, storage_marker) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)"
		" ON CONFLICT (name) DO UPDATE SET host = ?2, pid = ?3, started_ms = ?4,"
		"  heartbeat_ms = ?4, providers = ?5, storage_marker = ?6, stopped = 0";
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, in->name);
	store_bind_text(s, 2, in->host);
	stmt_bind_int64(s, 3, in->pid);
	stmt_bind_int64(s, 4, now_ms);
	store_bind_text(s, 5, in->providers);
	store_bind_text(s, 6, in->marker);
	return store_exec_stmt(st, s);
}

int
store_instance_heartbeat(struct store *st, const char *name, int64_t now_ms)
{
	static const char sql[] =
		"UPDATE cluster_instances SET heartbeat_ms = ?2 WHERE name = ?1";
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, name);
	stmt_bind_int64(s, 2, now_ms);
	if (store_exec_stmt(st, s) < 0)
		return -1;
	return (int)store_changes(st);
}

int
store_instance_remove(struct store *st, const char *name)
{
	static const char sql[] = "DELETE FROM cluster_instances WHERE name = ?";
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, name);
	return store_exec_stmt(st, s);
}

json_t *
store_instances(struct store *st)
{
	static const char sql[] =
		"SELECT name, host, pid, started_ms, heartbeat_ms, providers, storage_marker"
		" FROM cluster_instances ORDER BY name";
	struct stmt *s;
	json_t *a;
	int rc;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return NULL;
	a = json_array();
	while ((rc = stmt_step(s)) == STMT_ROW)
		json_array_append_new(
			a, json_pack("{ss ss sI sI sI ss ss}", "name", store_column_text(s, 0),
				     "host", store_column_text(s, 1), "pid",
				     (json_int_t)stmt_column_int64(s, 2), "started_ms",
				     (json_int_t)stmt_column_int64(s, 3), "heartbeat_ms",
				     (json_int_t)stmt_column_int64(s, 4), "providers",
				     store_column_text(s, 5), "storage_marker",
				     store_column_text(s, 6)));
	stmt_reset(s);
	if (rc != STMT_DONE) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* Counting the provider's live batches, its spend and its bucket are
 * statements of their own after the lock, so that their snapshots see
 * every claim, reservation and token taken by whoever held it before. */
int
store_provider_lock(struct store *st, const char *provider_id)
{
	static const char sql[] =
		"SELECT 1 FROM model_providers WHERE id = ? FOR UPDATE SKIP LOCKED";
	struct stmt *s = store_stmt(st, sql);
	int rc;

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, provider_id);
	rc = stmt_step(s);
	stmt_reset(s);
	return rc == STMT_ROW ? 1 : rc == STMT_DONE ? 0 : -1;
}

int
store_claim(struct store *st, const struct store_claim_req *q, struct store_claim *out)
{
	/* The batches a provider has in flight everywhere are its live
	 * leases' tokens; one claim is one more batch. */
	static const char sql[] =
		"WITH busy AS (SELECT count(DISTINCT lease_token) AS n FROM generated_images"
		"  WHERE model_provider_id = ?2 AND status = 'processing' AND lease_until >= ?4),"
		" c AS (SELECT g.id FROM generated_images g, busy, runs r"
		"  WHERE g.run_id = ?1 AND g.model_provider_id = ?2 AND g.status = 'pending'"
		"  AND g.is_primary = 1 AND g.ready_at <= ?4 AND busy.n < ?6"
		"  AND r.id = g.run_id AND r.status = 'processing' AND r.cancel_requested = 0"
		/* Identical requests in one run: only the first not yet done
		 * goes to a provider; the others are claimed once it is, and
		 * served from it (the cache). */
		"  AND (?10 = 0 OR NOT EXISTS (SELECT 1 FROM generated_images d"
		"   WHERE d.run_id = g.run_id AND d.cache_key = g.cache_key AND d.is_primary = 1"
		"   AND d.status IN ('pending', 'processing') AND d.position < g.position))"
		"  ORDER BY g.ready_at, g.position LIMIT ?3 FOR UPDATE OF g SKIP LOCKED)"
		" UPDATE generated_images g SET status = 'processing', lease_owner = ?5,"
		"  lease_token = ?7, lease_until = CAST(?4 AS BIGINT) + ?8, updated_at = ?9"
		" FROM c WHERE g.id = c.id RETURNING g.id, g.chain_attempts";
	char now[32];
	struct stmt *s;
	int rc = STMT_DONE, n = 0;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, q->run_id);
	store_bind_text(s, 2, q->provider_id);
	stmt_bind_int(s, 3, q->max);
	stmt_bind_int64(s, 4, q->now_ms);
	store_bind_text(s, 5, q->owner);
	stmt_bind_int(s, 6, q->batches_max);
	store_bind_text(s, 7, q->token);
	stmt_bind_int64(s, 8, q->lease_ms);
	store_bind_text(s, 9, now);
	stmt_bind_int(s, 10, q->first_of_duplicates);
	while (n < q->max && (rc = stmt_step(s)) == STMT_ROW) {
		snprintf(out[n].image_id, sizeof(out[n].image_id), "%s", store_column_text(s, 0));
		out[n].attempts = stmt_column_int(s, 1);
		n++;
	}
	stmt_reset(s);
	return rc == STMT_ERROR ? -1 : n;
}

int
store_rate_refill(struct store *st, const char *provider_id, int64_t now_ms, double per_ms,
		  double *tokens)
{
	/* A bucket of one token, as the lone instance's (sup/pace.c). */
	static const char sql[] =
		"UPDATE model_providers SET rate_tokens = least(1.0, rate_tokens"
		"  + greatest(0, CAST(?2 AS BIGINT) - rate_filled_ms) * CAST(?3 AS DOUBLE PRECISION)),"
		" rate_filled_ms = greatest(rate_filled_ms, CAST(?2 AS BIGINT))"
		" WHERE id = ?1 RETURNING rate_tokens";
	struct stmt *s;
	int rc;

	*tokens = 0;
	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, provider_id);
	stmt_bind_int64(s, 2, now_ms);
	stmt_bind_double(s, 3, per_ms);
	if ((rc = stmt_step(s)) == STMT_ROW)
		*tokens = stmt_column_double(s, 0);
	stmt_reset(s);
	return rc == STMT_ROW ? 0 : -1;
}

int
store_rate_take(struct store *st, const char *provider_id, int n)
{
	static const char sql[] =
		"UPDATE model_providers SET rate_tokens = rate_tokens - ?2 WHERE id = ?1";
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, provider_id);
	stmt_bind_int(s, 2, n);
	return store_exec_stmt(st, s);
}

int
store_lease_renew(struct store *st, const char *tokens, int64_t now_ms, int64_t lease_ms)
{
	static const char sql[] =
		"UPDATE generated_images SET lease_until = CAST(?2 AS BIGINT) + ?3"
		" WHERE lease_token = ANY (CAST(?1 AS TEXT[])) AND status = 'processing'";
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, tokens);
	stmt_bind_int64(s, 2, now_ms);
	stmt_bind_int64(s, 3, lease_ms);
	if (store_exec_stmt(st, s) < 0)
		return -1;
	return (int)store_changes(st);
}

int
store_lease_hold(struct store *st, const char *image_id, const char *token)
{
	static const char sql[] =
		"SELECT 1 FROM generated_images WHERE id = ? AND lease_token = ?"
		" AND status = 'processing' FOR UPDATE";
	struct stmt *s;
	int rc;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, image_id);
	store_bind_text(s, 2, token);
	rc = stmt_step(s);
	stmt_reset(s);
	return rc == STMT_ROW ? 1 : rc == STMT_DONE ? 0 : -1;
}

/* Rows another instance holds locked (it is writing them) are skipped:
 * the rescue never waits, and never takes a row whose owner is recording
 * its result. */
int
store_rescue(struct store *st, int64_t now_ms)
{
	static const char sql[] =
		"UPDATE generated_images SET status = 'pending', lease_owner = NULL,"
		" lease_token = NULL, lease_until = NULL, updated_at = ?2"
		" WHERE id IN (SELECT id FROM generated_images WHERE status = 'processing'"
		"  AND lease_until < ?1 FOR UPDATE SKIP LOCKED)";
	char now[32];
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_now(now);
	stmt_bind_int64(s, 1, now_ms);
	store_bind_text(s, 2, now);
	if (store_exec_stmt(st, s) < 0)
		return -1;
	return (int)store_changes(st);
}

/* An UPDATE of sql with ?1 the key and ?2 now: the rows it changed. */
static int
update_key_now(struct store *st, const char *sql, const char *key)
{
	char now[32];
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_now(now);
	store_bind_text(s, 1, key);
	store_bind_text(s, 2, now);
	if (store_exec_stmt(st, s) < 0)
		return -1;
	return (int)store_changes(st);
}

int
store_release_owner(struct store *st, const char *owner)
{
	static const char sql[] =
		"UPDATE generated_images SET status = 'pending', lease_owner = NULL,"
		" lease_token = NULL, lease_until = NULL, updated_at = ?2"
		" WHERE lease_owner = ?1 AND status = 'processing'";
	return update_key_now(st, sql, owner);
}

int
store_image_ready_at(struct store *st, const char *image_id, int64_t ready_ms)
{
	static const char sql[] = "UPDATE generated_images SET ready_at = ? WHERE id = ?";
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	stmt_bind_int64(s, 1, ready_ms);
	store_bind_text(s, 2, image_id);
	return store_exec_stmt(st, s);
}

/* --- a run's counters and end --- */

int64_t
store_event_append_next(struct store *st, const char *run_id, const char *type, const char *body)
{
	/* One round trip: the counter, and the event with its seq written
	 * into the envelope's "seq":0 (the body starts {"type":"...","seq":0,
	 * as events_emit makes it). */
	static const char sql[] =
		"WITH s AS (UPDATE runs SET last_seq = last_seq + 1 WHERE id = ?1"
		"  RETURNING last_seq)"
		" INSERT INTO run_events (run_id, seq, type, body)"
		" SELECT ?1, s.last_seq, ?2,"
		"  regexp_replace(?3, '^(\\{\"type\":\"[a-z_]+\",\"seq\":)0,',"
		"  '\\1' || s.last_seq || ',') FROM s RETURNING seq";
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, run_id);
	store_bind_text(s, 2, type);
	store_bind_text(s, 3, body);
	return store_exec_int64(st, s);
}

int
store_run_begun(struct store *st, const char *run_id, const char *image_id)
{
	/* Storyboards begun, once each, whichever instance began them. */
	static const char sql[] =
		"WITH b AS (UPDATE generated_images SET begun = 1 WHERE id = ?2 AND begun = 0"
		"  RETURNING 1)"
		" UPDATE runs SET started = started + (SELECT count(*) FROM b) WHERE id = ?1"
		" RETURNING started";
	struct stmt *s;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, run_id);
	store_bind_text(s, 2, image_id);
	return (int)store_exec_int64(st, s);
}

int
store_run_tally(struct store *st, const char *run_id, struct store_tally *t)
{
	static const char sql[] =
		"SELECT count(*) FILTER (WHERE status = 'completed'),"
		" count(*) FILTER (WHERE status = 'failed'),"
		" count(*) FILTER (WHERE status = 'pending'),"
		" count(*) FILTER (WHERE status = 'processing'),"
		" (SELECT cancel_requested FROM runs WHERE id = ?1)"
		" FROM generated_images WHERE run_id = ?1 AND is_primary = 1";
	struct stmt *s;
	int rc;

	memset(t, 0, sizeof(*t));
	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, run_id);
	if ((rc = stmt_step(s)) == STMT_ROW) {
		t->completed = stmt_column_int(s, 0);
		t->failed = stmt_column_int(s, 1);
		t->pending = stmt_column_int(s, 2);
		t->processing = stmt_column_int(s, 3);
		t->cancel_requested = stmt_column_int(s, 4) != 0;
	}
	stmt_reset(s);
	return rc == STMT_ROW ? 0 : -1;
}

json_t *
store_run_completed_ids(struct store *st, const char *run_id)
{
	static const char sql[] =
		"SELECT g.id FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"
		" WHERE g.run_id = ? AND g.is_primary = 1 AND g.status = 'completed'"
		" ORDER BY g.updated_at, s.position";
	return store_texts(st, sql, run_id);
}

int
store_run_end_claim(struct store *st, const char *run_id)
{
	/* The one instance that ends a run: whoever marks it first. */
	static const char sql[] =
		"UPDATE runs SET finished_at = ?2 WHERE id = ?1"
		" AND status IN ('processing', 'queued')"
		" AND finished_at IS NULL";
	return update_key_now(st, sql, run_id);
}

int
store_run_activate_next(struct store *st, char id[37])
{
	/* Oldest first, as a lone instance takes them; one cancelled while
	 * queued starts too, to end at once. */
	static const char sql[] =
		"UPDATE runs SET status = 'processing' WHERE id = ("
		"  SELECT id FROM runs WHERE status = 'queued' ORDER BY started_at, id"
		"  LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id";
	struct stmt *s;
	int rc;

	id[0] = '\0';
	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	if ((rc = stmt_step(s)) == STMT_ROW)
		snprintf(id, 37, "%s", store_column_text(s, 0));
	stmt_reset(s);
	return rc == STMT_ROW ? 1 : rc == STMT_DONE ? 0 : -1;
}

int
store_run_cancel_request(struct store *st, const char *run_id)
{
	static const char sql[] =
		"UPDATE runs SET cancel_requested = 1 WHERE id = ?1"
		" AND status IN ('processing', 'queued')"
		" RETURNING pg_notify('t2i_events', ?1 || ':cancel')";
	struct stmt *s;
	int rc;

	if (pg_only(st) < 0 || (s = store_stmt(st, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, run_id);
	while ((rc = stmt_step(s)) == STMT_ROW)
		;
	stmt_reset(s);
	return rc == STMT_DONE ? 0 : -1;
}
