/* curl_common: the options every libcurl transfer of the modules shares:
 * http and https only, TLS verified, no signals (the process has its own
 * uses for them), and both timeouts. */
#ifndef T2I_CURL_COMMON_H
#define T2I_CURL_COMMON_H

#include <curl/curl.h>

static inline void
curl_common_setopt(CURL *h, const char *url, double connect_timeout_s, double timeout_s,
		   const char *agent)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_timeout_s * 1000));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
	curl_easy_setopt(h, CURLOPT_USERAGENT, agent);
}

#endif
