/* cmd_run: `run`, `retry` and `import`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "project.h"
#include "provcheck.h"
#include "run.h"
#include "spawnmsg.h"
#include "stage.h"
#include "store.h"
#include "spawner.h"
#include "supervisor.h"
#include "term.h"

struct config *
cmd_config(const struct cmd_opts *o)
{
	char err[1024];
	struct config *cfg = config_load(config_choose_path(o->conf), err, sizeof(err));

	if (cfg == NULL)
		fprintf(stderr, "t2istage: %s\n", err);
	return cfg;
}

/* Opens the database read-write and mirrors the providers into it inside a
 * transaction left open: the caller commits it together with its own writes,
 * or rolls it back on a refusal, so that a refused command writes nothing. */
static struct store *
open_store(const struct config *cfg)
{
	char err[1024];
	struct store *st = store_open_config(cfg, false, err, sizeof(err));

	if (st == NULL) {
		fprintf(stderr, "t2istage: %s\n", err);
		return NULL;
	}
	if (store_begin(st) < 0 || store_providers_sync(st, cfg) < 0) {
		fprintf(stderr, "t2istage: %s: %s\n", cfg->database_display, store_errmsg(st));
		store_close(st);
		return NULL;
	}
	return st;
}

/* A target that names a file (or looks like one) is a project file. */
static bool
is_file_target(const char *t)
{
	struct stat sb;
	size_t n = strlen(t);

	if (stat(t, &sb) == 0)
		return true;
	return strchr(t, '/') != NULL || (n > 5 && strcmp(t + n - 5, ".json") == 0) ||
	       !project_is_uuid(t);
}

/* Imports p inside the caller's transaction. */
static int
import_project(struct store *st, const struct project *p)
{
	if (store_project_exists(st, p->id)) {
		fprintf(stderr, "t2istage: project %s already exists; run it by its id\n", p->id);
		return -1;
	}
	if (store_project_import(st, p) < 0) {
		fprintf(stderr, "t2istage: import failed: %s\n", store_errmsg(st));
		return -1;
	}
	return 0;
}

static json_t *
requested_ids(const struct cmd_opts *o)
{
	json_t *a;

	if (o->nstoryboards == 0)
		return NULL;
	a = json_array();
	for (int i = 0; i < o->nstoryboards; i++)
		json_array_append_new(a, json_string(o->storyboards[i]));
	return a;
}

/* The refusals of stage_start that a project file decides alone, in the
 * same order and words: checked before the database is opened, so that a
 * refused `run FILE` leaves no trace, not even a new database. */
static bool
precheck_file(const struct config *cfg, const struct project *p, const struct cmd_opts *o)
{
	const struct config_provider *prov = NULL;

	if (!p->storyboard_completed) {
		fprintf(stderr, "t2istage: project %s: storyboard stage is processing, not completed\n",
			p->id);
		return false;
	}
	for (int i = 0; i < o->nstoryboards; i++) {
		bool found = false;

		for (size_t j = 0; j < p->nstoryboards && !found; j++)
			found = strcmp(p->storyboards[j].id, o->storyboards[i]) == 0;
		if (!found) {
			fprintf(stderr, "t2istage: storyboard %s is not in project %s\n",
				o->storyboards[i], p->id);
			return false;
		}
	}
	for (size_t i = 0; i < p->nproviders && prov == NULL; i++)
		prov = config_provider(cfg, p->image_providers[i]);
	if (prov == NULL && config_default_provider(cfg) == NULL) {
		fprintf(stderr, "t2istage: project %s: no image provider configured\n", p->id);
		return false;
	}
	if (p->nstoryboards == 0) {
		fprintf(stderr, "t2istage: project %s: no storyboards\n", p->id);
		return false;
	}
	return true;
}

/* What can be refused before the database is opened: a bad project file,
 * the checks above, and a project id when there is no database yet (which
 * would otherwise be created just to say "not found").  Loads *p for a file
 * target.  0 or EXIT_REFUSED. */
static int
before_store(const struct config *cfg, const struct cmd_opts *o, bool retry, struct project **p)
{
	char err[1024];

	*p = NULL;
	if (!retry && is_file_target(o->target)) {
		if ((*p = project_load(o->target, err, sizeof(err))) == NULL) {
			fprintf(stderr, "t2istage: %s\n", err);
			return EXIT_REFUSED;
		}
		return precheck_file(cfg, *p, o) ? 0 : EXIT_REFUSED;
	}
	if (!cfg->database_pg && access(cfg->database, F_OK) < 0 && errno == ENOENT) {
		fprintf(stderr, "t2istage: project %s not found\n", o->target);
		return EXIT_REFUSED;
	}
	return 0;
}

/* Validates, imports p when given a file, and plans the run, all in one
 * transaction (opened by open_store) that a refusal rolls back: a refused
 * run writes nothing. */
static struct run *
start(struct store *st, const struct config *cfg, struct events *ev, const struct cmd_opts *o,
      bool retry, const struct project *p, int *status)
{
	struct stage_request req = { .missing_only = retry, .no_cache = o->no_cache };
	struct run *r = NULL;
	char err[1024];
	enum stage_refusal why;

	*status = EXIT_REFUSED;
	req.project_id = p != NULL ? p->id : o->target;
	req.storyboard_ids = requested_ids(o);
	if (store_begin(st) < 0)
		goto out;
	if (p != NULL && import_project(st, p) < 0)
		goto out;
	r = stage_start(st, cfg, ev, &req, &why, err, sizeof(err));
	if (r == NULL) {
		fprintf(stderr, "t2istage: %s\n", err);
		if (why == STAGE_INTERNAL)
			*status = EXIT_FAILED;
		goto out;
	}
	if (store_commit(st) < 0) {
		fprintf(stderr, "t2istage: commit: %s\n", store_errmsg(st));
		run_free(r);
		r = NULL;
		*status = EXIT_FAILED;
	}
out:
	store_rollback(st);
	json_decref(req.storyboard_ids);
	return r;
}

/* The plugin the run will most likely start with gets its template (see
 * template.h) while the database is opened and the run planned. */
static void
warm_first_provider(struct spawner *sp, const struct config *cfg, const struct project *p)
{
	const struct config_provider *prov = NULL;

	for (size_t i = 0; p != NULL && i < p->nproviders && prov == NULL; i++)
		prov = config_provider(cfg, p->image_providers[i]);
	if (prov == NULL)
		prov = config_default_provider(cfg);
	if (prov != NULL)
		spawner_warm(sp, prov->plugin_path, spawnmsg_flags(cfg->thumbnails),
			     prov->concurrency < cfg->workers_max ? prov->concurrency
								  : cfg->workers_max);
}

static int
exit_status(const struct run *r, int loop_rc)
{
	if (loop_rc != 0 || !r->finished)
		return EXIT_FAILED;
	if (strcmp(r->status, "completed") == 0)
		return EXIT_COMPLETED;
	return strcmp(r->status, "partial") == 0 ? EXIT_PARTIAL : EXIT_FAILED;
}

int
cmd_run(const struct cmd_opts *o, bool retry)
{
	struct spawner sp = { 0 };
	struct config *cfg;
	struct project *p = NULL;
	struct store *st = NULL;
	struct term *t = NULL;
	struct sup *sup = NULL;
	struct events ev = { 0 };
	struct run *r = NULL;
	char err[256];
	int status = EXIT_FAILED;

	/* First of all, while this process is still small: every worker is a
	 * fork of the spawner's image, and pays for each page of it it writes. */
	if (spawner_start(&sp) < 0) {
		fprintf(stderr, "t2istage: cannot start the worker spawner: %s\n", strerror(errno));
		return EXIT_FAILED;
	}
	/* A provider without the api key its plugin needs: refused before
	 * anything is written, like any other configuration error. */
	if ((cfg = cmd_config(o)) == NULL || provcheck_run(cfg, true, provcheck_to_stderr, NULL))
		goto out;
	if ((status = before_store(cfg, o, retry, &p)) != 0)
		goto out;
	status = EXIT_FAILED;
	warm_first_provider(&sp, cfg, p);
	if ((st = open_store(cfg)) == NULL)
		goto out;
	log_set_role("supervisor");
	t = term_new(stdout, o->json || !isatty(STDOUT_FILENO));
	ev.st = st;
	events_add_sink(&ev, term_sink, t);
	/* Signals are blocked before the first event, so that a Ctrl-C during
	 * planning is handled by the loop rather than killing us mid-write. */
	if ((sup = sup_new(cfg, st, &sp, err, sizeof(err))) == NULL) {
		fprintf(stderr, "t2istage: %s\n", err);
		goto out;
	}
	sup_watch_events(sup, &ev);
	if ((r = start(st, cfg, &ev, o, retry, p, &status)) == NULL)
		goto out;
	sup_add_run(sup, r);
	status = exit_status(r, sup_loop(sup));
	term_summary(t, r);
out:
	sup_free(sup);
	spawner_stop(&sp);
	run_free(r);
	term_free(t);
	store_close(st);	/* rolls back a transaction left open */
	project_free(p);
	config_free(cfg);
	return status;
}

int
cmd_import(const struct cmd_opts *o)
{
	struct config *cfg = cmd_config(o);
	struct store *st = NULL;
	struct project *p = NULL;
	char err[1024];
	int status = EXIT_FAILED;

	if (cfg == NULL)
		goto out;
	/* The file first: a bad one must not even create the database. */
	if ((p = project_load(o->target, err, sizeof(err))) == NULL) {
		fprintf(stderr, "t2istage: %s\n", err);
		status = EXIT_REFUSED;
		goto out;
	}
	if ((st = open_store(cfg)) == NULL)
		goto out;
	if (store_begin(st) < 0 || import_project(st, p) < 0) {
		status = EXIT_REFUSED;
		goto out;
	}
	if (store_commit(st) < 0)
		goto out;
	printf("%s\n", p->id);
	status = EXIT_COMPLETED;
out:
	if (st != NULL)
		store_rollback(st);
	project_free(p);
	store_close(st);
	config_free(cfg);
	return status;
}
