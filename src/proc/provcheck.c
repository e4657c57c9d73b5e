/* provcheck: whether each configured provider can use its plugin. */
#include "provcheck.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
provcheck_to_stderr(void *arg, const char *message)
{
	(void)arg;
	fprintf(stderr, "t2istage: %s\n", message);
}

/* "FILE:LINE" of provider p's group, as config.c's errors say it; the
 * built-in provider has no line. */
static void
provider_where(const struct config *cfg, const struct config_provider *p, char *out,
	       size_t outlen)
{
	if (p->source_file != NULL)
		snprintf(out, outlen, "%s:%u", p->source_file, p->source_line);
	else
		snprintf(out, outlen, "%s", cfg->path);
}

int
provcheck_one(const struct config *cfg, size_t i, const struct plugin_info *info, char *err,
	      size_t errlen)
{
	const struct config_provider *p = &cfg->providers[i];
	char where[PATH_MAX + 16];

	if (!info->ok) {
		snprintf(err, errlen, "provider %s: %s", p->name, info->error);
		return -1;
	}
	provider_where(cfg, p, where, sizeof(where));
	/* config.c refuses an empty api_key, so "" means none was given. */
	if ((info->flags & T2I_PLUGIN_NEEDS_API_KEY) && p->api_key[0] == '\0') {
		snprintf(err, errlen,
			 "%s: providers[%zu].api_key: missing (plugin %s needs an api key:"
			 " set api_key or api_key_file)", where, i, p->plugin);
		return -1;
	}
	if (info->options_error[0] != '\0') {
		snprintf(err, errlen, "%s: providers[%zu].options: %s", where, i,
			 info->options_error);
		return -1;
	}
	return 0;
}

/* The probe of provider i's plugin file: an earlier provider's when they
 * share the file, else a new one, made into infos[i]. */
static const struct plugin_info *
probe_once(const struct config *cfg, size_t i, struct plugin_info *infos, bool *probed)
{
	for (size_t j = 0; j < i; j++)
		if (probed[j] &&
		    strcmp(cfg->providers[j].plugin_path, cfg->providers[i].plugin_path) == 0)
			return &infos[j];
	plugin_probe(cfg->providers[i].plugin_path, &infos[i]);
	probed[i] = true;
	return &infos[i];
}

/* A probe of provider i's own: its plugin loads, and accepts its options
 * (t2i_check_options), which differ from provider to provider. */
static const struct plugin_info *
probe_full(const struct config *cfg, size_t i, struct plugin_info *infos)
{
	const struct config_provider *p = &cfg->providers[i];
	const struct plugin_options opts = {
		.api_url = p->api_url, .model = p->model, .options_json = p->options_json,
	};

	plugin_probe_options(p->plugin_path, &opts, &infos[i]);
	return &infos[i];
}

int
provcheck_run(const struct config *cfg, bool keys_only, provcheck_report_fn *report, void *arg)
{
	struct plugin_info *infos = calloc(cfg->nproviders + 1, sizeof(*infos));
	bool *probed = calloc(cfg->nproviders + 1, sizeof(*probed));
	char err[sizeof(infos->error) + 256];
	int bad = 0;

	if (infos == NULL || probed == NULL) {
		report(arg, "provider check: out of memory");
		bad = -1;
	}
	for (size_t i = 0; bad >= 0 && i < cfg->nproviders; i++) {
		const struct plugin_info *info;

		if (keys_only && cfg->providers[i].api_key[0] != '\0')
			continue;
		info = keys_only ? probe_once(cfg, i, infos, probed) : probe_full(cfg, i, infos);
		if (keys_only && !info->ok)
			continue;
		if (provcheck_one(cfg, i, info, err, sizeof(err)) < 0) {
			report(arg, err);
			bad++;
		}
	}
	free(probed);
	free(infos);
	return bad;
}
