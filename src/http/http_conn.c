/* http_conn: the connections of the HTTP server (see http_conn.h). */
#include "http_conn.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define ACCEPTS_PER_RUN 64	/* connections taken per loop iteration */
/* Descriptors of the supervisor's own besides connections: workers' pipes
 * (two per worker, up to 256 workers), the database, the log, the spawner. */
#define FDS_RESERVED 1024
#define FDS_PER_CONNECTION 2	/* its socket, and a file it is sent */

/* --- the listening socket --- */

/* "HOST:PORT", "[V6]:PORT" or ":PORT" into ss; *dual when it is [::]. */
static int
parse_listen(const char *listen, struct sockaddr_storage *ss, bool *dual, char *err,
	     size_t errlen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai;
	char *end = NULL;
	long port = colon != NULL && isdigit((unsigned char)colon[1])
			    ? strtol(colon + 1, &end, 10) : -1;
	size_t hl;
	int rc;

	if (port < 0 || port > 65535 || *end != '\0') {
		snprintf(err, errlen, "http.listen '%s': expected HOST:PORT", listen);
		return -1;
	}
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		listen++;
		hl -= 2;
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	}
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "http.listen '%s': host too long", listen);
		return -1;
	}
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (hl == 0)
		snprintf(host, sizeof(host), "0.0.0.0");
	if ((rc = getaddrinfo(host, NULL, &hints, &ai)) != 0) {
		snprintf(err, errlen, "http.listen '%s': %s", host, gai_strerror(rc));
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_port = htons((uint16_t)port);
		*dual = memcmp(&s6->sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0;
	} else {
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*dual = false;
	}
	return 0;
}

static int
bound_port(int fd)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u = { 0 };
	socklen_t len = sizeof(u);

	if (getsockname(fd, &u.sa, &len) < 0)
		return -1;
	return ntohs(u.sa.sa_family == AF_INET6 ? u.in6.sin6_port : u.in.sin_port);
}

static int
open_listener(const char *addr, int *port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	bool dual;
	int fd, on = 1, v6only = 0;
	socklen_t len;

	if (parse_listen(addr, &ss, &dual, err, errlen) < 0)
		return -1;
	len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &v6only : &on, sizeof(on)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0 ||
	    (*port = bound_port(fd)) < 0) {
		snprintf(err, errlen, "http.listen %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The open-file limit must hold max connections besides the supervisor's
 * own descriptors: the soft limit is raised to it (as any process may, up to
 * the hard limit), else max is lowered to what fits. */
static unsigned
fit_fd_limit(unsigned max)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)max * FDS_PER_CONNECTION + FDS_RESERVED;
	unsigned fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return max;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur >= need)
		return max;
	fit = rl.rlim_cur > FDS_RESERVED + 2 * FDS_PER_CONNECTION
		      ? (unsigned)((rl.rlim_cur - FDS_RESERVED) / FDS_PER_CONNECTION) : 2;
	log_warnx("http.max_connections %u lowered to %u: the open-file limit is %llu"
		  " (LimitNOFILE=; %u connections need %llu)", max, fit,
		  (unsigned long long)rl.rlim_cur, max, (unsigned long long)need);
	return fit;
}

int
http_conn_listen(struct http_conns *c, const char *listen, unsigned max, unsigned per_ip,
		 int request_timeout_s, int *port, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->listen_fd = -1;
	c->max = fit_fd_limit(max);
	c->per_ip = per_ip < c->max ? per_ip : c->max;
	c->req.delay_ms = (int64_t)request_timeout_s * 1000;
	c->idle.delay_ms = ((int64_t)HTTP_IDLE_S + request_timeout_s) * 1000;
	if (addrmap_init(&c->peers, c->max) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((c->listen_fd = open_listener(listen, port, err, errlen)) < 0)
		return -1;
	return 0;
}

void
http_conn_quiesce(struct http_conns *c)
{
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	c->listen_fd = -1;
}

void
http_conn_free(struct http_conns *c)
{
	http_conn_quiesce(c);
	addrmap_free(&c->peers);
}

/* --- refusing --- */

static const char *const refusal_key[HTTP_REFUSALS] = {
	"http.max_connections", "http.max_connections_per_ip"
};

/* Warned about once, then summed up once a minute while it goes on. */
static void
warn_refused(struct http_conns *c, enum http_refusal why, const struct addrkey *peer,
	     int64_t now)
{
	char a[ADDRKEY_TEXT];
	uint64_t count = 0;

	switch (http_throttle_hit(&c->refused_log[why], now, &count)) {
	case HTTP_THROTTLE_LINE:
		addrkey_text(peer, a);
		if (why == HTTP_REFUSED_TOTAL)
			log_warnx("http: refusing connections (from %s and others): %u open, the"
				  " limit of %s", a, c->open, refusal_key[why]);
		else
			log_warnx("http: refusing connections from %s: it has %u open, the limit"
				  " of %s", a, c->per_ip, refusal_key[why]);
		break;
	case HTTP_THROTTLE_SUMMARY:
		log_warnx("http: refused %llu more connections in the last %d s (%s)",
			  (unsigned long long)count, HTTP_LOG_INTERVAL_MS / 1000, refusal_key[why]);
		break;
	default:
		break;
	}
}

/* A short 503 and the end.  What the client sent is read first: closing a
 * socket with unread bytes resets it, and the client would lose the 503. */
static void
refuse(int fd, enum http_refusal why)
{
	char buf[4096], msg[256];
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
			 "Retry-After: 1\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n{\"error\":\"too many connections (%s)\"}\n",
			 strlen("{\"error\":\"too many connections ()\"}\n") +
				 strlen(refusal_key[why]), refusal_key[why]);

	for (int i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	if (send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		shutdown(fd, SHUT_WR);
	close(fd);
}

void
http_conn_accept(struct http_conns *c, int64_t now,
		 void (*add)(void *arg, int fd, const void *addr, size_t addrlen), void *arg)
{
	for (int i = 0; c->listen_fd >= 0 && i < ACCEPTS_PER_RUN; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct addrkey k;
		struct addrmap_entry *e;
		int fd = accept4(c->listen_fd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		enum http_refusal why = HTTP_REFUSALS;

		if (fd < 0) {
			/* EMFILE and the like pass: the next iteration retries. */
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("http: accept");
			return;
		}
		addrkey_of(&k, (struct sockaddr *)&ss, len);
		if (c->open >= c->max)
			why = HTTP_REFUSED_TOTAL;
		else if ((e = addrmap_get(&c->peers, &k)) != NULL && e->n >= c->per_ip)
			why = HTTP_REFUSED_PER_IP;
		if (why != HTTP_REFUSALS) {
			c->refused[why]++;
			warn_refused(c, why, &k, now);
			refuse(fd, why);
			continue;
		}
		add(arg, fd, &ss, len);
	}
}

/* --- the records --- */

static void
dlist_remove(struct http_conn *hc)
{
	struct http_dlist *l = hc->on;

	if (l == NULL)
		return;
	if (hc->prev != NULL)
		hc->prev->next = hc->next;
	else
		l->head = hc->next;
	if (hc->next != NULL)
		hc->next->prev = hc->prev;
	else
		l->tail = hc->prev;
	hc->prev = hc->next = NULL;
	hc->on = NULL;
}

static void
dlist_arm(struct http_dlist *l, struct http_conn *hc, int64_t now)
{
	dlist_remove(hc);
	hc->deadline_ms = now + l->delay_ms;
	hc->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = hc;
	else
		l->head = hc;
	l->tail = hc;
	hc->on = l;
}

struct http_conn *
http_conn_started(struct http_conns *c, int fd, const void *addr, size_t addrlen, int64_t now)
{
	struct http_conn *hc = calloc(1, sizeof(*hc));
	struct addrmap_entry *e;

	if (hc == NULL)
		return NULL;
	hc->fd = fd;
	addrkey_of(&hc->peer, addr, addrlen);
	/* The map holds max entries, and at most max connections are open. */
	if ((e = addrmap_add(&c->peers, &hc->peer)) != NULL)
		e->n++;
	c->open++;
	dlist_arm(&c->req, hc, now);
	return hc;
}

void
http_conn_closed(struct http_conns *c, struct http_conn *hc)
{
	struct addrmap_entry *e = addrmap_get(&c->peers, &hc->peer);

	if (e != NULL && --e->n == 0)
		addrmap_del(&c->peers, e);
	c->open--;
	dlist_remove(hc);
	free(hc);
}

void
http_conn_request(struct http_conns *c, struct http_conn *hc, int64_t now)
{
	hc->answered = false;
	/* The first request's deadline runs from the connection: a client
	 * that trickles its first line meets it too. */
	if (hc->requests++ > 0 || hc->on != &c->req)
		dlist_arm(&c->req, hc, now);
}

void
http_conn_answered(struct http_conns *c, struct http_conn *hc)
{
	(void)c;
	hc->answered = true;
	dlist_remove(hc);
}

void
http_conn_done(struct http_conns *c, struct http_conn *hc, int64_t now)
{
	hc->rq = NULL;
	hc->answered = false;	/* a trickled next request is told 408 too */
	dlist_arm(&c->idle, hc, now);
}

/* --- deadlines --- */

int
http_conn_timeout_ms(const struct http_conns *c, int64_t now)
{
	const struct http_dlist *lists[] = { &c->req, &c->idle };
	int64_t best = -1;

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		const struct http_conn *hc = lists[i]->head;

		if (hc != NULL && (best < 0 || hc->deadline_ms - now < best))
			best = hc->deadline_ms - now > 0 ? hc->deadline_ms - now : 0;
	}
	return best > INT32_MAX ? INT32_MAX : (int)best;
}

struct http_conn *
http_conn_expired(struct http_conns *c, int64_t now)
{
	struct http_dlist *lists[] = { &c->req, &c->idle };

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct http_conn *hc = lists[i]->head;

		if (hc != NULL && hc->deadline_ms <= now) {
			dlist_remove(hc);
			return hc;
		}
	}
	return NULL;
}

/* The 408 is written past MHD, which has nothing of its own to send on a
 * connection still reading its request.  What the client sent is read
 * away (unread bytes would turn the close into a reset that loses the 408),
 * and shutdown() wakes MHD, which reads the end and closes. */
void
http_conn_end(struct http_conn *hc, const char *body)
{
	char buf[4096], head[256];
	int n;

	if (!hc->answered) {
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     strlen(body));
		if (send(hc->fd, head, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
			send(hc->fd, body, strlen(body), MSG_DONTWAIT | MSG_NOSIGNAL);
		hc->answered = true;
	}
	for (int i = 0; i < 16 && recv(hc->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	shutdown(hc->fd, SHUT_RDWR);
}

void
http_conn_reset(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}
