/* post_curl: the webhook sender's HTTP client, with libcurl's multi
 * interface: many POSTs at once in one thread, so that a receiver that
 * hangs holds up only its own deliveries.  A module (see src/proc/module.h)
 * because linking libcurl into the binary cost every start ~24 ms; only the
 * webhook sender loads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "curl_policy.h"
#include "module_abi.h"

extern const struct module_post_ops t2i_post_ops;

struct transfer {
	struct transfer *prev, *next;	/* the transfers in progress */
	CURL *h;
	struct curl_slist *headers;
	char *body;
	unsigned long long tag;
	char errbuf[CURL_ERROR_SIZE];
};

struct module_post {
	CURLM *multi;
	struct transfer *head;
};

static struct module_post *
post_open(void)
{
	struct module_post *p = calloc(1, sizeof(*p));

	if (p == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (p->multi = curl_multi_init()) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

/* The answer's body is not ours to read: only its status counts. */
static size_t
discard(char *ptr, size_t size, size_t n, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * n;
}

static void
transfer_unlink(struct module_post *p, struct transfer *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		p->head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	curl_multi_remove_handle(p->multi, t->h);
}

static void
transfer_free(struct transfer *t)
{
	if (t->h != NULL)
		curl_easy_cleanup(t->h);
	curl_slist_free_all(t->headers);
	free(t->body);
	free(t);
}

static void
transfer_options(struct transfer *t, const char *url, size_t len, double connect_timeout_s,
		 double timeout_s)
{
	CURL *h = t->h;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_policy_apply(h, connect_timeout_s, timeout_s);
	curl_easy_setopt(h, CURLOPT_USERAGENT, CURL_POLICY_USERAGENT " (webhook)");
	/* A redirect is an answer other than 2xx: it is retried, not followed. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, t->body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(h, CURLOPT_PRIVATE, t);
}

static int
post_add(struct module_post *p, unsigned long long tag, const char *url,
	 const char *const *headers, size_t nheaders, const char *body, size_t len,
	 double connect_timeout_s, double timeout_s, char *err, size_t errlen)
{
	struct transfer *t = calloc(1, sizeof(*t));
	struct curl_slist *l;

	if (t == NULL || (t->h = curl_easy_init()) == NULL || (t->body = malloc(len + 1)) == NULL)
		goto fail;
	memcpy(t->body, body, len);
	t->body[len] = '\0';
	t->tag = tag;
	/* No "Expect: 100-continue": a receiver need not know it. */
	for (size_t i = 0; i <= nheaders; i++) {
		if ((l = curl_slist_append(t->headers, i < nheaders ? headers[i] : "Expect:")) == NULL)
			goto fail;
		t->headers = l;
	}
	transfer_options(t, url, len, connect_timeout_s, timeout_s);
	if (curl_multi_add_handle(p->multi, t->h) != CURLM_OK)
		goto fail;
	if ((t->next = p->head) != NULL)
		t->next->prev = t;
	p->head = t;
	return 0;
fail:
	snprintf(err, errlen, "curl: cannot start a transfer");
	if (t != NULL)
		transfer_free(t);
	return -1;
}

static int
post_wait(struct module_post *p, struct pollfd *extra, unsigned n, int timeout_ms)
{
	struct curl_waitfd w[4];
	int running;

	if (n > sizeof(w) / sizeof(w[0]))
		return -1;
	for (unsigned i = 0; i < n; i++)
		w[i] = (struct curl_waitfd){ .fd = extra[i].fd, .events = extra[i].events };
	if (curl_multi_poll(p->multi, w, n, timeout_ms, NULL) != CURLM_OK)
		return -1;
	for (unsigned i = 0; i < n; i++)
		extra[i].revents = w[i].revents;
	return curl_multi_perform(p->multi, &running) == CURLM_OK ? 0 : -1;
}

/* The kinds of failure /metrics counts. */
static const char *
failure_kind(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return "connect";
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return "closed";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
		return "tls";
	default:
		return "other";
	}
}

static int
post_result(struct module_post *p, struct module_post_result *out)
{
	struct transfer *t = NULL;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(p->multi, &left)) != NULL && m->msg != CURLMSG_DONE)
		;
	if (m == NULL)
		return 0;
	curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
	memset(out, 0, sizeof(*out));
	out->tag = t->tag;
	curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &out->status);
	if (m->data.result != CURLE_OK) {
		out->kind = failure_kind(m->data.result);
		snprintf(out->error, sizeof(out->error), "%s",
			 t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(m->data.result));
		out->status = 0;
	} else if (out->status < 200 || out->status > 299) {
		out->kind = "http";
		snprintf(out->error, sizeof(out->error), "answered HTTP %ld", out->status);
	}
	transfer_unlink(p, t);
	transfer_free(t);
	return 1;
}

static void
post_close(struct module_post *p)
{
	if (p == NULL)
		return;
	/* The whole list goes: no need to relink it one transfer at a time. */
	for (struct transfer *t = p->head, *next; t != NULL; t = next) {
		next = t->next;
		curl_multi_remove_handle(p->multi, t->h);
		transfer_free(t);
	}
	p->head = NULL;
	curl_multi_cleanup(p->multi);
	free(p);
}

const struct module_post_ops t2i_post_ops = {
	.open = post_open,
	.add = post_add,
	.wait = post_wait,
	.result = post_result,
	.close = post_close,
};
