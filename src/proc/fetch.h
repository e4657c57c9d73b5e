/* fetch: downloading the images a plugin hands over as URLs, at once, in
 * the worker (provider URLs expire within hours). */
#ifndef T2I_FETCH_H
#define T2I_FETCH_H

#include <stddef.h>

/* GET url, at most max bytes.  0 with *out (free with free()), or -1 with
 * a reason in err naming what happened (an expired URL says so). */
int fetch_url(const char *url, size_t max, double connect_timeout_s, double timeout_s,
	      void **out, size_t *outlen, char *err, size_t errlen);

/* Loads the download module and initialises libcurl (and with it OpenSSL)
 * ahead of the first download: for a template (see template.h), which has
 * no threads, so that its workers inherit the work done. */
void fetch_prepare(void);

#endif
