/* cluster: this instance among several on one PostgreSQL database.
 *
 * Every instance serves every project; none owns a run.  A shared run
 * (run.h) lives in the database, and each instance holds a copy of every
 * run left processing there, found at start, by its notifications and by
 * a periodic look (discovery).  Its generations are claimed, a batch at a
 * time, with one statement of the FOR UPDATE SKIP LOCKED kind
 * (store_claim), under a lease: lease_owner (this instance), lease_token
 * (the batch) and lease_until, which this instance renews every third of
 * cluster.lease for the batches whose workers are alive.  Every write of a result first locks its row under that
 * token (store_lease_hold): a worker whose lease was lost records nothing.
 * Every cluster.rescue_interval each instance takes expired leases back to
 * pending (store_rescue), so that the claims of an instance that died or
 * froze are taken over within lease + rescue_interval; a completed
 * generation is never claimed again, and a provider task checkpointed by
 * the old owner is handed to the new one's worker (store_task), which
 * polls it rather than paying again.
 *
 * Limits: a provider's concurrency is counted over every instance as the
 * batches with live leases, under the provider's row lock (store_claim).
 *
 * Events: a shared run's seq comes from its counter row in the transaction
 * that stores the event (store_event_append_next), so seqs become visible in
 * commit order; each event is announced by NOTIFY (a trigger: "run:seq"),
 * heard on a connection of its own (store_listen), which wakes SSE clients
 * and this instance's copy of the run; SSE polls as well, once a second,
 * for what a lost connection missed.  A run ends once, by whichever
 * instance sees it finished first (store_run_end_claim).
 *
 * A transaction that fails (the database restarted, a lock timed out) may
 * have taken claims with it, of batches whose workers run: such workers
 * are killed and every run is dropped and taken up again from the
 * database (cluster_lost, sup_resync); the leases of the batches lost so
 * are left to expire, as a provider may still be answering a request of a
 * killed worker.
 *
 * At start (cluster_new) an instance refuses, naming the key: another
 * live instance of the same cluster.name; a live instance with other
 * providers; a live instance whose storage.dir marker is not in ours (not
 * one shared filesystem).  An instance of this host whose pid is gone
 * (kill -9, then a restart) has its leases released at once. */
#ifndef T2I_CLUSTER_H
#define T2I_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct config;
struct store;
struct cluster;

/* What a notification was about. */
enum cluster_note { CLUSTER_EVENT, CLUSTER_CANCEL };
typedef void cluster_note_fn(void *arg, const char *run_id, enum cluster_note what);

/* Registers this instance (after the checks above), inside its own
 * transaction, and opens the listening connection.  NULL with one line in
 * err. */
struct cluster *cluster_new(const struct config *cfg, struct store *st, char *err,
			    size_t errlen);
/* A clean stop: this instance's leases are released and its row goes. */
void cluster_free(struct cluster *cl);
void cluster_reconfigure(struct cluster *cl, const struct config *cfg);

const char *cluster_name(const struct cluster *cl);
int64_t cluster_lease_ms(const struct cluster *cl);

/* What the loop is to do after cluster_tick(). */
#define CLUSTER_DISCOVER 1	/* look for runs it does not hold */
#define CLUSTER_RESCUED 2	/* leases were taken over: claim again */
#define CLUSTER_CHECK 4		/* look whether the runs it holds are over */

/* In the loop's first transaction: heartbeat and the renewal of the
 * leases of the batches whose workers are alive (tokens: an array literal,
 * "{t1,t2}"), rescue, the listener's reconnection.  Returns CLUSTER_* bits. */
int cluster_tick(struct cluster *cl, int64_t now, const char *tokens);
/* A transaction failed: every run is looked for again at the next tick. */
void cluster_lost(struct cluster *cl);

/* The listening connection's fd, -1 while it is not connected. */
int cluster_poll_fd(const struct cluster *cl);
/* After poll(): each notification to fn. */
void cluster_ready(struct cluster *cl, cluster_note_fn *fn, void *arg);
/* Monotonic time the loop must wake at, INT64_MAX for none. */
int64_t cluster_wake_at(const struct cluster *cl);

/* The instances alive (heartbeat within the lease), for status and
 * /metrics: [{name, host, pid, heartbeat_ms}].  A new reference. */
json_t *cluster_alive(struct cluster *cl);
/* The same from any store (the CLI's status). */
json_t *cluster_alive_in(struct store *st, double lease_s);

#endif
