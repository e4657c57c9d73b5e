/* http_metrics: the HTTP server's counters and gauges, as Prometheus text
 * appended to /metrics (service.c joins them to the supervisor's). */
#include <stdio.h>
#include <stdlib.h>

#include "http_internal.h"

static const char *const refused_reason[HTTP_REFUSED_KINDS] = {
	"request_timeout", "max_body_memory", "framing", "host"
};

char *
http_metrics(const struct http *h)
{
	const struct http_conns *c = &h->conns;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	fprintf(f, "# HELP t2istage_http_connections HTTP connections open.\n"
		   "# TYPE t2istage_http_connections gauge\nt2istage_http_connections %u\n"
		   "# HELP t2istage_http_connections_refused_total Connections answered 503 and"
		   " closed, by the limit they met.\n"
		   "# TYPE t2istage_http_connections_refused_total counter\n"
		   "t2istage_http_connections_refused_total{reason=\"max_connections\"} %llu\n"
		   "t2istage_http_connections_refused_total{reason=\"max_connections_per_ip\"}"
		   " %llu\n", c->open, (unsigned long long)c->refused[HTTP_REFUSED_TOTAL],
		(unsigned long long)c->refused[HTTP_REFUSED_PER_IP]);
	fprintf(f, "# HELP t2istage_http_requests_refused_total Requests refused before any"
		   " route: 408 request_timeout, 503 max_body_memory, 400 framing, 421 host.\n"
		   "# TYPE t2istage_http_requests_refused_total counter\n");
	for (int k = 0; k < HTTP_REFUSED_KINDS; k++)
		fprintf(f, "t2istage_http_requests_refused_total{reason=\"%s\"} %llu\n",
			refused_reason[k], (unsigned long long)h->refused[k]);
	fprintf(f, "# HELP t2istage_http_streams_stalled_total Event streams dropped after"
		   " http.sse_stall_timeout without progress.\n"
		   "# TYPE t2istage_http_streams_stalled_total counter\n"
		   "t2istage_http_streams_stalled_total %llu\n"
		   "# HELP t2istage_http_body_bytes Bytes of request bodies held now.\n"
		   "# TYPE t2istage_http_body_bytes gauge\nt2istage_http_body_bytes %zu\n",
		(unsigned long long)h->streams_stalled, h->bodies);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
