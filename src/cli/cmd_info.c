/* cmd_info: the read-only commands: status, images, plugins, check-config. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "cmd.h"
#include "config.h"
#include "jsontext.h"
#include "plugin.h"
#include "provcheck.h"
#include "store.h"

static struct store *
open_ro(const struct config *cfg)
{
	char err[1024];
	struct store *st = store_open_config(cfg, true, err, sizeof(err));

	if (st == NULL)
		fprintf(stderr, "t2istage: %s\n", err);
	return st;
}

/* No database yet (nothing was ever imported) is not an error for the
 * read-only commands: there are no projects. */
static bool
db_missing(const struct config *cfg)
{
	return !cfg->database_pg && access(cfg->database, F_OK) < 0 && errno == ENOENT;
}

static void
print_json(json_t *v)
{
	char *text = jsontext_dumps(v, JSON_INDENT(2));

	if (text != NULL)
		puts(text);
	free(text);
}

/* A provider task a plugin is polling: what it submitted (paid for) and
 * checkpointed, and since when. */
static void
print_task(const char *lead, json_t *t)
{
	char *state = jsontext_dumps(json_object_get(t, "state"), JSON_COMPACT);

	printf("%sprovider task at %s since %s: %s\n", lead,
	       json_string_value(json_object_get(t, "provider")),
	       json_string_value(json_object_get(t, "created_at")), state != NULL ? state : "?");
	free(state);
}

/* "  spend of its last run:  openai 5 requests, 5 spent", and for the day. */
static void
print_spend_of(const char *what, json_t *by_provider)
{
	const char *name;
	json_t *v;

	if (json_object_size(by_provider) == 0)
		return;
	printf("  spend %s:", what);
	json_object_foreach(by_provider, name, v)
		printf("  %s %lld requests, %g spent", name,
		       (long long)json_integer_value(json_object_get(v, "requests")),
		       json_real_value(json_object_get(v, "spent")));
	printf("\n");
}

static void
print_spend(json_t *sp)
{
	char what[64];

	print_spend_of("of its last run", json_object_get(sp, "run"));
	snprintf(what, sizeof(what), "today (%s)", json_string_value(json_object_get(sp, "day")));
	print_spend_of(what, json_object_get(sp, "today"));
}

static void
print_project(json_t *p)
{
	json_t *c = json_object_get(p, "counts");
	json_t *stages = json_object_get(p, "stages");
	size_t i;
	json_t *s;

	printf("project %s  %s\n", json_string_value(json_object_get(p, "id")),
	       json_string_value(json_object_get(p, "name")));
	printf("  storyboards %lld: %lld completed, %lld failed, %lld pending, %lld not started\n",
	       (long long)json_integer_value(json_object_get(c, "storyboards")),
	       (long long)json_integer_value(json_object_get(c, "completed")),
	       (long long)json_integer_value(json_object_get(c, "failed")),
	       (long long)json_integer_value(json_object_get(c, "pending")),
	       (long long)json_integer_value(json_object_get(c, "not_started")));
	json_array_foreach(stages, i, s)
		printf("  stage %-17s %-10s started %s\n",
		       json_string_value(json_object_get(s, "stage_type")),
		       json_string_value(json_object_get(s, "status")),
		       json_is_string(json_object_get(s, "started_at"))
			       ? json_string_value(json_object_get(s, "started_at"))
			       : "-");
	json_array_foreach(json_object_get(p, "provider_tasks"), i, s) {
		char lead[32];

		snprintf(lead, sizeof(lead), "  #%-4lld ",
			 (long long)json_integer_value(json_object_get(s, "storyboard_index")));
		print_task(lead, s);
	}
	if (json_object_get(p, "spend") != NULL)
		print_spend(json_object_get(p, "spend"));
}

/* What the project's last run and today cost, per provider (store_spend.c),
 * set on the project view as "spend". */
static void
add_spend(struct store *st, json_t *project)
{
	char run_id[37], day[STORE_DAY_MAX];
	json_t *sp;

	store_spend_today(day);
	if (store_run_latest(st, json_string_value(json_object_get(project, "id")), run_id) != 1)
		run_id[0] = '\0';
	if ((sp = store_query_spend(st, run_id[0] != '\0' ? run_id : NULL, day)) != NULL)
		json_object_set_new(project, "spend", sp);
}

/* Several instances on PostgreSQL: which are alive. */
static void
print_instances(struct store *st, const struct config *cfg)
{
	json_t *alive = cluster_alive_in(st, cfg->cluster_lease), *in;
	size_t i;

	printf("instances alive: %zu\n", json_array_size(alive));
	json_array_foreach(alive, i, in)
		printf("  instance %s  host %s  pid %lld\n",
		       json_string_value(json_object_get(in, "name")),
		       json_string_value(json_object_get(in, "host")),
		       (long long)json_integer_value(json_object_get(in, "pid")));
	json_decref(alive);
}

int
cmd_status(const struct cmd_opts *o)
{
	struct config *cfg = cmd_config(o);
	bool none = cfg != NULL && db_missing(cfg);
	struct store *st = cfg != NULL && !none ? open_ro(cfg) : NULL;
	json_t *v = NULL;
	int rc = EXIT_FAILED;
	size_t i;
	json_t *p;

	if (st == NULL && !none)
		goto out;
	if (none)
		v = o->target != NULL ? NULL : json_array();
	else
		v = o->target != NULL ? store_query_project(st, o->target)
				      : store_query_projects(st);
	if (v == NULL) {
		fprintf(stderr, "t2istage: project %s not found\n", o->target ? o->target : "");
		rc = EXIT_REFUSED;
		goto out;
	}
	if (!o->json && o->target == NULL && cfg->database_pg)
		print_instances(st, cfg);
	if (st != NULL && json_is_object(v))
		add_spend(st, v);
	if (o->json)
		print_json(v);
	else if (json_is_array(v))
		json_array_foreach(v, i, p)
			print_project(p);
	else
		print_project(v);
	rc = 0;
out:
	json_decref(v);
	store_close(st);
	config_free(cfg);
	return rc;
}

static void
print_image(json_t *im)
{
	const char *status = json_string_value(json_object_get(im, "status"));
	bool done = strcmp(status, "completed") == 0;

	printf("#%-4lld %-10s %-8s ", (long long)json_integer_value(json_object_get(im, "storyboard_index")),
	       status, json_is_true(json_object_get(im, "is_primary")) ||
			       json_integer_value(json_object_get(im, "is_primary"))
		       ? "primary" : "variant");
	if (done)
		printf("%5lldx%-5lld %9lld  %s\n",
		       (long long)json_integer_value(json_object_get(im, "width")),
		       (long long)json_integer_value(json_object_get(im, "height")),
		       (long long)json_integer_value(json_object_get(im, "file_size")),
		       json_string_value(json_object_get(im, "file_path")));
	else
		printf("%s\n", json_is_string(json_object_get(im, "error"))
				       ? json_string_value(json_object_get(im, "error"))
				       : "");
	if (json_is_object(json_object_get(im, "provider_task")))
		print_task("      ", json_object_get(im, "provider_task"));
}

int
cmd_images(const struct cmd_opts *o)
{
	struct config *cfg = cmd_config(o);
	bool none = cfg != NULL && db_missing(cfg);
	struct store *st = cfg != NULL && !none ? open_ro(cfg) : NULL;
	json_t *v = NULL;
	int rc = EXIT_FAILED;
	size_t i;
	json_t *im;

	if (st == NULL && !none)
		goto out;
	if (none || !store_project_exists(st, o->target)) {
		fprintf(stderr, "t2istage: project %s not found\n", o->target);
		rc = EXIT_REFUSED;
		goto out;
	}
	if ((v = store_query_images(st, o->target)) == NULL)
		goto out;
	if (o->json)
		print_json(v);
	else
		json_array_foreach(v, i, im)
			print_image(im);
	rc = 0;
out:
	json_decref(v);
	store_close(st);
	config_free(cfg);
	return rc;
}

/* One line; what the flags ask of a provider ends it, in brackets. */
static void
print_plugin(const struct plugin_info *p)
{
	uint32_t unknown = p->flags & ~(uint32_t)T2I_PLUGIN_NEEDS_API_KEY;

	printf("  %-14s ok       abi %u  %s %s: %s", p->name, p->abi_version, p->plugin_name,
	       p->version, p->description);
	if (p->flags & T2I_PLUGIN_NEEDS_API_KEY)
		printf(" [needs api_key]");
	if (unknown != 0)
		printf(" [unknown flags 0x%x]", (unsigned)unknown);
	putchar('\n');
}

int
cmd_plugins(const struct cmd_opts *o)
{
	struct config *cfg = cmd_config(o);
	struct plugin_info *list = NULL;
	char err[1024];
	int n;

	if (cfg == NULL)
		return EXIT_FAILED;
	printf("plugin directory %s (host ABI %d)\n", cfg->plugins_dir, T2I_ABI_VERSION);
	if ((n = plugin_scan(cfg->plugins_dir, &list, err, sizeof(err))) < 0) {
		fprintf(stderr, "t2istage: %s\n", err);
		config_free(cfg);
		return EXIT_FAILED;
	}
	for (int i = 0; i < n; i++) {
		if (list[i].ok)
			print_plugin(&list[i]);
		else
			printf("  %-14s refused  %s\n", list[i].name, list[i].error);
	}
	if (n == 0)
		printf("  (no plugins)\n");
	free(list);
	config_free(cfg);
	return 0;
}

int
cmd_check_config(const struct cmd_opts *o)
{
	const char *path = config_choose_path(o->conf);
	struct config *cfg = cmd_config(o);
	int bad;

	if (cfg == NULL)
		return EXIT_FAILED;
	bad = provcheck_run(cfg, false, provcheck_to_stderr, NULL);
	if (bad == 0 && cfg->nwebhooks == 0)
		printf("t2istage: configuration %s is valid (%zu providers)\n",
		       path != NULL ? path : "(built-in defaults)", cfg->nproviders);
	else if (bad == 0)
		printf("t2istage: configuration %s is valid (%zu providers, %zu webhooks)\n",
		       path != NULL ? path : "(built-in defaults)", cfg->nproviders,
		       cfg->nwebhooks);
	config_free(cfg);
	return bad == 0 ? 0 : EXIT_FAILED;
}
