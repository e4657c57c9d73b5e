/* http_conn: the connections of the HTTP server: the listening socket, who
 * may connect, and how long a client may take to send a request.
 *
 * The service accepts connections itself and hands each to libmicrohttpd
 * (MHD_add_connection).  MHD's own limits cannot be told apart nor counted:
 * both close a connection they refuse without a word (the same log text for
 * either), and at the total limit MHD stops accepting, so that clients wait
 * in the kernel's backlog behind the ones that hold the service.  Here a
 * connection over http.max_connections, or over
 * http.max_connections_per_ip for its address (addrmap.h), is answered 503
 * and closed, counted by reason, and warned about once a minute.
 *
 * MHD's timeout counts from the last byte received, so a client that sends
 * one byte of its request every few seconds holds its connection for ever
 * (slowloris).  Each connection here has a deadline instead: its first
 * request must be complete (head and body) within http.request_timeout of
 * the connection, a later one within request_timeout of its request line,
 * and that line must come within HTTP_IDLE_S + request_timeout of the
 * previous answer (an idle client is closed by MHD at HTTP_IDLE_S; only one
 * that trickles a request line meets this deadline).  At the deadline the
 * client is told 408 if nothing was answered yet, and the connection ends.
 * Deadlines of one kind are all the same length from when they were set,
 * so each kind is a list in deadline order (a connection re-armed goes to
 * the end): arming and checking are O(1). */
#ifndef T2I_HTTP_CONN_H
#define T2I_HTTP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addrmap.h"
#include "http_log.h"

#define HTTP_IDLE_S 120		/* MHD's timeout: idle, or an answer that does not drain */

struct http_conn;

/* A list of connections whose deadlines are delay_ms after being armed. */
struct http_dlist {
	struct http_conn *head, *tail;
	int64_t delay_ms;
};

/* One TCP connection (MHD's socket context). */
struct http_conn {
	struct http_conn *prev, *next;
	struct http_dlist *on;		/* the list it is on, or NULL */
	int64_t deadline_ms;
	struct addrkey peer;
	int fd;
	void *rq;			/* the server's request in progress, or NULL */
	unsigned requests;		/* request lines seen */
	bool answered;			/* the request in progress has its answer */
};

enum http_refusal { HTTP_REFUSED_TOTAL, HTTP_REFUSED_PER_IP, HTTP_REFUSALS };

struct http_conns {
	int listen_fd;
	unsigned max, per_ip;
	unsigned open;
	struct addrmap peers;		/* n: the address's open connections */
	struct http_dlist req, idle;	/* request deadlines; request line deadlines */
	struct http_throttle refused_log[HTTP_REFUSALS];
	uint64_t refused[HTTP_REFUSALS];
};

/* Binds and listens on "HOST:PORT", "[V6]:PORT", ":PORT" (every IPv4
 * address) or "[::]:PORT" (IPv6 and IPv4); *port is the bound one.  max
 * and per_ip are the limits, request_timeout_s the deadline.  The open-file
 * limit is raised to fit max connections, or max lowered (with a warning)
 * where it cannot be.  -1 with one line in err. */
int http_conn_listen(struct http_conns *c, const char *listen, unsigned max, unsigned per_ip,
		     int request_timeout_s, int *port, char *err, size_t errlen);
/* Stops accepting: the listening socket is closed. */
void http_conn_quiesce(struct http_conns *c);
void http_conn_free(struct http_conns *c);

/* Takes each pending connection, refused or given to add(arg, fd, addr,
 * addrlen), which owns fd from then on. */
void http_conn_accept(struct http_conns *c, int64_t now_ms,
		      void (*add)(void *arg, int fd, const void *addr, size_t addrlen), void *arg);

/* MHD's connection notifications: the record of a new connection (NULL out
 * of memory), and its end. */
struct http_conn *http_conn_started(struct http_conns *c, int fd, const void *addr,
				    size_t addrlen, int64_t now_ms);
void http_conn_closed(struct http_conns *c, struct http_conn *hc);

/* A request line came in: its deadline runs (the first request's runs
 * from the connection). */
void http_conn_request(struct http_conns *c, struct http_conn *hc, int64_t now_ms);
/* The request has its answer: no deadline while it is sent. */
void http_conn_answered(struct http_conns *c, struct http_conn *hc);
/* The request is over: the next request line's deadline runs. */
void http_conn_done(struct http_conns *c, struct http_conn *hc, int64_t now_ms);

/* Milliseconds to the nearest deadline, -1 none. */
int http_conn_timeout_ms(const struct http_conns *c, int64_t now_ms);
/* A connection whose deadline has passed, taken off its list; NULL when
 * none.  http_conn_end then tells the client 408 (unless its request has its
 * answer) and ends the connection: MHD sees it closed at its next run. */
struct http_conn *http_conn_expired(struct http_conns *c, int64_t now_ms);
void http_conn_end(struct http_conn *hc, const char *body);

/* MHD's close of fd will be a reset, discarding what it still has to send:
 * a client that reads nothing must not keep kernel memory once dropped. */
void http_conn_reset(int fd);

#endif
