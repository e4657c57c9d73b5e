/* metrics: counters and the provider latency histogram behind /metrics, in
 * the Prometheus text format.  Kept in the supervisor's memory (they start
 * at zero with the process, as Prometheus counters may). */
#ifndef T2I_METRICS_H
#define T2I_METRICS_H

#include <stddef.h>

struct store;

#define METRICS_PROVIDERS_MAX 64
#define METRICS_BUCKETS 13
/* Why a webhook attempt failed: http (a non-2xx answer), timeout, connect,
 * closed (the connection dropped), tls, sender (the sender process died),
 * other. */
#define METRICS_WEBHOOK_KINDS 7

struct metrics_provider {
	char name[65];
	unsigned long long bucket[METRICS_BUCKETS];	/* cumulative at render */
	unsigned long long count;
	double sum;
	unsigned long long retries;
	unsigned long long failovers;
	unsigned long long rate_limited;	/* rate-limited answers */
};

struct metrics {
	unsigned long long runs_started;
	unsigned long long runs_ended[4];	/* completed, partial, failed, cancelled */
	unsigned long long http[6];		/* by status class 1xx..5xx, [0] other */
	struct metrics_provider prov[METRICS_PROVIDERS_MAX];
	int nprov;
	unsigned long long webhook_delivered;
	unsigned long long webhook_failed[METRICS_WEBHOOK_KINDS];
	unsigned long long webhook_gave_up;
};

void metrics_latency(struct metrics *m, const char *name, double seconds);
void metrics_retry(struct metrics *m, const char *name);
void metrics_failover(struct metrics *m, const char *name);
void metrics_rate_limited(struct metrics *m, const char *name);
void metrics_run_ended(struct metrics *m, const char *status);
void metrics_http(struct metrics *m, int status);
void metrics_webhook_delivered(struct metrics *m);
void metrics_webhook_failed(struct metrics *m, const char *kind);
void metrics_webhook_gave_up(struct metrics *m);

struct metrics_runs {
	size_t active;		/* processed */
	size_t queued;		/* waiting for room */
};

/* The exposition text (malloc'd), with gauges read now; the spend and
 * request counters come from the spend ledger, so they survive restarts. */
char *metrics_render(const struct metrics *m, struct store *st, int busy_workers,
		     int max_workers, const struct metrics_runs *runs);

#endif
