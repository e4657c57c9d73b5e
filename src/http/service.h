/* service: `t2istage serve`.  Owns the configuration generation, the store,
 * the supervisor and the HTTP server, and gives the HTTP layer what it may
 * do: import projects, start and cancel runs, read events.  Everything runs
 * in the supervisor's loop, in one thread. */
#ifndef T2I_SERVICE_H
#define T2I_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct service;
struct store;
struct config;
struct run;

int cmd_serve_main(const char *conf_path, int verbose);

struct store *service_store(struct service *sv);
const struct config *service_config(struct service *sv);

/* Each returns an HTTP status: 201/202 on success, else 400, 404, 409, 413,
 * 422 or 500 with one line in err. */
int service_import(struct service *sv, const char *body, size_t len, char project_id[37],
		   char *err, size_t errlen);
int service_start(struct service *sv, const char *project_id, json_t *storyboard_ids,
		  bool no_cache, char run_id[37], char *err, size_t errlen);
int service_cancel(struct service *sv, const char *project_id, char run_id[37], char *err,
		   size_t errlen);

/* The run with this id is in memory and has not sent `done` yet. */
bool service_run_live(struct service *sv, const char *run_id);

/* Prometheus text exposition, malloc'd. */
char *service_metrics(struct service *sv);

/* Called by the HTTP layer for its access log and metrics. */
void service_count_request(struct service *sv, int status);

#endif
