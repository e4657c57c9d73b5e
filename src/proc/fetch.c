/* fetch: the worker's side of downloads; libcurl lives in a module. */
#include "fetch.h"

#include <stdio.h>

#include "module.h"
#include "module_abi.h"

/* URLs can carry signatures: messages show only the scheme and host. */
static void
url_origin(const char *url, char *out, size_t outlen)
{
	int n = 0;

	if (sscanf(url, "%*[a-zA-Z]://%*[^/?#]%n", &n) == 0 && n > 0)
		snprintf(out, outlen, "%.*s", n, url);
	else
		snprintf(out, outlen, "(unparsable URL)");
}

void
fetch_prepare(void)
{
	module_fetch_prepare_fn *prepare;

	*(void **)&prepare = module_symbol(MODULE_FETCH, MODULE_FETCH_PREPARE);
	if (prepare != NULL)
		prepare();
}

int
fetch_url(const char *url, size_t max, double connect_timeout_s, double timeout_s, void **out,
	  size_t *outlen, char *err, size_t errlen)
{
	module_fetch_fn *fn;
	char why[256], origin[256];
	long status = 0;

	*(void **)&fn = module_symbol(MODULE_FETCH, MODULE_FETCH_URL);
	if (fn == NULL) {
		snprintf(err, errlen, "cannot download %s: the fetch_curl module is missing", url);
		return -1;
	}
	if (fn(url, max, connect_timeout_s, timeout_s, out, outlen, &status, why,
	       sizeof(why)) == 0)
		return 0;
	url_origin(url, origin, sizeof(origin));
	if (status == 403 || status == 404 || status == 410)
		snprintf(err, errlen, "image URL expired or gone (HTTP %ld from %s)", status,
			 origin);
	else
		snprintf(err, errlen, "%s (%s)", why, origin);
	return -1;
}
