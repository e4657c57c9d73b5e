/* provcheck: whether each configured provider can use its plugin.
 *
 * config.c only reads the file; what a plugin needs (it loads, it wants an
 * api key) is known only by probing it in a child (plugin_probe).  Commands
 * that would run providers call this after config_load: check-config and a
 * reload on every provider, `serve` at start and `run` for the api keys. */
#ifndef T2I_PROVCHECK_H
#define T2I_PROVCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "plugin.h"

/* Called once per bad provider with a one-line message. */
typedef void provcheck_report_fn(void *arg, const char *message);

/* A provcheck_report_fn for the commands: "t2istage: MESSAGE" on stderr. */
void provcheck_to_stderr(void *arg, const char *message);

/* What provider i lacks given its plugin's probe: "provider NAME: <why the
 * plugin was refused>", "FILE:LINE: providers[i].api_key: missing (...)"
 * when the plugin needs a key the provider does not have, or
 * "FILE:LINE: providers[i].options: <the plugin's words>" when the plugin's
 * t2i_check_options refused them.  0 when usable, -1 with err filled
 * otherwise. */
int provcheck_one(const struct config *cfg, size_t i, const struct plugin_info *info, char *err,
		  size_t errlen);

/* Probes the plugins and reports every bad provider: each provider with its
 * options (t2i_check_options), or with keys_only each plugin file once,
 * only for the providers without an api key, and a plugin
 * that does not load is left to the workers, which fail its storyboards
 * with the loader's message.  Returns the number of bad providers, or -1
 * when memory ran out (reported too). */
int provcheck_run(const struct config *cfg, bool keys_only, provcheck_report_fn *report,
		  void *arg);

#endif
