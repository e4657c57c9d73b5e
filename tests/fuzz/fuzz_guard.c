/* Who may make a request (guard_check), from the headers of one: the
 * first byte's bits say which of the route's flags hold and whether the
 * service has a token, the rest is newline-separated fields (an empty
 * field is an absent header): method, path, Origin, Host,
 * X-Forwarded-Host, Authorization, Content-Type,
 * Access-Control-Request-Method, ?access_token=, ?exp=, ?sig=. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "guard.h"
#include "urlsig.h"

enum { F_METHOD, F_PATH, F_ORIGIN, F_HOST, F_FWD, F_AUTH, F_CTYPE, F_PREFLIGHT, F_TOKEN,
       F_EXP, F_SIG, NFIELDS };

static const char *
field(char **f, int i)
{
	return f[i] != NULL && f[i][0] != '\0' ? f[i] : NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char key[32] = "0123456789abcdef0123456789abcdef";
	static char *origins[] = { "https://app.example", "http://127.0.0.1:5173" };
	struct urlsig u = { .key = key, .keylen = sizeof(key), .ttl = 86400 };
	struct guard g = { .origins = origins, .norigins = 2, .urlsig = &u };
	char *f[NFIELDS], *block, msg[256];
	unsigned status = 0, bits;
	enum guard_verdict v;

	if (size < 1)
		return 0;
	bits = data[0];
	fuzz_fields(data + 1, size - 1, '\n', f, NFIELDS, &block);
	g.token = bits & 16 ? "s3cret-token" : NULL;
	struct guard_req r = {
		.method = f[F_METHOD] != NULL ? f[F_METHOD] : "GET",
		.path = f[F_PATH] != NULL ? f[F_PATH] : "/",
		.matched = bits & 1, .public = bits & 2, .query_token = bits & 4,
		.signed_url = bits & 8,
		.origin = field(f, F_ORIGIN), .host = field(f, F_HOST),
		.forwarded_host = field(f, F_FWD), .authorization = field(f, F_AUTH),
		.content_type = field(f, F_CTYPE), .preflight_method = field(f, F_PREFLIGHT),
		.access_token = field(f, F_TOKEN), .exp = field(f, F_EXP), .sig = field(f, F_SIG),
		.now = 1767225600,
	};
	v = guard_check(&g, &r, &status, msg, sizeof(msg));
	if (v == GUARD_REFUSE && (status < 400 || status > 599 || msg[0] == '\0'))
		abort();
	if (v == GUARD_REFUSE && strstr(msg, "s3cret-token") != NULL)
		abort();	/* the token is never echoed */
	free(block);
	return 0;
}
