/* service: `t2istage serve`, the supervisor with an HTTP API. */
#include "service.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "owner.h"
#include "project.h"
#include "provcheck.h"
#include "resume.h"
#include "run.h"
#include "spawner.h"
#include "spawnmsg.h"
#include "sse.h"
#include "stage.h"
#include "statusfile.h"
#include "store.h"
#include "supervisor.h"
#include "slots.h"
#include "urlsig.h"

struct service {
	const char *conf_path;	/* NULL: built-in defaults */
	struct config *cfg;	/* the current generation */
	struct store *st;
	struct sup *sup;
	struct events ev;
	struct sse *sse;
	struct http *http;
	struct metrics metrics;
	struct spawner *sp;
	struct statusfile status; /* what `t2istage reload` reads */
	bool status_off;	/* it could not be written: not tried again */
	struct urlsig urlsig;	/* the key of signed image URLs */
};

/* Writes the status file in its new state.  Without one `t2istage reload`
 * cannot learn outcomes, which is said once; serving goes on. */
static void
publish(struct service *sv, const char *state)
{
	char err[512];

	snprintf(sv->status.state, sizeof(sv->status.state), "%s", state);
	if (sv->status_off)
		return;
	if (statusfile_write(&sv->status, err, sizeof(err)) < 0) {
		log_info("no status file (%s): `t2istage reload` cannot report reloads; "
			 "set RUNTIME_DIRECTORY to a writable directory", err);
		sv->status_off = true;
	}
}

/* Every configured provider's plugin gets its template (see template.h)
 * now, not at the first batch: the service expects work. */
static void
warm_providers(struct service *sv)
{
	for (size_t i = 0; i < sv->cfg->nproviders; i++) {
		const struct config_provider *p = &sv->cfg->providers[i];

		spawner_warm(sv->sp, p->plugin_path, spawnmsg_flags(sv->cfg->thumbnails),
			     p->concurrency < sv->cfg->workers_max ? p->concurrency
								   : sv->cfg->workers_max);
	}
}

bool
service_token_required(struct service *sv)
{
	return sv->cfg->http_token != NULL;
}

struct store *
service_store(struct service *sv)
{
	return sv->st;
}

struct sse *
service_sse(struct service *sv)
{
	return sv->sse;
}

const struct urlsig *
service_urlsig(struct service *sv)
{
	return &sv->urlsig;
}

void
service_count_request(struct service *sv, int status)
{
	metrics_http(&sv->metrics, status);
}

/* The run with this id is in memory and has not sent `done` yet. */
bool
service_run_live(void *arg, const char *run_id)
{
	struct service *sv = arg;
	json_t *row = store_query_run(sv->st, run_id);
	bool live = false;

	/* Several instances: any of them may be running it; the database
	 * says, and its `done` is committed with its end. */
	if (sv->cfg->database_pg) {
		json_t *v = store_query_run_view(sv->st, run_id);

		live = v != NULL && strcmp(json_string_value(json_object_get(v, "status")),
					   "processing") == 0;
		json_decref(v);
		json_decref(row);
		return live;
	}
	/* In memory means not finished; ask the supervisor by project. */
	if (row != NULL) {
		struct run *r = sup_project_run(
			sv->sup, json_string_value(json_object_get(row, "project_id")));

		live = r != NULL && strcmp(r->id, run_id) == 0 && !r->finished;
	}
	json_decref(row);
	return live;
}

/* PostgreSQL: what the engine measured of its round trips (store_pg.c):
 * the longest wait is what the loop was held for at most. */
static char *
db_metrics(struct service *sv, char *text)
{
	struct store_stats s;
	size_t len = strlen(text), cap = len + 1024;
	char *out = realloc(text, cap);

	if (out == NULL)
		return text;
	store_stats(sv->st, &s);
	snprintf(out + len, cap - len,
		 "# HELP t2istage_db_round_trips_total Answers of the database waited for.\n"
		 "# TYPE t2istage_db_round_trips_total counter\n"
		 "t2istage_db_round_trips_total %llu\n"
		 "# HELP t2istage_db_wait_seconds_total Time the loop waited for them.\n"
		 "# TYPE t2istage_db_wait_seconds_total counter\n"
		 "t2istage_db_wait_seconds_total %.6f\n"
		 "# HELP t2istage_db_wait_seconds_max The longest of those waits.\n"
		 "# TYPE t2istage_db_wait_seconds_max gauge\n"
		 "t2istage_db_wait_seconds_max %.6f\n"
		 "# HELP t2istage_db_reconnects_total Connections made again after a loss.\n"
		 "# TYPE t2istage_db_reconnects_total counter\n"
		 "t2istage_db_reconnects_total %llu\n",
		 (unsigned long long)s.round_trips, s.wait_total_s, s.wait_max_s,
		 (unsigned long long)s.reconnects);
	return out;
}

/* Several instances: those alive, each by name. */
static char *
cluster_metrics(struct service *sv, char *text)
{
	json_t *alive = sup_instances(sv->sup), *in;
	size_t i, len = text != NULL ? strlen(text) : 0, cap = len + 256;
	char *out = text != NULL ? realloc(text, cap) : NULL;

	if (alive == NULL || out == NULL) {
		json_decref(alive);
		return out != NULL ? out : text;
	}
	len += (size_t)snprintf(out + len, cap - len,
				"# HELP t2istage_cluster_instances Instances alive on the database.\n"
				"# TYPE t2istage_cluster_instances gauge\n"
				"t2istage_cluster_instances %zu\n"
				"# HELP t2istage_cluster_instance An instance alive, by name.\n"
				"# TYPE t2istage_cluster_instance gauge\n", json_array_size(alive));
	json_array_foreach(alive, i, in) {
		const char *name = json_string_value(json_object_get(in, "name"));
		const char *host = json_string_value(json_object_get(in, "host"));
		size_t need = len + strlen(name) + strlen(host) + 64;
		char *p = need > cap ? realloc(out, cap = need * 2) : out;

		if (p == NULL)
			break;
		out = p;
		len += (size_t)snprintf(out + len, cap - len,
					"t2istage_cluster_instance{name=\"%s\",host=\"%s\"} 1\n",
					name, host);
	}
	json_decref(alive);
	return db_metrics(sv, out);
}

char *
service_metrics(struct service *sv)
{
	struct metrics_runs runs = { sup_active_runs(sv->sup), sup_queued_runs(sv->sup) };
	char *text = metrics_render(&sv->metrics, sv->st, sup_busy_workers(sv->sup),
				    sv->cfg->workers_max, &runs);
	char *more = sv->http != NULL ? http_metrics(sv->http) : NULL, *all = NULL;

	if (text != NULL && sv->cfg->database_pg)
		text = cluster_metrics(sv, text);
	if (text != NULL && more != NULL && asprintf(&all, "%s%s", text, more) < 0)
		all = NULL;
	free(text);
	free(more);
	return all;
}

int
service_import(struct service *sv, const char *body, size_t len, char project_id[37],
	       char *err, size_t errlen)
{
	struct project *p = project_parse(body, len, "request body", err, errlen);
	int status = 201;

	if (p == NULL)
		return 400;
	if (store_project_exists(sv->st, p->id)) {
		snprintf(err, errlen, "project %s already exists", p->id);
		status = 409;
	} else if (store_savepoint(sv->st) < 0 || store_project_import(sv->st, p) < 0) {
		snprintf(err, errlen, "import failed: %s", store_errmsg(sv->st));
		store_savepoint_rollback(sv->st);
		status = 500;
	} else if (store_savepoint_release(sv->st) < 0 || store_commit(sv->st) < 0) {
		/* Committed before the 201 goes out (see hook_poll_ready). */
		snprintf(err, errlen, "import failed: %s", store_errmsg(sv->st));
		store_rollback(sv->st);
		status = 500;
	} else {
		memcpy(project_id, p->id, 37);
	}
	project_free(p);
	return status;
}

static int
refusal_status(enum stage_refusal why)
{
	switch (why) {
	case STAGE_NOT_FOUND:
		return 404;
	case STAGE_NOT_READY:
	case STAGE_BUSY:
		return 409;
	case STAGE_NO_STORYBOARDS:
	case STAGE_NO_PROVIDER:
		return 422;
	case STAGE_BAD_INPUT:
		return 400;
	default:
		return 500;
	}
}

int
service_start(struct service *sv, const char *project_id, json_t *storyboard_ids, bool no_cache,
	      bool only_missing, char run_id[37], bool *queued, char *err, size_t errlen)
{
	/* Beyond what the service processes at once a run waits its turn:
	 * accepted all the same, never refused for want of room. */
	struct stage_request req = { .project_id = project_id, .storyboard_ids = storyboard_ids,
				     .no_cache = no_cache, .missing_only = only_missing,
				     .queued = !sup_has_room(sv->sup),
				     .ahead = sup_queued_runs(sv->sup) };
	enum stage_refusal why;
	struct run *r;

	if (store_savepoint(sv->st) < 0) {
		snprintf(err, errlen, "database: %s", store_errmsg(sv->st));
		return 500;
	}
	if ((r = stage_start(sv->st, sv->cfg, &sv->ev, &req, &why, err, errlen)) == NULL) {
		store_savepoint_rollback(sv->st);
		return refusal_status(why);
	}
	if (sup_add_run(sv->sup, r) < 0) {
		store_savepoint_rollback(sv->st);
		run_free(r);
		snprintf(err, errlen, "out of memory: no room for another run");
		return 503;
	}
	/* Committed before the 202 (or the stream) goes out, see
	 * hook_poll_ready: requests run outside the loop's transaction, so
	 * what is rolled back on a failure is this request's alone, and the
	 * run has to go with it. */
	if (store_savepoint_release(sv->st) < 0 || store_commit(sv->st) < 0) {
		snprintf(err, errlen, "database: %s", store_errmsg(sv->st));
		store_rollback(sv->st);
		sup_remove_run(sv->sup, r);
		run_free(r);
		return 500;
	}
	sv->metrics.runs_started++;
	memcpy(run_id, r->id, 37);
	*queued = r->queued;
	return 202;
}

/* Several instances: the run may be another's; every instance is told
 * (cluster.h), this one at once. */
static int
cancel_shared(struct service *sv, const char *project_id, char run_id[37], char *err,
	      size_t errlen)
{
	struct run *r = sup_project_run(sv->sup, project_id);
	long pid;

	if (store_run_active(sv->st, project_id, run_id, &pid) < 0 || run_id[0] == '\0') {
		snprintf(err, errlen, "project %s has no run in progress", project_id);
		return 409;
	}
	if (store_savepoint(sv->st) < 0 || store_run_cancel_request(sv->st, run_id) < 0 ||
	    store_savepoint_release(sv->st) < 0 || store_commit(sv->st) < 0) {
		snprintf(err, errlen, "database: %s", store_errmsg(sv->st));
		store_rollback(sv->st);
		return 500;
	}
	if (r != NULL && strcmp(r->id, run_id) == 0)
		sup_cancel(sv->sup, r);
	return 202;
}

int
service_cancel(struct service *sv, const char *project_id, char run_id[37], char *err,
	       size_t errlen)
{
	struct run *r = sup_project_run(sv->sup, project_id);

	if (!store_project_exists(sv->st, project_id)) {
		snprintf(err, errlen, "project %s not found", project_id);
		return 404;
	}
	if (sv->cfg->database_pg)
		return cancel_shared(sv, project_id, run_id, err, errlen);
	if (r == NULL || r->finished) {
		snprintf(err, errlen, "project %s has no run in progress", project_id);
		return 409;
	}
	memcpy(run_id, r->id, 37);
	sup_cancel(sv->sup, r);
	return 202;
}

/* --- changes after an import --- */

/* In this service (a run in memory, finished or not, may still hear from
 * its workers) or in another live process. */
static bool
project_busy(struct service *sv, const char *project_id, char *err, size_t errlen)
{
	if (sup_project_run(sv->sup, project_id) == NULL &&
	    !stage_project_busy(sv->st, project_id))
		return false;
	snprintf(err, errlen, "project %s: a run is processing; wait for it, or cancel it",
		 project_id);
	return true;
}

/* Runs fn inside a savepoint committed before the answer (see
 * service_import): all of it or, on any refusal, nothing. */
static int
in_savepoint(struct service *sv, int (*fn)(struct service *, void *, char *, size_t), void *arg,
	     char *err, size_t errlen)
{
	int status;

	if (store_savepoint(sv->st) < 0) {
		snprintf(err, errlen, "database: %s", store_errmsg(sv->st));
		return 500;
	}
	if ((status = fn(sv, arg, err, errlen)) >= 300) {
		store_savepoint_rollback(sv->st);
		return status;
	}
	if (store_savepoint_release(sv->st) < 0 || store_commit(sv->st) < 0) {
		snprintf(err, errlen, "database: %s", store_errmsg(sv->st));
		store_rollback(sv->st);
		return 500;
	}
	return status;
}

struct patch_req {
	const char *project_id, *storyboard_id;
	const struct project_patch *pt;
};

static int
patch_fn(struct service *sv, void *arg, char *err, size_t errlen)
{
	const struct patch_req *p = arg;
	json_t *sb;
	char *params = NULL;
	int rc;

	if (!store_project_exists(sv->st, p->project_id)) {
		snprintf(err, errlen, "project %s not found", p->project_id);
		return 404;
	}
	if ((sb = store_query_storyboard(sv->st, p->project_id, p->storyboard_id)) == NULL) {
		snprintf(err, errlen, "project %s has no storyboard %s", p->project_id,
			 p->storyboard_id);
		return 404;
	}
	json_decref(sb);
	if (project_busy(sv, p->project_id, err, errlen))
		return 409;
	if (p->pt->has_params && (params = store_params_json(&p->pt->params)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	rc = store_storyboard_update(sv->st, p->storyboard_id, p->pt->image_prompt,
				     p->pt->negative_prompt, params);
	free(params);
	if (rc < 0) {
		snprintf(err, errlen, "database: %s", store_errmsg(sv->st));
		return 500;
	}
	return 200;
}

int
service_patch_storyboard(struct service *sv, const char *project_id, const char *storyboard_id,
			 const char *body, size_t len, char *err, size_t errlen)
{
	struct project_patch pt;
	struct patch_req p = { project_id, storyboard_id, &pt };
	int status;

	if (project_parse_patch(body, len, &pt, err, errlen) < 0)
		return 400;
	status = in_savepoint(sv, patch_fn, &p, err, errlen);
	project_patch_free(&pt);
	return status;
}

struct delete_req {
	const char *project_id;
	json_t *files;		/* paths to remove once committed */
};

static int
delete_fn(struct service *sv, void *arg, char *err, size_t errlen)
{
	struct delete_req *d = arg;

	if (!store_project_exists(sv->st, d->project_id)) {
		snprintf(err, errlen, "project %s not found", d->project_id);
		return 404;
	}
	if (project_busy(sv, d->project_id, err, errlen))
		return 409;
	if ((d->files = store_project_files(sv->st, d->project_id)) == NULL ||
	    store_project_delete(sv->st, d->project_id) < 0) {
		snprintf(err, errlen, "database: %s", store_errmsg(sv->st));
		return 500;
	}
	return 200;
}

/* Only files inside storage.dir: a path from the database is never taken
 * on trust to unlink.  Left open: a worker of another project's run that
 * stores the very same bytes (files are named by content) between the
 * commit and the unlink loses its file (its row then answers 404 "file
 * missing"); only a deterministic provider makes the same bytes twice. */
static int
remove_files(struct service *sv, json_t *files)
{
	size_t n = strlen(sv->cfg->storage_dir), i;
	json_t *v;
	int removed = 0;

	json_array_foreach(files, i, v) {
		const char *path = json_string_value(v);

		if (path == NULL || strncmp(path, sv->cfg->storage_dir, n) != 0 || path[n] != '/' ||
		    strstr(path, "/../") != NULL)
			continue;
		if (unlink(path) == 0)
			removed++;
		else if (errno != ENOENT)
			log_warnx("delete: cannot remove %s: %s", path, strerror(errno));
	}
	return removed;
}

int
service_delete_project(struct service *sv, const char *project_id, int *files_removed,
		       char *err, size_t errlen)
{
	struct delete_req d = { project_id, NULL };
	int status = in_savepoint(sv, delete_fn, &d, err, errlen);

	*files_removed = 0;
	if (status == 200) {
		*files_removed = remove_files(sv, d.files);
		log_info("project %s deleted, %d image files removed", project_id, *files_removed);
	}
	json_decref(d.files);
	return status;
}

/* --- the loop's hooks --- */

static int
hook_poll_fds(void *arg, struct pollfd *pfd, int max, int *timeout_ms)
{
	struct service *sv = arg;
	int64_t now = clock_now_ms();
	int t, n;

	if (sv->http == NULL)
		return 0;
	n = http_poll_fds(sv->http, pfd, max);
	/* The nearest of: MHD's own timers and the connections' deadlines,
	 * the SSE keepalive, the watchdog. */
	t = http_timeout_ms(sv->http);
	if (t >= 0 && (*timeout_ms < 0 || t < *timeout_ms))
		*timeout_ms = t;
	t = sse_timeout_ms(sv->sse, now);
	if (t >= 0 && (*timeout_ms < 0 || t < *timeout_ms))
		*timeout_ms = t;
	t = notify_watchdog(now);
	if (t >= 0 && (*timeout_ms < 0 || t < *timeout_ms))
		*timeout_ms = t;
	return n;
}

static void
hook_poll_ready(void *arg, struct pollfd *pfd, int n)
{
	struct service *sv = arg;

	sse_tick(sv->sse, clock_now_ms());
	if (sv->http != NULL) {
		/* Nothing is told to a client before it is on disk: MHD sends
		 * from inside http_run, so the loop's writes so far (the events
		 * SSE readers are about to send) are committed first, and each
		 * request commits its own writes before it answers (see
		 * service_import and service_start).  Otherwise a crash before
		 * the loop's commit would take back an event a client already
		 * has, and the resumed run would reuse its seq. */
		store_commit(sv->st);
		http_run(sv->http, pfd, n);
		store_begin(sv->st);
	}
}

static void
hook_run_ended(void *arg, struct run *r)
{
	struct service *sv = arg;

	if (r->status[0] == '\0') {
		/* Several instances: another one saw it end, and counts it. */
		log_debug("run %s of project %s ended by another instance", r->id, r->project_id);
		run_free(r);
		return;
	}
	metrics_run_ended(&sv->metrics, r->status);
	log_info("run %s of project %s ended %s: %d completed, %d failed", r->id, r->project_id,
		 r->status, r->succeeded, r->failed);
	run_free(r);
}

static void
hook_note(void *arg, const char *run_id)
{
	struct service *sv = arg;

	sse_wake(sv->sse, run_id);
}

static void
hook_stopping(void *arg)
{
	struct service *sv = arg;

	notify_stopping();
	publish(sv, "stopping");
	if (sv->http != NULL)
		http_quiesce(sv->http);
}

/* Keeps the first message of provcheck_run. */
struct first_bad {
	char *err;
	size_t errlen;
	bool set;
};

static void
keep_first(void *arg, const char *message)
{
	struct first_bad *fb = arg;

	if (!fb->set)
		snprintf(fb->err, fb->errlen, "%s", message);
	fb->set = true;
}

/* keys_only at start (see provcheck.h); on a reload every plugin the new
 * configuration names must load in a child. */
static int
check_providers(const struct config *cfg, bool keys_only, char *err, size_t errlen)
{
	struct first_bad fb = { err, errlen, false };

	return provcheck_run(cfg, keys_only, keep_first, &fb) == 0 ? 0 : -1;
}

/* The outcome of the reload begun last, for `t2istage reload`. */
static void
reload_done(struct service *sv, const char *result, const char *message)
{
	sv->status.reload_done = sv->status.reload;
	snprintf(sv->status.result, sizeof(sv->status.result), "%s", result);
	snprintf(sv->status.message, sizeof(sv->status.message), "%s", message);
	publish(sv, "serving");
	notify_ready();
}

/* SIGHUP: a new generation is built beside the running one and takes over
 * only when all of it is valid. */
static void
hook_reload(void *arg)
{
	struct service *sv = arg;
	char err[1024];
	struct config *cfg;
	struct urlsig fresh = { 0 };

	notify_reloading();
	sv->status.reload++;
	publish(sv, "reloading");
	log_info("reloading %s", sv->conf_path != NULL ? sv->conf_path : "(built-in defaults)");
	if ((cfg = config_load(sv->conf_path, err, sizeof(err))) == NULL ||
	    check_providers(cfg, false, err, sizeof(err)) < 0 ||
	    store_providers_sync(sv->st, cfg) < 0 ||
	    urlsig_configure(&fresh, cfg, err, sizeof(err)) < 0 ||
	    sup_reconfigure(sv->sup, cfg, err, sizeof(err)) < 0) {
		log_errx("reload refused, the running configuration stays: %s", err);
		urlsig_clear(&fresh);
		config_free(cfg);
		reload_done(sv, "refused", err);
		return;
	}
	if (strcmp(cfg->http_listen, sv->cfg->http_listen) != 0)
		log_warnx("http.listen changed: takes effect at the next start");
	if (strcmp(cfg->database, sv->cfg->database) != 0)
		log_warnx("database changed: takes effect at the next start");
	if (cfg->http_max_connections != sv->cfg->http_max_connections ||
	    cfg->http_request_timeout != sv->cfg->http_request_timeout)
		log_warnx("http.max_connections or http.request_timeout changed: takes effect at"
			  " the next start");
	config_free(sv->cfg);
	sv->cfg = cfg;
	urlsig_replace(&sv->urlsig, &fresh);
	http_set_token(sv->http, cfg->http_token);
	http_set_cors(sv->http, cfg->http_cors_origins, cfg->http_ncors);
	http_set_server_names(sv->http, cfg->http_server_names, cfg->http_nserver_names);
	http_set_limits(sv->http, (unsigned)cfg->http_max_connections_per_ip,
			cfg->http_sse_stall_timeout, (size_t)cfg->http_max_body_memory);
	warm_providers(sv);
	log_info("reloaded: %zu providers, %d workers", cfg->nproviders, cfg->workers_max);
	reload_done(sv, "ok", "");
}

/* Runs left 'processing' by the previous process go on.  (Several
 * instances take part in every shared run instead: see cluster.h.) */
static void
recover(struct service *sv)
{
	json_t *runs;

	if (sv->cfg->database_pg)
		return;
	runs = store_query_runs_processing(sv->st);
	size_t i;
	json_t *row;
	char err[512];

	json_array_foreach(runs, i, row) {
		const char *id = json_string_value(json_object_get(row, "id"));
		struct run *r = resume_run(sv->st, sv->cfg, &sv->ev, id, err, sizeof(err));

		if (r == NULL || sup_add_run(sv->sup, r) < 0) {
			log_errx("cannot resume run %s: %s; marked interrupted", id, err);
			store_run_set_status(sv->st, id, "interrupted");
			run_free(r);
			continue;
		}
		log_info("resumed run %s%s: %zu storyboards to go", id,
			 r->queued ? " (queued)" : "", r->qlen);
	}
	json_decref(runs);
}

static int
service_open(struct service *sv, const struct http_routes *routes, char *err, size_t errlen)
{
	static const struct sup_hooks hooks_template = {
		.poll_fds = hook_poll_fds, .poll_ready = hook_poll_ready,
		.run_ended = hook_run_ended, .reload = hook_reload,
		.stopping = hook_stopping, .note = hook_note, .serve = true,
	};
	struct sup_hooks hooks = hooks_template;
	struct http_opts ho;

	if ((sv->cfg = config_load(sv->conf_path, err, errlen)) == NULL ||
	    check_providers(sv->cfg, true, err, errlen) < 0)
		return -1;
	warm_providers(sv);
	if ((sv->st = store_open_config(sv->cfg, false, err, errlen)) == NULL)
		return -1;
	if (store_begin(sv->st) < 0 || store_providers_sync(sv->st, sv->cfg) < 0 ||
	    store_commit(sv->st) < 0) {
		snprintf(err, errlen, "%s: %s", sv->cfg->database_display, store_errmsg(sv->st));
		return -1;
	}
	/* On PostgreSQL the default URL key lives in the shared storage.dir. */
	if (sv->cfg->database_pg && owner_mkdirs(sv->cfg->storage_dir, err, errlen) < 0)
		return -1;
	if (urlsig_configure(&sv->urlsig, sv->cfg, err, errlen) < 0)
		return -1;
	if ((sv->sup = sup_new(sv->cfg, sv->st, sv->sp, err, errlen)) == NULL ||
	    (sv->sse = sse_new(sv->st, &sv->urlsig, service_run_live, sv)) == NULL)
		return -1;
	sv->ev.st = sv->st;
	if (sv->cfg->database_pg)
		sse_set_poll(sv->sse, SSE_POLL_MS);
	events_add_sink(&sv->ev, sse_sink, sv->sse);
	sup_watch_events(sv->sup, &sv->ev);
	ho = (struct http_opts){
		.listen = sv->cfg->http_listen, .token = sv->cfg->http_token,
		.body_max = PROJECT_FILE_MAX, .cors_origins = sv->cfg->http_cors_origins,
		.ncors = sv->cfg->http_ncors, .urlsig = &sv->urlsig,
		.server_names = sv->cfg->http_server_names,
		.nserver_names = sv->cfg->http_nserver_names,
		.max_connections = (unsigned)sv->cfg->http_max_connections,
		.max_connections_per_ip = (unsigned)sv->cfg->http_max_connections_per_ip,
		.request_timeout_s = sv->cfg->http_request_timeout,
		.stall_s = sv->cfg->http_sse_stall_timeout,
		.bodies_max = (size_t)sv->cfg->http_max_body_memory,
	};
	if ((sv->http = http_start(routes, sv, &ho, err, errlen)) == NULL)
		return -1;
	hooks.arg = sv;
	hooks.metrics = &sv->metrics;
	sup_set_hooks(sv->sup, &hooks);
	return 0;
}

struct service *
service_new(const char *conf_path, struct spawner *sp, const struct http_routes *routes,
	    char *err, size_t errlen)
{
	struct service *sv = calloc(1, sizeof(*sv));

	if (sv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sv->conf_path = conf_path;
	sv->sp = sp;
	if (service_open(sv, routes, err, errlen) < 0) {
		service_free(sv);
		return NULL;
	}
	return sv;
}

void
service_free(struct service *sv)
{
	struct run *r;

	if (sv == NULL)
		return;
	/* Runs stopped by SIGTERM stay 'processing' in the database for the
	 * next start; their memory goes now. */
	while (sv->sup != NULL && (r = sup_pop_run(sv->sup)) != NULL)
		run_free(r);
	http_free(sv->http);
	sup_free(sv->sup);
	sse_free(sv->sse);
	store_close(sv->st);
	config_free(sv->cfg);
	urlsig_clear(&sv->urlsig);
	free(sv);
}

void
service_run(struct service *sv)
{
	store_begin(sv->st);
	recover(sv);
	store_commit(sv->st);
	log_info("serving on %s (%zu providers, %d workers)", sv->cfg->http_listen,
		 sv->cfg->nproviders, sv->cfg->workers_max);
	sv->status.pid = getpid();
	publish(sv, "serving");
	notify_ready();
	sup_loop(sv->sup);
	statusfile_remove(getpid());
	log_info("stopped");
}
