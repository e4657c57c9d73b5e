/* config: the configuration file (libconfig syntax) read into an immutable
 * struct.  Strict on purpose: a mistyped key or a value out of range must stop
 * the daemon at start (or keep the old generation on reload) rather than turn
 * silently into a default.  Every error is one line "FILE:LINE: KEY: message"
 * and never contains a secret (api_key, the HTTP token): error lines end up in
 * logs. */
#include "config.h"

#include "envsubst.h"
#include "hash.h"
#include "imgsize.h"
#include "jsontext.h"
#include "paths.h"
#include "project.h"
#include "urlkey.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUILTIN_NAME "(built-in defaults)"
#define KEY_MAX 512
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
#define NAME_LEN_MAX 64
#define SECRET_MAX 4096	/* bytes; a larger file is a mistake, not a key */
#define TIMEOUT_MAX 86400.0	/* one day per image */

/* Masks of accepted libconfig types. */
#define T(type) (1u << (type))
#define T_INT (T(CONFIG_TYPE_INT) | T(CONFIG_TYPE_INT64))
#define T_STR T(CONFIG_TYPE_STRING)
#define T_GROUP T(CONFIG_TYPE_GROUP)

/* One load.  Only the first error is kept (later ones tend to be its
 * consequences), so the getters below need no early returns: after an error
 * they do nothing. */
struct loader {
	const char *file;	/* as given, for messages */
	const char *dir;	/* absolute; relative paths in the file resolve against it */
	char *err;
	size_t errlen;
	bool failed;
};

/* The keys a group may hold, for check_keys(). */
#define KEYS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* ---- errors and allocation ---- */

/* Full key of a setting: "workers.max", "providers[1].options.sizes[0]". */
static void
setting_key(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *parent = config_setting_parent(s);
	size_t n;

	buf[0] = '\0';
	if (parent == NULL)	/* the root has no name */
		return;
	setting_key(parent, buf, len);
	n = strlen(buf);
	if (config_setting_name(s) != NULL)
		snprintf(buf + n, len - n, "%s%s", n > 0 ? "." : "", config_setting_name(s));
	else
		snprintf(buf + n, len - n, "[%d]", config_setting_index(s));
}

/* Records "FILE:LINE: KEY: message", KEY being at's own key when key is NULL.
 * Without a setting (built-in defaults) there is no LINE; without a key
 * either, no KEY.  Returns false so that callers can `return fail(...)`. */
__attribute__((format(printf, 4, 5))) static bool
fail(struct loader *ld, const config_setting_t *at, const char *key, const char *fmt, ...)
{
	char msg[1024], own[KEY_MAX], line[16] = "";
	const char *file = ld->file;
	va_list ap;

	if (ld->failed)
		return false;
	ld->failed = true;
	if (ld->errlen == 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (at != NULL && key == NULL) {
		setting_key(at, own, sizeof(own));
		key = own;
	}
	if (at != NULL && config_setting_source_file(at) != NULL)
		file = config_setting_source_file(at);	/* differs inside an @include */
	if (at != NULL)
		snprintf(line, sizeof(line), ":%u", (unsigned)config_setting_source_line(at));
	snprintf(ld->err, ld->errlen, "%s%s: %s%s%s", file, line, key != NULL ? key : "",
		 key != NULL ? ": " : "", msg);
	return false;
}

/* Passes p through, recording an error when an allocation returned NULL. */
static void *
oom(struct loader *ld, void *p)
{
	if (p == NULL)
		fail(ld, NULL, NULL, "out of memory");
	return p;
}

/* Replaces *dst by v unless v is NULL (after an error). */
static void
replace(char **dst, char *v)
{
	if (v == NULL)
		return;
	free(*dst);
	*dst = v;
}

static void
free_secret(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
	free(s);
}

/* ---- paths and secret files ---- */

/* base/rel (rel alone when absolute) with "//", "." and ".." folded
 * lexically: the directories need not exist yet, so no realpath(). */
static char *
path_resolve(const char *base, const char *rel)
{
	/* fail() has set failed: the analyzer does not follow its variadic
	 * body.  NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
	size_t n = strlen(base) + strlen(rel) + 3, o = 0;
	char *in = malloc(2 * n), *out, *save = NULL;

	if (in == NULL)
		return NULL;
	out = in + n;	/* the result is never longer than the joined input */
	snprintf(in, n, "%s/%s", rel[0] == '/' ? "" : base, rel);
	for (char *seg = strtok_r(in, "/", &save); seg != NULL; seg = strtok_r(NULL, "/", &save)) {
		if (strcmp(seg, "..") == 0)
			while (o > 0 && out[--o] != '/')
				;
		else if (strcmp(seg, ".") != 0)
			o += (size_t)snprintf(out + o, n - o, "/%s", seg);
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return memmove(in, out, o + 1);
}

/* rel with its environment variables expanded (see envsubst.h: systemd
 * credentials), resolved against the file's directory. */
static char *
secret_path(struct loader *ld, const config_setting_t *at, const char *rel)
{
	char why[256], *expanded = envsubst(rel, why, sizeof(why)), *path = NULL;

	if (expanded == NULL)
		fail(ld, at, NULL, "%s", why);
	else
		path = oom(ld, path_resolve(ld->dir, expanded));
	free(expanded);
	return path;
}

/* The secret held in file rel, without trailing whitespace.  Read
 * unbuffered so that no stdio buffer keeps a copy. */
static char *
read_secret(struct loader *ld, const config_setting_t *at, const char *rel)
{
	char buf[SECRET_MAX + 1], *path = secret_path(ld, at, rel), *v = NULL;
	FILE *f = path != NULL ? fopen(path, "re") : NULL;
	size_t n = 0;

	if (f != NULL && setvbuf(f, NULL, _IONBF, 0) == 0)
		n = fread(buf, 1, sizeof(buf), f);
	if (path != NULL && (f == NULL || ferror(f)))
		fail(ld, at, NULL, "cannot read %s: %s", path, strerror(errno));
	else if (n > SECRET_MAX)
		fail(ld, at, NULL, "%s is larger than %d bytes", path, SECRET_MAX);
	while (!ld->failed && n > 0 && strchr(" \t\r\n\v\f", buf[n - 1]) != NULL)
		n--;
	buf[ld->failed ? 0 : n] = '\0';
	if (!ld->failed && n == 0)
		fail(ld, at, NULL, "%s is empty", path);
	if (!ld->failed)
		v = oom(ld, strdup(buf));
	explicit_bzero(buf, sizeof(buf));
	if (f != NULL)
		fclose(f);
	free(path);
	return v;
}

/* ---- typed getters: each leaves *dst alone when the key is absent ---- */

/* Member name of g when present and of one of the types; NULL when absent,
 * when g is absent, or after an error. */
static config_setting_t *
member(struct loader *ld, const config_setting_t *g, const char *name, unsigned types,
       const char *want)
{
	config_setting_t *s;

	if (g == NULL || ld->failed)
		return NULL;
	s = config_setting_get_member(g, name);
	if (s != NULL && (T(config_setting_type(s)) & types) == 0) {
		fail(ld, s, NULL, "expected %s", want);
		return NULL;
	}
	return s;
}

static bool
check_keys(struct loader *ld, const config_setting_t *g, const char *const *keys)
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *c = config_setting_get_elem(g, (unsigned)i);
		int k = 0;

		while (keys[k] != NULL && strcmp(keys[k], config_setting_name(c)) != 0)
			k++;
		if (keys[k] == NULL)
			return fail(ld, c, NULL, "unknown key");
	}
	return true;
}

static const config_setting_t *
get_group(struct loader *ld, const config_setting_t *g, const char *name, const char *const *keys)
{
	config_setting_t *s = member(ld, g, name, T_GROUP, "a group { ... }");

	return s != NULL && check_keys(ld, s, keys) ? s : NULL;
}

static void
get_bool(struct loader *ld, const config_setting_t *g, const char *name, bool *dst)
{
	config_setting_t *s = member(ld, g, name, T(CONFIG_TYPE_BOOL), "a boolean (true or false)");

	if (s != NULL)
		*dst = config_setting_get_bool(s) != 0;
}

static void
get_int(struct loader *ld, const config_setting_t *g, const char *name, int *dst, int min, int max)
{
	config_setting_t *s = member(ld, g, name, T_INT, "an integer");
	long long v = s != NULL ? config_setting_get_int64(s) : 0;

	if (s != NULL && (v < min || v > max))
		fail(ld, s, NULL, "must be between %d and %d (got %lld)", min, max, v);
	else if (s != NULL)
		*dst = (int)v;
}

/* Takes integers too: people write "timeout = 900;".  The caller checks the
 * range, with the returned setting for the message. */
static const config_setting_t *
get_double(struct loader *ld, const config_setting_t *g, const char *name, double *dst)
{
	config_setting_t *s = member(ld, g, name, T_INT | T(CONFIG_TYPE_FLOAT), "a number");

	if (s != NULL && config_setting_type(s) == CONFIG_TYPE_FLOAT)
		*dst = config_setting_get_float(s);
	else if (s != NULL)
		*dst = (double)config_setting_get_int64(s);
	if (s != NULL && !isfinite(*dst))
		fail(ld, s, NULL, "must be a finite number");
	return ld->failed ? NULL : s;
}

/* A number from 0 to max: a rate, a price, a budget, a wait. */
static void
get_amount(struct loader *ld, const config_setting_t *g, const char *name, double *dst,
	   double max)
{
	const config_setting_t *s = get_double(ld, g, name, dst);

	if (s != NULL && !(*dst >= 0 && *dst <= max))
		fail(ld, s, NULL, "must be a number from 0 to %g (got %g)", max, *dst);
}

static const config_setting_t *
get_string(struct loader *ld, const config_setting_t *g, const char *name, char **dst,
	   bool allow_empty)
{
	config_setting_t *s = member(ld, g, name, T_STR, "a string");

	if (s != NULL && !allow_empty && config_setting_get_string(s)[0] == '\0')
		fail(ld, s, NULL, "must not be empty");
	else if (s != NULL)
		replace(dst, oom(ld, strdup(config_setting_get_string(s))));
	return ld->failed ? NULL : s;
}

/* Relative paths are taken against the config file's directory. */
static void
get_path(struct loader *ld, const config_setting_t *g, const char *name, char **dst)
{
	char *rel = NULL;

	if (get_string(ld, g, name, &rel, false) != NULL)
		replace(dst, oom(ld, path_resolve(ld->dir, rel)));
	free(rel);
}

/* `name` inline, or `name_file` holding it; both at once is ambiguous. */
static void
get_secret(struct loader *ld, const config_setting_t *g, const char *name, const char *name_file,
	   char **dst)
{
	config_setting_t *inl = member(ld, g, name, T_STR, "a string");
	config_setting_t *file = member(ld, g, name_file, T_STR, "a string");
	config_setting_t *s = inl != NULL ? inl : file;
	char *v = NULL;

	if (inl != NULL && file != NULL)
		fail(ld, file, NULL, "give either %s or %s, not both", name, name_file);
	else if (s != NULL && config_setting_get_string(s)[0] == '\0')
		fail(ld, s, NULL, "must not be empty");
	else if (s != NULL)
		v = s == inl ? oom(ld, strdup(config_setting_get_string(s)))
			     : read_secret(ld, s, config_setting_get_string(s));
	if (v != NULL) {
		free_secret(*dst);
		*dst = v;
	}
}

/* ---- provider options: libconfig values to JSON ---- */

static json_t *
to_json(struct loader *ld, const config_setting_t *s)
{
	json_t *j;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return json_integer(config_setting_get_int64(s));
	case CONFIG_TYPE_FLOAT:
		return json_real(config_setting_get_float(s));	/* NULL unless finite */
	case CONFIG_TYPE_BOOL:
		return json_boolean(config_setting_get_bool(s));
	case CONFIG_TYPE_STRING:
		return json_string(config_setting_get_string(s));	/* NULL unless UTF-8 */
	default:
		j = config_setting_type(s) == CONFIG_TYPE_GROUP ? json_object() : json_array();
	}
	for (int i = 0; j != NULL && i < config_setting_length(s); i++) {
		const config_setting_t *c = config_setting_get_elem(s, (unsigned)i);
		json_t *v = to_json(ld, c);
		int rc = -1;

		/* The *_new calls take v's reference even when they fail. */
		if (v != NULL && json_is_object(j))
			rc = json_object_set_new(j, config_setting_name(c), v);
		else if (v != NULL)
			rc = json_array_append_new(j, v);
		if (rc != 0) {
			fail(ld, c, NULL, "not expressible in JSON (not finite, or not UTF-8)");
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

/* Sorted keys make the text canonical: it is part of the image cache key. */
static void
get_options(struct loader *ld, const config_setting_t *g, char **dst)
{
	config_setting_t *s = member(ld, g, "options", T_GROUP, "a group { ... }");
	json_t *j = s != NULL ? to_json(ld, s) : NULL;
	char *text = j != NULL ? jsontext_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(j);
	if (s != NULL && text == NULL)
		fail(ld, s, NULL, "cannot convert to JSON");
	replace(dst, text);
}

/* ---- http: CORS origins, the key and lifetime of signed image URLs ---- */

/* Where the port of "scheme://host[:port]" starts, or NULL. */
static const char *
origin_host_end(const char *host)
{
	const char *end;

	if (*host == '[')
		return (end = strchr(host, ']')) != NULL && end > host + 1 ? end + 1 : NULL;
	end = host + strspn(host, "abcdefghijklmnopqrstuvwxyz0123456789.-");
	return end > host ? end : NULL;
}

/* o as browsers write it in Origin: lower case, no path, no default port.
 * o is lowered in place. */
static bool
origin_check(struct loader *ld, const config_setting_t *s, char *o)
{
	const char *sep, *port;
	char *end;
	long n = 0;

	for (char *c = o; *c != '\0'; c++) {
		if (*c <= 0x20 || *c >= 0x7f)
			return fail(ld, s, NULL, "an origin is printable ASCII without spaces");
		*c = (char)tolower((unsigned char)*c);
	}
	sep = strstr(o, "://");
	if (sep == NULL || !isalpha((unsigned char)o[0]) ||
	    strspn(o, "abcdefghijklmnopqrstuvwxyz0123456789+.-") != (size_t)(sep - o) ||
	    (port = origin_host_end(sep + 3)) == NULL)
		return fail(ld, s, NULL, "\"%s\": expected scheme://host[:port]", o);
	if (*port == ':') {
		errno = 0;
		n = isdigit((unsigned char)port[1]) ? strtol(port + 1, &end, 10) : -1;
		if (n < 1 || n > 65535 || *end != '\0' || errno != 0)
			return fail(ld, s, NULL, "\"%s\": the port must be 1 to 65535", o);
	} else if (*port != '\0') {
		return fail(ld, s, NULL, "\"%s\": an origin has no path, query or trailing slash"
			    " (scheme://host[:port])", o);
	}
	/* Browsers leave a default port out of Origin: it would never match. */
	if ((n == 80 && strncmp(o, "http:", 5) == 0) || (n == 443 && strncmp(o, "https:", 6) == 0))
		return fail(ld, s, NULL, "\"%s\": leave the default port out, as browsers do", o);
	return true;
}

/* A list of strings, each checked (and changed in place) by check, with
 * no two alike: the CORS origins, the server names. */
static void
get_string_list(struct loader *ld, const config_setting_t *g, const char *name, size_t max,
		const char *want, bool (*check)(struct loader *, const config_setting_t *, char *),
		char ***out, size_t *nout)
{
	const config_setting_t *l = member(ld, g, name, T(CONFIG_TYPE_ARRAY) | T(CONFIG_TYPE_LIST),
					   want);
	size_t n = l != NULL ? (size_t)config_setting_length(l) : 0;
	char **v;

	if (n > max) {
		fail(ld, l, NULL, "at most %zu entries", max);
		return;
	}
	if (n == 0 || (v = *out = oom(ld, calloc(n, sizeof(char *)))) == NULL)
		return;
	for (size_t i = 0; i < n && !ld->failed; i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			fail(ld, e, NULL, "expected a string");
			break;
		}
		if ((v[i] = oom(ld, strdup(config_setting_get_string(e)))) == NULL)
			break;
		*nout = i + 1;
		if (check(ld, e, v[i]))
			for (size_t k = 0; k < i; k++)
				if (strcmp(v[k], v[i]) == 0)
					fail(ld, e, NULL, "\"%s\" is listed twice", v[i]);
	}
}

/* A server name as Host carries it: "name", "name:port", "[v6]" or
 * "[v6]:port", lowered in place; or "*", any. */
static bool
server_name_check(struct loader *ld, const config_setting_t *s, char *name)
{
	const char *port;
	char *end;
	long n;

	for (char *c = name; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	if (strcmp(name, "*") == 0)
		return true;
	if (strstr(name, "://") != NULL)
		return fail(ld, s, NULL, "\"%s\": expected a host name, not a URL", name);
	if ((port = origin_host_end(name)) == NULL)
		return fail(ld, s, NULL, "\"%s\": expected a host name or address, with an"
			    " optional :port (\"*\" for any)", name);
	if (*port == '\0')
		return true;
	errno = 0;
	n = *port == ':' && isdigit((unsigned char)port[1]) ? strtol(port + 1, &end, 10) : -1;
	if (n < 1 || n > 65535 || *end != '\0' || errno != 0)
		return fail(ld, s, NULL, "\"%s\": expected host[:port] with a port of 1 to 65535",
			    name);
	return true;
}

static void
get_cors(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	get_string_list(ld, g, "cors_origins", CONFIG_CORS_MAX,
			"a list of origins [\"https://ui.example\", ...]", origin_check,
			&cfg->http_cors_origins, &cfg->http_ncors);
}

/* Limits on what clients may hold: connections, time, memory. */
static void
get_http_limits(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	const config_setting_t *s;

	get_int(ld, g, "max_connections", &cfg->http_max_connections, 1, CONFIG_CONNECTIONS_MAX);
	s = member(ld, g, "max_connections_per_ip", T_INT, "an integer");
	get_int(ld, g, "max_connections_per_ip", &cfg->http_max_connections_per_ip, 1,
		CONFIG_CONNECTIONS_MAX);
	if (s != NULL && !ld->failed &&
	    cfg->http_max_connections_per_ip > cfg->http_max_connections)
		fail(ld, s, NULL, "must not exceed http.max_connections (%d)",
		     cfg->http_max_connections);
	else if (s == NULL && cfg->http_max_connections_per_ip > cfg->http_max_connections)
		cfg->http_max_connections_per_ip = cfg->http_max_connections;
	get_int(ld, g, "request_timeout", &cfg->http_request_timeout, 1, CONFIG_HTTP_TIMEOUT_MAX);
	get_int(ld, g, "sse_stall_timeout", &cfg->http_sse_stall_timeout, 1,
		CONFIG_HTTP_TIMEOUT_MAX);
	/* Never below the largest body, which could then never be taken. */
	get_int(ld, g, "max_body_memory", &cfg->http_max_body_memory, (int)PROJECT_FILE_MAX,
		INT_MAX);
	get_string_list(ld, g, "server_names", CONFIG_SERVER_NAMES_MAX,
			"a list of host names [\"images.example\", \"images.example:8080\", ...]",
			server_name_check, &cfg->http_server_names, &cfg->http_nserver_names);
}

/* url_key_file is read now when given; otherwise serve makes the default
 * beside the database (a side effect config_load must not have). */
static void
get_url_key(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	char msg[512];
	const config_setting_t *s = get_string(ld, g, "url_key_file", &cfg->http_url_key_file,
					       false);

	if (s != NULL) {
		replace(&cfg->http_url_key_file,
			oom(ld, path_resolve(ld->dir, cfg->http_url_key_file)));
		cfg->http_url_key_given = true;
		if (!ld->failed && urlkey_read(cfg->http_url_key_file, &cfg->http_url_key,
					       &cfg->http_url_key_len, msg, sizeof(msg)) < 0)
			fail(ld, s, NULL, "%s", msg);
	}
	get_int(ld, g, "url_ttl", &cfg->http_url_ttl, 1, CONFIG_URL_TTL_MAX);
}

/* After the database is known.  Several instances on PostgreSQL must sign
 * with one key: theirs is in the storage directory they share. */
static void
default_url_key(struct loader *ld, struct config *cfg)
{
	if (!ld->failed && cfg->http_url_key_file == NULL)
		cfg->http_url_key_file =
			oom(ld, cfg->database_pg ? path_resolve(cfg->storage_dir, URLKEY_FILE)
						 : path_resolve(cfg->database, "../" URLKEY_FILE));
}

/* ---- the database: a file (SQLite) or a PostgreSQL URI ---- */

/* uri for messages: the password of its user info and of a password=
 * parameter replaced by "[redacted]". */
static char *
redact_uri(const char *uri)
{
	const char *auth = strstr(uri, "://") + 3, *end = auth + strcspn(auth, "/?"), *at = NULL;
	const char *colon, *q;
	size_t n = 2 * strlen(uri) + 32;	/* each [redacted] grows by 10 at most */
	char *out = malloc(n), *o;

	if (out == NULL)
		return NULL;
	for (const char *p = auth; p < end; p++)
		at = *p == '@' ? p : at;
	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	o = out + snprintf(out, n, "%.*s%s", (int)((colon != NULL ? colon : auth) - uri), uri,
			   colon != NULL ? ":[redacted]" : "");
	snprintf(o, n - (size_t)(o - out), "%s", colon != NULL ? at : auth);
	/* password=... in the parameters: up to the next &. */
	for (q = strstr(out, "password="); q != NULL; q = strstr(q + 1, "password=")) {
		char *v = (char *)q + 9;
		size_t len = strcspn(v, "&");

		if (q > out && q[-1] != '?' && q[-1] != '&')
			continue;
		if (strlen(out) + 12 >= n)
			break;
		memmove(v + 10, v + len, strlen(v + len) + 1);
		memcpy(v, "[redacted]", 10);
	}
	return out;
}

static bool
is_pg_uri(const char *v)
{
	return strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0;
}

/* cluster = { lease; rescue_interval; name; } */
static void
load_cluster(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *g = get_group(ld, root, "cluster",
					       KEYS("lease", "rescue_interval", "name"));
	const config_setting_t *s;

	if (g != NULL && !cfg->database_pg)
		fail(ld, g, NULL, "only with a PostgreSQL database (database = \"postgresql://...\")");
	s = get_double(ld, g, "lease", &cfg->cluster_lease);
	if (s != NULL && !(cfg->cluster_lease >= 1.0 && cfg->cluster_lease <= 3600.0))
		fail(ld, s, NULL, "must be between 1 and 3600 seconds");
	s = get_double(ld, g, "rescue_interval", &cfg->cluster_rescue_interval);
	if (s != NULL && !(cfg->cluster_rescue_interval > 0 &&
			   cfg->cluster_rescue_interval <= cfg->cluster_lease))
		fail(ld, s, NULL, "must be more than 0 and at most cluster.lease (%g)",
		     cfg->cluster_lease);
	s = get_string(ld, g, "name", &cfg->cluster_name, false);
	if (s != NULL && (strlen(cfg->cluster_name) > NAME_LEN_MAX ||
			  strspn(cfg->cluster_name, NAME_CHARS) != strlen(cfg->cluster_name)))
		fail(ld, s, NULL, "must be 1 to %d of [A-Za-z0-9_.-]", NAME_LEN_MAX);
}

static void
load_database(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	char *v = NULL;
	const config_setting_t *s = get_string(ld, root, "database", &v, false);
	config_setting_t *pw = member(ld, root, "database_password_file", T_STR, "a string");

	if (s == NULL || v == NULL) {
		;	/* the default, or an error already */
	} else if (is_pg_uri(v)) {
		cfg->database_pg = true;
		replace(&cfg->database, v);
		replace(&cfg->database_display, oom(ld, redact_uri(v)));
		v = NULL;
	} else {
		replace(&cfg->database, oom(ld, path_resolve(ld->dir, v)));
		replace(&cfg->database_display, oom(ld, strdup(cfg->database)));
	}
	free(v);
	if (pw != NULL && !cfg->database_pg)
		fail(ld, pw, NULL, "only with a PostgreSQL database (database = \"postgresql://...\")");
	else if (pw != NULL)
		cfg->database_password = read_secret(ld, pw, config_setting_get_string(pw));
	s = get_double(ld, root, "database_timeout", &cfg->database_timeout);
	if (s != NULL && !(cfg->database_timeout >= 0.1 && cfg->database_timeout <= 300.0))
		fail(ld, s, NULL, "must be between 0.1 and 300 seconds");
	load_cluster(ld, root, cfg);
}

/* ---- groups ---- */

static void
load_service(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *g;

	load_database(ld, root, cfg);
	g = get_group(ld, root, "storage", KEYS("dir", "thumbnails"));
	get_path(ld, g, "dir", &cfg->storage_dir);
	get_bool(ld, g, "thumbnails", &cfg->thumbnails);
	g = get_group(ld, root, "plugins", KEYS("dir"));
	get_path(ld, g, "dir", &cfg->plugins_dir);
	g = get_group(ld, root, "workers", KEYS("max", "batch_size"));
	get_int(ld, g, "max", &cfg->workers_max, 1, 256);
	get_int(ld, g, "batch_size", &cfg->batch_size, 1, 1000);
	g = get_group(ld, root, "cache", KEYS("enabled"));
	get_bool(ld, g, "enabled", &cfg->cache_enabled);
	g = get_group(ld, root, "http", KEYS("listen", "token", "token_file", "cors_origins",
					     "url_key_file", "url_ttl", "server_names",
					     "max_connections", "max_connections_per_ip",
					     "request_timeout", "sse_stall_timeout",
					     "max_body_memory"));
	get_string(ld, g, "listen", &cfg->http_listen, false);
	get_secret(ld, g, "token", "token_file", &cfg->http_token);
	get_cors(ld, g, cfg);
	get_url_key(ld, g, cfg);
	get_http_limits(ld, g, cfg);
}

static void
load_generation(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *g, *s;

	g = get_group(ld, root, "generation",
		      KEYS("ratio", "resolution", "timeout", "connect_timeout"));
	s = get_string(ld, g, "ratio", &cfg->ratio, false);
	if (s != NULL && !imgsize_ratio_valid(cfg->ratio))
		fail(ld, s, NULL, "unknown ratio \"%s\" (known: %s)", cfg->ratio, imgsize_ratios);
	s = get_string(ld, g, "resolution", &cfg->resolution, false);
	if (s != NULL && !imgsize_resolution_valid(cfg->resolution))
		fail(ld, s, NULL, "unknown resolution \"%s\" (known: %s)", cfg->resolution,
		     imgsize_resolutions);
	s = get_double(ld, g, "timeout", &cfg->timeout);
	if (s != NULL && !(cfg->timeout > 0 && cfg->timeout <= TIMEOUT_MAX))
		fail(ld, s, NULL, "must be more than 0 and at most %.0f seconds", TIMEOUT_MAX);
	s = get_double(ld, g, "connect_timeout", &cfg->connect_timeout);
	if (s != NULL && !(cfg->connect_timeout > 0 && cfg->connect_timeout <= TIMEOUT_MAX))
		fail(ld, s, NULL, "must be more than 0 and at most %.0f seconds", TIMEOUT_MAX);
}

static void
load_retry(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *g, *b, *bmax;

	g = get_group(ld, root, "retry",
		      KEYS("attempts", "backoff", "backoff_max", "rate_limit_wait"));
	get_int(ld, g, "attempts", &cfg->retry_attempts, 1, 100);
	get_amount(ld, g, "rate_limit_wait", &cfg->retry_rate_limit_wait, TIMEOUT_MAX);
	b = get_double(ld, g, "backoff", &cfg->retry_backoff);
	if (b != NULL && cfg->retry_backoff < 0)
		fail(ld, b, NULL, "must not be negative");
	bmax = get_double(ld, g, "backoff_max", &cfg->retry_backoff_max);
	if (ld->failed || cfg->retry_backoff_max >= cfg->retry_backoff)
		return;
	/* Blame whichever of the two the file sets (the other is a default). */
	if (bmax != NULL)
		fail(ld, bmax, NULL, "must be at least retry.backoff (%g)", cfg->retry_backoff);
	else
		fail(ld, b, NULL, "must not be more than retry.backoff_max (%g)",
		     cfg->retry_backoff_max);
}

/* ---- providers ---- */

static bool
name_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= NAME_LEN_MAX && strspn(s, NAME_CHARS) == n;
}

/* Only checks that <plugins.dir>/<plugin>.so is there: whether it is safe
 * and loadable is plugin.c's business.  at is NULL for the built-in default. */
static void
check_plugin(struct loader *ld, const struct config *cfg, struct config_provider *p,
	     const config_setting_t *at, const char *key)
{
	char file[NAME_LEN_MAX + 4];	/* the name is valid by now */
	struct stat st;

	snprintf(file, sizeof(file), "%s.so", p->plugin);
	if ((p->plugin_path = oom(ld, path_resolve(cfg->plugins_dir, file))) == NULL)
		return;
	if (stat(p->plugin_path, &st) != 0)
		fail(ld, at, key, "%s: %s", errno == ENOENT ? "plugin not found" : strerror(errno),
		     p->plugin_path);
	else if (!S_ISREG(st.st_mode))
		fail(ld, at, key, "plugin is not a regular file: %s", p->plugin_path);
}

static void
provider_init(struct loader *ld, struct config_provider *p, const char *name, const char *model)
{
	p->name = oom(ld, strdup(name));
	p->plugin = oom(ld, strdup(name));
	p->api_url = oom(ld, strdup(""));
	p->api_key = oom(ld, strdup(""));
	p->model = oom(ld, strdup(model));
	p->options_json = oom(ld, strdup("{}"));
	p->concurrency = 4;
	p->budget_run = p->budget_day = -1;
}

#define RATE_MAX 1e6		/* requests a minute */
#define AMOUNT_MAX 1e15		/* a price or a budget, in any unit */

/* rate, cost and budget = { per_run; per_day; }: what a provider may be
 * asked, and spent on. */
static void
load_spend(struct loader *ld, struct config_provider *p, const config_setting_t *g)
{
	const config_setting_t *b = get_group(ld, g, "budget", KEYS("per_run", "per_day"));
	const config_setting_t *r = get_double(ld, g, "rate", &p->rate);

	/* 0 would mean "never send": leaving the provider out says that. */
	if (r != NULL && !(p->rate > 0 && p->rate <= RATE_MAX))
		fail(ld, r, NULL, "must be a number more than 0 and at most %g requests a minute "
		     "(got %g)", RATE_MAX, p->rate);
	get_amount(ld, g, "cost", &p->cost, AMOUNT_MAX);
	get_amount(ld, b, "per_run", &p->budget_run, AMOUNT_MAX);
	get_amount(ld, b, "per_day", &p->budget_day, AMOUNT_MAX);
}

/* Provider i against those before it: unique names, a single default. */
static void
check_unique(struct loader *ld, const struct config *cfg, size_t i, const config_setting_t *g)
{
	const struct config_provider *p = &cfg->providers[i];

	for (size_t k = 0; k < i; k++) {
		if (strcmp(cfg->providers[k].name, p->name) == 0)
			fail(ld, config_setting_get_member(g, "name"), NULL,
			     "duplicate provider name \"%s\" (also providers[%zu])", p->name, k);
		else if (p->is_default && cfg->providers[k].is_default)
			fail(ld, config_setting_get_member(g, "default"), NULL,
			     "more than one default provider (providers[%zu] is one)", k);
	}
}

/* Reads provider i; its plugin defaults to its name. */
static void
load_provider(struct loader *ld, struct config *cfg, size_t i, const config_setting_t *g)
{
	struct config_provider *p = &cfg->providers[i];
	const config_setting_t *name, *plugin;
	char key[KEY_MAX];

	provider_init(ld, p, "", "");
	p->source_file = oom(ld, strdup(config_setting_source_file(g) != NULL
					       ? config_setting_source_file(g) : ld->file));
	p->source_line = (unsigned)config_setting_source_line(g);
	check_keys(ld, g, KEYS("name", "plugin", "default", "api_url", "api_key", "api_key_file",
			       "model", "concurrency", "options", "rate", "cost", "budget"));
	snprintf(key, sizeof(key), "providers[%zu].name", i);
	if ((name = get_string(ld, g, "name", &p->name, false)) == NULL && !ld->failed)
		fail(ld, g, key, "missing (every provider needs a name)");
	else if (name != NULL && !name_valid(p->name))
		fail(ld, name, NULL, "must match [A-Za-z0-9_.-]{1,64}");
	if ((plugin = get_string(ld, g, "plugin", &p->plugin, false)) == NULL && !ld->failed)
		replace(&p->plugin, oom(ld, strdup(p->name)));
	else if (plugin != NULL && !name_valid(p->plugin))
		fail(ld, plugin, NULL, "must match [A-Za-z0-9_.-]{1,64}");
	get_bool(ld, g, "default", &p->is_default);
	get_string(ld, g, "api_url", &p->api_url, true);
	get_secret(ld, g, "api_key", "api_key_file", &p->api_key);
	get_string(ld, g, "model", &p->model, true);
	get_int(ld, g, "concurrency", &p->concurrency, 1, 64);
	get_options(ld, g, &p->options_json);
	load_spend(ld, p, g);
	if (!ld->failed)
		check_unique(ld, cfg, i, g);
	snprintf(key, sizeof(key), "providers[%zu].plugin", i);
	if (!ld->failed)
		check_plugin(ld, cfg, p, plugin != NULL ? plugin : g, key);
}

/* The placeholder provider, used when there is no providers list. */
static void
builtin_provider(struct loader *ld, struct config *cfg)
{
	struct config_provider *p = oom(ld, calloc(1, sizeof(*p)));

	if (p == NULL)
		return;
	cfg->providers = p;
	cfg->nproviders = 1;
	provider_init(ld, p, "placeholder", "placeholder-1");
	p->is_default = true;
	if (!ld->failed)
		check_plugin(ld, cfg, p, NULL, "providers[0].plugin");
}

/* Element i of list l, a group, through load(ld, cfg, i, group). */
static void
load_groups(struct loader *ld, struct config *cfg, const config_setting_t *l, size_t n,
	    void (*load)(struct loader *, struct config *, size_t, const config_setting_t *))
{
	for (size_t i = 0; i < n && !ld->failed; i++) {
		const config_setting_t *g = config_setting_get_elem(l, (unsigned)i);

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			fail(ld, g, NULL, "expected a group { ... }");
		else
			load(ld, cfg, i, g);
	}
}

/* An empty list is allowed and means "no provider": runs are then refused
 * (422 from the API, exit status 2 from run). */
static void
load_providers(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *l = member(ld, root, "providers", T(CONFIG_TYPE_LIST),
					   "a list ( { ... }, ... )");
	size_t n = l != NULL ? (size_t)config_setting_length(l) : 0;

	if (l == NULL) {
		if (!ld->failed)
			builtin_provider(ld, cfg);
		return;
	}
	if (n > 0 && (cfg->providers = oom(ld, calloc(n, sizeof(*cfg->providers)))) != NULL)
		cfg->nproviders = n;
	load_groups(ld, cfg, l, cfg->nproviders, load_provider);
}

/* ---- webhooks ---- */

const char *const config_event_types[CONFIG_EVENT_TYPES] = {
	"stage_update", "info", "progress", "image_generated", "warning", "error", "done"
};

#define WEBHOOK_TIMEOUT_MAX 300.0	/* seconds per attempt */
#define WEBHOOK_RETRY_FOR_MAX (30.0 * 86400)

/* http:// or https:// and a host: anything else (file:, ftp:, a bare host)
 * is a mistake that libcurl would otherwise try to honour. */
static bool
url_valid(const char *u)
{
	size_t skip = 0;

	/* fail() has set failed: the analyzer does not follow its variadic
	 * body.  NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
	if (strncasecmp(u, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(u, "https://", 8) == 0)
		skip = 8;
	if (skip == 0 || strchr("/?#", u[skip]) != NULL)
		return false;
	for (const unsigned char *p = (const unsigned char *)u; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* Standard Webhooks: "whsec_" then the key's bytes in base64.  Any other
 * secret is used as it is written, its bytes being the key. */
static void
webhook_key(struct loader *ld, const config_setting_t *g, char *secret, struct config_webhook *w)
{
	const config_setting_t *at = config_setting_get_member(g, "secret");

	if (at == NULL)
		at = config_setting_get_member(g, "secret_file");
	if (strncmp(secret, "whsec_", 6) != 0) {
		w->key_len = strlen(secret);
		w->key = oom(ld, (unsigned char *)strdup(secret));
	} else if ((w->key = hash_base64_decode(secret + 6, &w->key_len)) == NULL ||
		   w->key_len == 0) {
		fail(ld, at, NULL, "after \"whsec_\" the secret must be base64 of the key");
	}
}

static void
webhook_events(struct loader *ld, const config_setting_t *g, struct config_webhook *w)
{
	const config_setting_t *l = member(ld, g, "events", T(CONFIG_TYPE_ARRAY) |
					   T(CONFIG_TYPE_LIST), "an array [ \"done\", ... ]");

	if (l == NULL)
		return;
	w->events = 0;
	if (config_setting_length(l) == 0)
		fail(ld, l, NULL, "must name at least one event type");
	for (int i = 0; i < config_setting_length(l) && !ld->failed; i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const char *name = config_setting_get_string(e);
		int t = 0;

		while (name != NULL && t < CONFIG_EVENT_TYPES && strcmp(name, config_event_types[t]) != 0)
			t++;
		if (name == NULL)
			fail(ld, e, NULL, "expected a string");
		else if (t == CONFIG_EVENT_TYPES)
			fail(ld, e, NULL, "unknown event type \"%s\" (known: stage_update, info, "
			     "progress, image_generated, warning, error, done)", name);
		else
			w->events |= 1u << t;
	}
}

static void
load_webhook(struct loader *ld, struct config *cfg, size_t i, const config_setting_t *g)
{
	struct config_webhook *w = &cfg->webhooks[i];
	const config_setting_t *url, *t;
	char key[KEY_MAX], *secret = NULL;

	*w = (struct config_webhook){ .events = 1u << (CONFIG_EVENT_TYPES - 1), .timeout = 30.0 };
	check_keys(ld, g, KEYS("url", "secret", "secret_file", "events", "timeout"));
	snprintf(key, sizeof(key), "webhooks[%zu].url", i);
	if ((url = get_string(ld, g, "url", &w->url, false)) == NULL && !ld->failed)
		fail(ld, g, key, "missing (every webhook needs a url)");
	else if (url != NULL && !url_valid(w->url))
		fail(ld, url, NULL, "must be an http:// or https:// URL with a host");
	for (size_t k = 0; k < i && !ld->failed; k++)
		/* fail() has set failed: the analyzer does not follow its variadic
		 * body.  NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		if (strcmp(cfg->webhooks[k].url, w->url) == 0)
			fail(ld, url, NULL, "duplicate url (also webhooks[%zu])", k);
	get_secret(ld, g, "secret", "secret_file", &secret);
	snprintf(key, sizeof(key), "webhooks[%zu].secret", i);
	if (secret == NULL && !ld->failed)
		fail(ld, g, key, "missing (give secret or secret_file)");
	else if (secret != NULL)
		webhook_key(ld, g, secret, w);
	free_secret(secret);
	webhook_events(ld, g, w);
	t = get_double(ld, g, "timeout", &w->timeout);
	if (t != NULL && !(w->timeout > 0 && w->timeout <= WEBHOOK_TIMEOUT_MAX))
		fail(ld, t, NULL, "must be more than 0 and at most %.0f seconds", WEBHOOK_TIMEOUT_MAX);
}

static void
load_webhooks(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *l = member(ld, root, "webhooks", T(CONFIG_TYPE_LIST),
					   "a list ( { ... }, ... )");
	const config_setting_t *r = get_double(ld, root, "webhook_retry_for",
					       &cfg->webhook_retry_for);
	size_t n = l != NULL ? (size_t)config_setting_length(l) : 0;

	if (r != NULL && !(cfg->webhook_retry_for > 0 &&
			   cfg->webhook_retry_for <= WEBHOOK_RETRY_FOR_MAX))
		fail(ld, r, NULL, "must be more than 0 and at most %.0f seconds",
		     WEBHOOK_RETRY_FOR_MAX);
	if (n > 0 && !ld->failed &&
	    (cfg->webhooks = oom(ld, calloc(n, sizeof(*cfg->webhooks)))) != NULL)
		cfg->nwebhooks = n;
	load_groups(ld, cfg, l, cfg->nwebhooks, load_webhook);
}

/* ---- loading ---- */

/* Relative default paths are against cwd, with or without a file, so that
 * a default means the same everywhere. */
static void
set_defaults(struct loader *ld, struct config *cfg, const char *cwd)
{
	*cfg = (struct config){ .thumbnails = true, .workers_max = 8, .batch_size = 3,
		.timeout = 900.0, .connect_timeout = 10.0, .retry_attempts = 3, .retry_backoff = 1.0,
		.retry_backoff_max = 60.0, .retry_rate_limit_wait = 600.0, .cache_enabled = true,
		.webhook_retry_for = 86400.0,
		.http_url_ttl = 86400, .http_max_connections = CONFIG_CONNECTIONS_DEFAULT,
		.http_max_connections_per_ip = CONFIG_CONNECTIONS_PER_IP_DEFAULT,
		.http_request_timeout = 30, .http_sse_stall_timeout = 30,
		.http_max_body_memory = 64 * 1024 * 1024, .database_timeout = 5.0,
		.cluster_lease = 30.0, .cluster_rescue_interval = 10.0 };
	char host[256] = "host";

	cfg->database = oom(ld, path_resolve(cwd, "var/t2istage.db"));
	cfg->database_display = oom(ld, strdup(cfg->database));
	(void)gethostname(host, sizeof(host) - 1);
	host[strspn(host, NAME_CHARS)] = '\0';
	cfg->cluster_name = oom(ld, malloc(NAME_LEN_MAX + 1));
	if (cfg->cluster_name != NULL)
		snprintf(cfg->cluster_name, NAME_LEN_MAX + 1, "%.40s-%ld", host, (long)getpid());
	cfg->storage_dir = oom(ld, path_resolve(cwd, "var/images"));
	cfg->plugins_dir = oom(ld, path_resolve(cwd, "build/plugins"));
	cfg->ratio = oom(ld, strdup("16:9"));
	cfg->resolution = oom(ld, strdup("2k"));
	cfg->http_listen = oom(ld, strdup("127.0.0.1:8080"));
}

static void
load_file(struct loader *ld, struct config *cfg)
{
	config_t lc;
	const config_setting_t *root;

	config_init(&lc);
	config_set_include_dir(&lc, ld->dir);
	errno = 0;
	if (config_read_file(&lc, ld->file) != CONFIG_TRUE) {
		/* errno is fopen()'s, or 0 when libconfig refused a directory */
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			fail(ld, NULL, NULL, "cannot read: %s",
			     errno != 0 ? strerror(errno) : "not a regular file");
		else if (ld->errlen > 0)
			snprintf(ld->err, ld->errlen, "%s:%d: syntax error: %s",
				 config_error_file(&lc) ? config_error_file(&lc) : ld->file,
				 config_error_line(&lc), config_error_text(&lc));
		ld->failed = true;
	} else {
		root = config_root_setting(&lc);
		check_keys(ld, root, KEYS("database", "database_password_file", "database_timeout",
					 "cluster", "storage", "plugins", "workers", "generation",
					 "retry", "cache", "http", "providers", "webhooks",
					 "webhook_retry_for"));
		load_service(ld, root, cfg);
		load_generation(ld, root, cfg);
		load_retry(ld, root, cfg);
		load_providers(ld, root, cfg);
		load_webhooks(ld, root, cfg);
	}
	config_destroy(&lc);
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct loader ld = { path != NULL ? path : BUILTIN_NAME, NULL, err, errlen, false };
	struct config *cfg = oom(&ld, calloc(1, sizeof(*cfg)));
	char *cwd = getcwd(NULL, 0), *dir = NULL;

	if (errlen > 0 && cfg != NULL)
		err[0] = '\0';
	if (cwd == NULL)
		fail(&ld, NULL, NULL, "cannot get the current directory: %s", strerror(errno));
	if (!ld.failed) {
		set_defaults(&ld, cfg, cwd);
		cfg->path = oom(&ld, path != NULL ? path_resolve(cwd, path) : strdup(BUILTIN_NAME));
	}
	/* Lexically, FILE/.. is FILE's directory. */
	if (!ld.failed && path != NULL)
		ld.dir = dir = oom(&ld, path_resolve(cfg->path, ".."));
	if (!ld.failed && path != NULL)
		load_file(&ld, cfg);
	else if (!ld.failed)
		builtin_provider(&ld, cfg);
	default_url_key(&ld, cfg);
	free(cwd);
	free(dir);
	if (!ld.failed)
		return cfg;
	config_free(cfg);
	return NULL;
}

/* ---- queries ---- */

const char *
config_choose_path(const char *explicit_path)
{
	const char *env = getenv(CONFIG_ENV);

	if (explicit_path != NULL)
		return explicit_path;
	if (env != NULL && env[0] != '\0')
		return env;
	if (access(T2I_CONFIG_DEFAULT_PATH, R_OK) == 0)
		return T2I_CONFIG_DEFAULT_PATH;
	return NULL;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->nproviders; i++) {
		struct config_provider *p = &cfg->providers[i];

		free(p->name);
		free(p->plugin);
		free(p->plugin_path);
		free(p->api_url);
		free_secret(p->api_key);
		free(p->model);
		free(p->options_json);
		free(p->source_file);
	}
	free(cfg->providers);
	for (size_t i = 0; i < cfg->nwebhooks; i++) {
		free(cfg->webhooks[i].url);
		if (cfg->webhooks[i].key != NULL)
			explicit_bzero(cfg->webhooks[i].key, cfg->webhooks[i].key_len);
		free(cfg->webhooks[i].key);
	}
	free(cfg->webhooks);
	free(cfg->path);
	free_secret(cfg->database);	/* a URI may hold a password */
	free(cfg->database_display);
	free_secret(cfg->database_password);
	free(cfg->cluster_name);
	free(cfg->storage_dir);
	free(cfg->plugins_dir);
	free(cfg->ratio);
	free(cfg->resolution);
	free(cfg->http_listen);
	free_secret(cfg->http_token);
	for (size_t i = 0; i < cfg->http_ncors; i++)
		free(cfg->http_cors_origins[i]);
	free(cfg->http_cors_origins);
	for (size_t i = 0; i < cfg->http_nserver_names; i++)
		free(cfg->http_server_names[i]);
	free(cfg->http_server_names);
	free(cfg->http_url_key_file);
	urlkey_free(cfg->http_url_key, cfg->http_url_key_len);
	free(cfg);
}

const struct config_provider *
config_provider(const struct config *cfg, const char *name)
{
	for (size_t i = 0; name != NULL && i < cfg->nproviders; i++)
		if (strcmp(cfg->providers[i].name, name) == 0)
			return &cfg->providers[i];
	return NULL;
}

const struct config_provider *
config_default_provider(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nproviders; i++)
		if (cfg->providers[i].is_default)
			return &cfg->providers[i];
	return cfg->nproviders == 1 ? &cfg->providers[0] : NULL;
}

bool
config_webhook_wants(const struct config_webhook *w, const char *type)
{
	for (int t = 0; t < CONFIG_EVENT_TYPES; t++)
		if (strcmp(type, config_event_types[t]) == 0)
			return (w->events & (1u << t)) != 0;
	return false;
}

const struct config_webhook *
config_webhook(const struct config *cfg, const char *url)
{
	for (size_t i = 0; i < cfg->nwebhooks; i++)
		if (strcmp(cfg->webhooks[i].url, url) == 0)
			return &cfg->webhooks[i];
	return NULL;
}
