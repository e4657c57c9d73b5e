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

struct http_routes;
struct spawner;
struct sse;
struct urlsig;

/* Loads the configuration (conf_path NULL: built-in defaults), opens the
 * store, and starts the supervisor and the HTTP server with routes, whose
 * handlers get this service as their argument.  Workers are forked by sp.
 * On error NULL and one line in err. */
struct service *service_new(const char *conf_path, struct spawner *sp,
			    const struct http_routes *routes, char *err, size_t errlen);
/* Resumes the runs a previous process left, says READY, and serves until a
 * stop signal. */
void service_run(struct service *sv);
void service_free(struct service *sv);

struct store *service_store(struct service *sv);
struct sse *service_sse(struct service *sv);
const struct urlsig *service_urlsig(struct service *sv);
/* A token is configured: /v1 needs it (the dashboard asks for it). */
bool service_token_required(struct service *sv);
/* The run is in memory and has not sent `done` yet (an sse_live_fn). */
bool service_run_live(void *sv, const char *run_id);

/* Each returns an HTTP status: 200/201/202 on success, else 400, 404, 409,
 * 413, 422, 500 or 503 (out of memory) with one line in err.  Nothing
 * changes on a refusal. */
int service_import(struct service *sv, const char *body, size_t len, char project_id[37],
		   char *err, size_t errlen);
/* *queued: the run waits for room (status 'queued') rather than starting. */
int service_start(struct service *sv, const char *project_id, json_t *storyboard_ids,
		  bool no_cache, bool only_missing, char run_id[37], bool *queued, char *err,
		  size_t errlen);
int service_cancel(struct service *sv, const char *project_id, char run_id[37], char *err,
		   size_t errlen);

/* PATCH of a storyboard's image_prompt, negative_prompt, params (the body);
 * 409 while a run of the project is processing. */
int service_patch_storyboard(struct service *sv, const char *project_id,
			     const char *storyboard_id, const char *body, size_t len, char *err,
			     size_t errlen);
/* The project, its rows and the image files no other project uses (their
 * number in *files_removed); 409 while a run of it is processing. */
int service_delete_project(struct service *sv, const char *project_id, int *files_removed,
			   char *err, size_t errlen);

/* Prometheus text exposition, malloc'd. */
char *service_metrics(struct service *sv);

/* Called by the HTTP layer for its access log and metrics. */
void service_count_request(struct service *sv, int status);

#endif
