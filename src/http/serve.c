/* serve: `t2istage serve`, the one place that puts the service, its HTTP
 * routes and the worker spawner together, so that none of them names the
 * others' callers. */
#include "serve.h"

#include <errno.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "notify.h"
#include "service.h"
#include "spawner.h"

int
cmd_serve_main(const char *conf_path, int verbose)
{
	struct spawner sp = { 0 };
	struct service *sv;
	char err[1024];

	log_init("supervisor", verbose);
	/* Before anything is forked: no child may inherit NOTIFY_SOCKET. */
	notify_init();
	if (spawner_start(&sp) < 0) {
		log_errx("cannot start the worker spawner: %s", strerror(errno));
		return 1;
	}
	if ((sv = service_new(conf_path, &sp, &api_routes, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		spawner_stop(&sp);
		return 1;
	}
	service_run(sv);
	service_free(sv);
	spawner_stop(&sp);
	return 0;
}
