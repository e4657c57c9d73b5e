/* config: the configuration file (libconfig syntax) read into an immutable
 * struct.  No side effects besides reading the file and stat()ing the plugin
 * files the providers name. */
#ifndef T2I_CONFIG_H
#define T2I_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_ENV "T2ISTAGE_CONF"
#define CONFIG_CORS_MAX 64	/* origins in http.cors_origins */
#define CONFIG_URL_TTL_MAX (366 * 86400)
#define CONFIG_SERVER_NAMES_MAX 64	/* entries of http.server_names */
/* http.max_connections: 500 event streams (a team's dashboards) and the
 * requests beside them fit; each costs a file descriptor (two while it
 * sends a file), a 32 KiB libmicrohttpd pool and its socket buffers. */
#define CONFIG_CONNECTIONS_DEFAULT 1024
/* http.max_connections_per_ip: a browser opens at most 6 connections to a
 * host, a pipeline a few dozen; 16 addresses are needed to fill the
 * service.  Behind a proxy every client has the proxy's address. */
#define CONFIG_CONNECTIONS_PER_IP_DEFAULT 64
#define CONFIG_CONNECTIONS_MAX 65536
#define CONFIG_HTTP_TIMEOUT_MAX 3600	/* seconds: request_timeout, sse_stall_timeout */

struct config_provider {
	char *name;		/* unique, [A-Za-z0-9_.-]{1,64} */
	char *plugin;		/* plugin name: <plugins.dir>/<plugin>.so */
	char *plugin_path;	/* absolute path of the .so */
	char *api_url;		/* "" when absent */
	char *api_key;		/* secret; "" when absent; read from api_key_file if given */
	char *model;		/* "" when absent */
	char *options_json;	/* compact JSON object text, "{}" when absent */
	int concurrency;	/* >= 1, default 4 */
	double rate;		/* requests a minute, 0: no limit */
	double cost;		/* price of one request in the provider's unit, default 0 */
	double budget_run;	/* most a run may spend on it, < 0: no budget */
	double budget_day;	/* most a day may spend on it, < 0: no budget */
	bool is_default;
	char *source_file;	/* where the provider's group is, for messages; */
	unsigned source_line;	/* NULL and 0 for the built-in provider */
};

/* The seven event types, as the events contract lists them. */
#define CONFIG_EVENT_TYPES 7
extern const char *const config_event_types[CONFIG_EVENT_TYPES];

/* One webhook endpoint: each event of a subscribed type is POSTed to url,
 * signed with key (Standard Webhooks). */
struct config_webhook {
	char *url;		/* http:// or https://; also the endpoint's name in the outbox */
	unsigned char *key;	/* secret: the HMAC key (whsec_ base64 decoded, or raw) */
	size_t key_len;
	unsigned events;	/* bit i: config_event_types[i]; default only "done" */
	double timeout;		/* seconds per attempt, default 30 */
};

struct config {
	char *path;		/* file read, or "(built-in defaults)" */
	char *database;		/* an absolute path, or a postgresql:// URI (secret: it may
				 * hold a password) */
	bool database_pg;	/* database is a PostgreSQL URI */
	char *database_display;	/* database for messages: without a password */
	char *database_password; /* secret, from database_password_file; NULL when none */
	double database_timeout; /* seconds one PostgreSQL answer is waited for, default 5 */
	double cluster_lease;	/* seconds a claimed generation is held, default 30 */
	double cluster_rescue_interval; /* seconds between looks for expired leases, default 10 */
	char *cluster_name;	/* this instance's, default "<host name>-<pid>" */
	char *storage_dir;	/* absolute */
	char *plugins_dir;	/* absolute */
	int workers_max;	/* 1..256, default 8 */
	int batch_size;		/* 1..1000, default 3 */
	char *ratio;		/* default "16:9" */
	char *resolution;	/* default "2k" */
	double timeout;		/* seconds per image, > 0, default 900 */
	double connect_timeout;	/* seconds to connect to a provider, default 10 */
	int retry_attempts;	/* 1..100, default 3 */
	double retry_backoff;	/* seconds, default 1 */
	double retry_backoff_max; /* seconds, default 60 */
	double retry_rate_limit_wait; /* seconds a storyboard waits out rate limits, default 600 */
	char *http_listen;	/* default "127.0.0.1:8080" */
	char *http_token;	/* secret; NULL when none */
	char **http_cors_origins; /* "scheme://host[:port]", lower case */
	size_t http_ncors;
	char *http_url_key_file; /* absolute; default <database's directory>/url.key */
	unsigned char *http_url_key; /* secret: its bytes when given, else NULL */
	size_t http_url_key_len;
	int http_url_ttl;	/* seconds a signed image URL lives, default 86400 */
	char **http_server_names; /* Host values taken, lower case; NULL: the defaults */
	size_t http_nserver_names;
	int http_max_connections;	/* open at once, default 1024 */
	int http_max_connections_per_ip; /* from one address (an IPv6 /64), default 64 */
	int http_request_timeout;	/* seconds from a request's first byte to its
					 * last, default 30 */
	int http_sse_stall_timeout;	/* seconds an event stream may make no
					 * progress, default 30 */
	int http_max_body_memory;	/* bytes of request bodies held at once,
					 * default 64 MiB */
	size_t nproviders;
	struct config_provider *providers;
	double webhook_retry_for; /* seconds an event is retried, default 86400 */
	size_t nwebhooks;
	struct config_webhook *webhooks;
	bool thumbnails;
	bool cache_enabled;	/* default true */
	bool http_url_key_given; /* the file names it: read here, not made by serve */
};

/* Loads path (NULL: built-in defaults, relative paths against the current
 * directory).  Relative paths inside a file are resolved against the file's
 * directory.  On error returns NULL and writes one line
 * "FILE:LINE: KEY: what is wrong" into err. */
struct config *config_load(const char *path, char *err, size_t errlen);

/* Picks the file to read: explicit (-c), else $T2ISTAGE_CONF, else
 * SYSCONFDIR/t2istage/t2istage.conf (SYSCONFDIR as built, /etc by default)
 * when it exists, else NULL (built-in defaults). */
const char *config_choose_path(const char *explicit_path);

void config_free(struct config *cfg);

/* Provider by name, or NULL. */
const struct config_provider *config_provider(const struct config *cfg, const char *name);

/* The provider marked default = true, else the only provider, else NULL. */
const struct config_provider *config_default_provider(const struct config *cfg);

/* True when w subscribes to events of type. */
bool config_webhook_wants(const struct config_webhook *w, const char *type);

/* The webhook whose url this is, or NULL. */
const struct config_webhook *config_webhook(const struct config *cfg, const char *url);

#endif
