/*
 * curl_policy: the transfer rules of every libcurl handle in t2istage, the
 * plugins' API calls (plugins/phttp.c) and the worker's image downloads
 * (modules/fetch_curl.c), written once so that the two cannot drift apart.
 * Private to the source tree: it is not installed with t2istage/plugin.h.
 *
 * TLS is verified; only http and https are spoken, also across redirects
 * (a provider's answer must not send us to file:// or another scheme); no
 * signals (curl's DNS timeout would otherwise use SIGALRM in a process that
 * has its own plans for signals).
 */
#ifndef T2I_CURL_POLICY_H
#define T2I_CURL_POLICY_H

#include <curl/curl.h>
#include <limits.h>

#ifndef T2I_VERSION
#define T2I_VERSION "0"
#endif

#define CURL_POLICY_PROTOCOLS "http,https"
/* Image CDNs and API gateways redirect once or twice; more is a loop. */
#define CURL_POLICY_MAXREDIRS 5L
#define CURL_POLICY_USERAGENT "t2istage/" T2I_VERSION

/* Seconds as curl milliseconds: 0 (no limit, or curl's default) when s is
 * not positive, at least 1 ms otherwise. */
static inline long curl_policy_ms(double s)
{
	if (!(s > 0))
		return 0;
	if (s * 1000 >= (double)LONG_MAX)
		return LONG_MAX;
	return s * 1000 < 1 ? 1 : (long)(s * 1000);
}

/* Applies the policy and the two time limits (seconds; <= 0: none) to h. */
static inline void curl_policy_apply(CURL *h, double connect_timeout_s, double timeout_s)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, CURL_POLICY_PROTOCOLS);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, CURL_POLICY_PROTOCOLS);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, CURL_POLICY_MAXREDIRS);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, CURL_POLICY_USERAGENT);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, curl_policy_ms(connect_timeout_s));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, curl_policy_ms(timeout_s));
}

#endif
