/* http.listen (http_conn.c's parse_listen, reached by including the file).
 * getaddrinfo() is wrapped so that a host name is never looked up: the
 * harness must send nothing to a resolver, and numeric hosts are what the
 * parser's own logic handles. */
#include <dlfcn.h>

#include "http_conn.c"

#include "fuzz.h"

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
	    struct addrinfo **res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	struct addrinfo h = *hints;

	if (real == NULL && (real = (__typeof__(real))dlsym(RTLD_NEXT, "getaddrinfo")) == NULL)
		abort();
	h.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &h, res);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_cstr(data, size), err[512];
	struct sockaddr_storage ss;
	bool dual = false;

	if (parse_listen(in, &ss, &dual, err, sizeof(err)) == 0) {
		if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
			abort();
	} else if (err[0] == '\0') {
		abort();
	}
	free(in);
	return 0;
}
