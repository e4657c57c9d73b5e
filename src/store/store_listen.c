/* store_listen: the connection that LISTENs for the other instances'
 * notifications (see store.h).  A store of its own on the same engine, so
 * that a notification never waits behind a statement of the loop's
 * transaction, nor one of those behind it.  Notifications are lost while
 * it is disconnected: store_listen_tick() says when it is back, and the
 * caller then looks at the database itself (as it also does every so
 * often: polling is the backstop). */
#include "store_internal.h"

#include <stdlib.h>

#include "config.h"

struct store_listen {
	struct store st;
	bool was_connected;
};

static int
listen_now(struct store_listen *l)
{
	return pg_exec(&l->st, "LISTEN t2i_events");
}

struct store_listen *
store_listen_open(const struct config *cfg, char *err, size_t errlen)
{
	struct store_listen *l = calloc(1, sizeof(*l));

	if (l == NULL || !cfg->database_pg) {
		free(l);
		return NULL;
	}
	l->st.backend = STORE_PG;
	if ((l->st.pg = pg_open(cfg->database, cfg->database_password, cfg->database_timeout, err,
				errlen)) == NULL) {
		free(l);
		return NULL;
	}
	if (pg_connect_first(&l->st, err, errlen) == 0 && listen_now(l) == 0)
		l->was_connected = true;
	return l;	/* not connected yet: tick() tries again */
}

void
store_listen_close(struct store_listen *l)
{
	if (l == NULL)
		return;
	pg_close(l->st.pg);
	free(l);
}

int
store_listen_fd(const struct store_listen *l)
{
	return l != NULL ? pg_socket(l->st.pg) : -1;
}

int
store_listen_tick(struct store_listen *l)
{
	if (l == NULL)
		return 0;
	if (!pg_lost(l->st.pg) && l->was_connected)
		return 0;
	l->was_connected = false;
	if (pg_reconnect(&l->st) < 0 || listen_now(l) < 0)
		return 0;
	l->was_connected = true;
	return 1;
}

int
store_listen_read(struct store_listen *l, void (*fn)(void *arg, const char *payload), void *arg)
{
	return pg_notifies(&l->st, fn, arg);
}
