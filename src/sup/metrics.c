/* metrics: Prometheus text exposition. */
#include "metrics.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Upper bounds in seconds: image generation takes from a second to 15
 * minutes. */
static const double bounds[METRICS_BUCKETS] = { 0.1, 0.5, 1,   2,   5,   10, 30,
						 60,  120, 300, 600, 900, 1800 };
static const char *const run_status[4] = { "completed", "partial", "failed", "cancelled" };
/* The last is where unknown kinds go. */
static const char *const webhook_kinds[METRICS_WEBHOOK_KINDS] = {
	"http", "timeout", "connect", "closed", "tls", "sender", "other"
};

static struct metrics_provider *
provider(struct metrics *m, const char *name)
{
	for (int i = 0; i < m->nprov; i++)
		if (strcmp(m->prov[i].name, name) == 0)
			return &m->prov[i];
	if (m->nprov == METRICS_PROVIDERS_MAX)
		return NULL;
	snprintf(m->prov[m->nprov].name, sizeof(m->prov[0].name), "%s", name);
	return &m->prov[m->nprov++];
}

void
metrics_latency(struct metrics *m, const char *name, double seconds)
{
	struct metrics_provider *p = m != NULL ? provider(m, name) : NULL;

	if (p == NULL)
		return;
	for (int b = 0; b < METRICS_BUCKETS; b++)
		if (seconds <= bounds[b]) {
			p->bucket[b]++;
			break;
		}
	p->count++;
	p->sum += seconds;
}

void
metrics_retry(struct metrics *m, const char *name)
{
	struct metrics_provider *p = m != NULL ? provider(m, name) : NULL;

	if (p != NULL)
		p->retries++;
}

void
metrics_failover(struct metrics *m, const char *name)
{
	struct metrics_provider *p = m != NULL ? provider(m, name) : NULL;

	if (p != NULL)
		p->failovers++;
}

void
metrics_rate_limited(struct metrics *m, const char *name)
{
	struct metrics_provider *p = m != NULL ? provider(m, name) : NULL;

	if (p != NULL)
		p->rate_limited++;
}

void
metrics_run_ended(struct metrics *m, const char *status)
{
	for (int i = 0; m != NULL && i < 4; i++)
		if (strcmp(status, run_status[i]) == 0)
			m->runs_ended[i]++;
}

void
metrics_http(struct metrics *m, int status)
{
	if (m != NULL)
		m->http[status >= 100 && status < 600 ? status / 100 : 0]++;
}

void
metrics_webhook_delivered(struct metrics *m)
{
	if (m != NULL)
		m->webhook_delivered++;
}

void
metrics_webhook_failed(struct metrics *m, const char *kind)
{
	int k = 0;

	while (k < METRICS_WEBHOOK_KINDS - 1 && strcmp(kind, webhook_kinds[k]) != 0)
		k++;
	if (m != NULL)
		m->webhook_failed[k]++;
}

void
metrics_webhook_gave_up(struct metrics *m)
{
	if (m != NULL)
		m->webhook_gave_up++;
}

/* A growing text buffer. */
struct text {
	char *buf;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3)))
put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		char *nb = realloc(t->buf, t->cap * 2 + (size_t)n);

		if (nb == NULL)
			return;
		t->buf = nb;
		t->cap = t->cap * 2 + (size_t)n;
	}
}

static void
render_providers(struct text *t, const struct metrics *m)
{
	put(t, "# HELP t2istage_provider_latency_seconds Time from a worker beginning a "
	       "storyboard to its result.\n# TYPE t2istage_provider_latency_seconds histogram\n");
	for (int i = 0; i < m->nprov; i++) {
		const struct metrics_provider *p = &m->prov[i];
		unsigned long long cum = 0;

		for (int b = 0; b < METRICS_BUCKETS; b++) {
			cum += p->bucket[b];
			put(t, "t2istage_provider_latency_seconds_bucket{provider=\"%s\",le=\"%g\"} "
			       "%llu\n", p->name, bounds[b], cum);
		}
		put(t, "t2istage_provider_latency_seconds_bucket{provider=\"%s\",le=\"+Inf\"} %llu\n",
		    p->name, p->count);
		put(t, "t2istage_provider_latency_seconds_sum{provider=\"%s\"} %.6f\n", p->name,
		    p->sum);
		put(t, "t2istage_provider_latency_seconds_count{provider=\"%s\"} %llu\n", p->name,
		    p->count);
	}
	put(t, "# HELP t2istage_retries_total Attempts retried after a failure.\n"
	       "# TYPE t2istage_retries_total counter\n");
	for (int i = 0; i < m->nprov; i++)
		put(t, "t2istage_retries_total{provider=\"%s\"} %llu\n", m->prov[i].name,
		    m->prov[i].retries);
	put(t, "# HELP t2istage_failovers_total Storyboards moved to the next provider.\n"
	       "# TYPE t2istage_failovers_total counter\n");
	for (int i = 0; i < m->nprov; i++)
		put(t, "t2istage_failovers_total{provider=\"%s\"} %llu\n", m->prov[i].name,
		    m->prov[i].failovers);
	put(t, "# HELP t2istage_rate_limited_total Rate-limited answers of the provider.\n"
	       "# TYPE t2istage_rate_limited_total counter\n");
	for (int i = 0; i < m->nprov; i++)
		put(t, "t2istage_rate_limited_total{provider=\"%s\"} %llu\n", m->prov[i].name,
		    m->prov[i].rate_limited);
}

/* From the spend ledger: what each provider was asked and paid, and how
 * many requests an image took (retries, rate limits and failures count). */
static void
render_spend(struct text *t, struct store *st)
{
	json_t *totals = store_spend_totals(st), *p;
	size_t i;

	put(t, "# HELP t2istage_spend_total Spent at the provider, in its unit (cost per "
	       "request).\n# TYPE t2istage_spend_total counter\n");
	json_array_foreach(totals, i, p)
		put(t, "t2istage_spend_total{provider=\"%s\"} %.6g\n",
		    json_string_value(json_object_get(p, "provider")),
		    json_real_value(json_object_get(p, "spent")));
	put(t, "# HELP t2istage_requests_total Requests handed to the provider.\n"
	       "# TYPE t2istage_requests_total counter\n");
	json_array_foreach(totals, i, p)
		put(t, "t2istage_requests_total{provider=\"%s\"} %lld\n",
		    json_string_value(json_object_get(p, "provider")),
		    (long long)json_integer_value(json_object_get(p, "requests")));
	put(t, "# HELP t2istage_requests_per_image Requests per image the provider delivered.\n"
	       "# TYPE t2istage_requests_per_image gauge\n");
	json_array_foreach(totals, i, p) {
		json_int_t images = json_integer_value(json_object_get(p, "images"));

		if (images > 0)
			put(t, "t2istage_requests_per_image{provider=\"%s\"} %.4g\n",
			    json_string_value(json_object_get(p, "provider")),
			    (double)json_integer_value(json_object_get(p, "requests")) /
				    (double)images);
	}
	json_decref(totals);
}

static void
render_images(struct text *t, struct store *st)
{
	static const char *const statuses[] = { "pending", "processing", "completed", "failed" };
	json_t *counts = store_query_image_counts(st);

	put(t, "# HELP t2istage_images Generated image rows by status.\n"
	       "# TYPE t2istage_images gauge\n");
	for (size_t i = 0; i < 4; i++)
		put(t, "t2istage_images{status=\"%s\"} %lld\n", statuses[i],
		    (long long)json_integer_value(json_object_get(counts, statuses[i])));
	json_decref(counts);
}

static void
render_webhooks(struct text *t, const struct metrics *m, struct store *st)
{
	put(t, "# HELP t2istage_webhook_deliveries_total Webhook deliveries answered 2xx.\n"
	       "# TYPE t2istage_webhook_deliveries_total counter\n"
	       "t2istage_webhook_deliveries_total %llu\n", m->webhook_delivered);
	put(t, "# HELP t2istage_webhook_failures_total Webhook attempts that failed, by why.\n"
	       "# TYPE t2istage_webhook_failures_total counter\n");
	for (int k = 0; k < METRICS_WEBHOOK_KINDS; k++)
		put(t, "t2istage_webhook_failures_total{kind=\"%s\"} %llu\n", webhook_kinds[k],
		    m->webhook_failed[k]);
	put(t, "# HELP t2istage_webhook_gave_up_total Webhook deliveries given up "
	       "(webhook_retry_for passed).\n# TYPE t2istage_webhook_gave_up_total counter\n"
	       "t2istage_webhook_gave_up_total %llu\n", m->webhook_gave_up);
	put(t, "# HELP t2istage_webhook_queue Webhook deliveries not yet delivered nor given up.\n"
	       "# TYPE t2istage_webhook_queue gauge\nt2istage_webhook_queue %ld\n",
	    store_webhook_pending(st, NULL, INT64_MAX));
}

char *
metrics_render(const struct metrics *m, struct store *st, int busy, int max_workers,
	       const struct metrics_runs *runs)
{
	struct text t = { malloc(4096), 0, 4096 };

	if (t.buf == NULL)
		return NULL;
	t.buf[0] = '\0';
	put(&t, "# HELP t2istage_runs_started_total Runs started.\n"
		"# TYPE t2istage_runs_started_total counter\nt2istage_runs_started_total %llu\n",
	    m->runs_started);
	put(&t, "# HELP t2istage_runs_total Runs ended, by outcome.\n"
		"# TYPE t2istage_runs_total counter\n");
	for (int i = 0; i < 4; i++)
		put(&t, "t2istage_runs_total{status=\"%s\"} %llu\n", run_status[i],
		    m->runs_ended[i]);
	put(&t, "# HELP t2istage_runs_active Runs in progress.\n# TYPE t2istage_runs_active gauge\n"
		"t2istage_runs_active %zu\n", runs->active);
	put(&t, "# HELP t2istage_runs_queued Runs accepted, waiting for room.\n"
		"# TYPE t2istage_runs_queued gauge\nt2istage_runs_queued %zu\n", runs->queued);
	put(&t, "# HELP t2istage_workers_busy Worker processes running.\n"
		"# TYPE t2istage_workers_busy gauge\nt2istage_workers_busy %d\n"
		"# HELP t2istage_workers_max Configured workers.max.\n"
		"# TYPE t2istage_workers_max gauge\nt2istage_workers_max %d\n", busy, max_workers);
	render_images(&t, st);
	render_providers(&t, m);
	render_spend(&t, st);
	put(&t, "# HELP t2istage_http_requests_total HTTP requests by status class.\n"
		"# TYPE t2istage_http_requests_total counter\n");
	for (int c = 1; c <= 5; c++)
		put(&t, "t2istage_http_requests_total{code=\"%dxx\"} %llu\n", c, m->http[c]);
	render_webhooks(&t, m, st);
	return t.buf;
}
