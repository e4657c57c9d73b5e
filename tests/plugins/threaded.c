/*
 * threaded: a plugin that starts a thread as it is loaded (as some vendor
 * SDKs do).  Forking such a process copies only the forking thread, so the
 * spawner must not keep a template of it: its workers are forked directly,
 * and still succeed like "ok".
 */
#include "common.h"

#include <pthread.h>
#include <unistd.h>

T2I_PLUGIN("threaded", "1.0", "test: starts a thread in its constructor");

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

__attribute__((constructor)) static void start_thread(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, idle, NULL) == 0)
		pthread_detach(t);
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	tp_trace(tp_opts(req), "start", req);
	return tp_end(req, tp_ok(req, host, err));
}
