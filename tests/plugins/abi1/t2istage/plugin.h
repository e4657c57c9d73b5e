/*
 * t2istage plugin ABI, version 1: the header as it was released, kept so
 * that tests/plugins/abi1.c is built exactly as a plugin of that version
 * was, and must keep loading and running in a newer host.  Never edit it.
 *
 * A plugin is a shared object NAME.so in the plugin directory.  It exports
 * two symbols:
 *
 *   const struct t2i_plugin t2i_plugin;     data, checked before any code runs
 *   int generate_image(const struct t2i_request *, const struct t2i_host *,
 *                      struct t2i_error *);
 *
 * generate_image() is called in a disposable worker process, once per
 * storyboard, and may block for as long as req->timeout_s.  It hands every
 * image the provider returns to host->add_image(), as a URL (which the host
 * downloads at once, since provider URLs expire) or as bytes.  The first image
 * added is the storyboard's primary image; later ones are kept as variants.
 *
 * Rules that keep the ABI stable:
 *   - every struct starts with abi_version and struct_size;
 *   - members are only ever appended at the end, each group under a comment
 *     naming the ABI version that added it;
 *   - a reader checks struct_size before touching a member added later.
 * The layout of version 1 is pinned by _Static_assert in tests/unit.
 */
#ifndef T2ISTAGE_PLUGIN_H
#define T2ISTAGE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define T2I_ABI_VERSION 1

/* Name of the data symbol and of the entry point, for dlsym(). */
#define T2I_PLUGIN_SYMBOL "t2i_plugin"
#define T2I_GENERATE_SYMBOL "generate_image"

/* What a plugin says about itself; exported as `t2i_plugin`. */
struct t2i_plugin {
	uint32_t abi_version;	/* T2I_ABI_VERSION the plugin was built against */
	uint32_t struct_size;	/* sizeof(struct t2i_plugin) */
	const char *name;	/* short name, e.g. "jimeng" */
	const char *version;	/* the plugin's own version string */
	const char *description;
	/* end of ABI version 1 */
};

/* Convenience for plugin authors: T2I_PLUGIN("name", "1.0", "what it does"); */
#define T2I_PLUGIN(n, v, d)                                                   \
	const struct t2i_plugin t2i_plugin = {                                \
		T2I_ABI_VERSION, sizeof(struct t2i_plugin), (n), (v), (d)     \
	}

/* One storyboard's request.  Strings are NUL-terminated UTF-8, never NULL
 * (an absent value is ""), and valid only during the call. */
struct t2i_request {
	uint32_t abi_version;
	uint32_t struct_size;
	const char *api_url;		/* provider endpoint, may be "" */
	const char *api_key;		/* secret: never log or echo it */
	const char *model;
	const char *prompt;
	const char *negative_prompt;
	const char *ratio;		/* "16:9", "1:1", ... */
	const char *resolution;		/* "1k", "2k", "4k" */
	uint32_t width;			/* pixels expected for ratio x resolution */
	uint32_t height;
	const char *options_json;	/* provider options, a JSON object text */
	double timeout_s;		/* time budget for this image */
	const char *storyboard_id;	/* for logs and deterministic output */
	uint32_t storyboard_index;	/* 1-based position in the project */
	uint32_t reserved0;
	double connect_timeout_s;	/* time allowed to connect to the provider */
	uint64_t max_response_bytes;	/* cap on any response body the plugin reads */
	/* end of ABI version 1 */
};

/* Error classes the supervisor acts on. */
enum t2i_error_class {
	T2I_OK = 0,
	T2I_ERR_TRANSIENT = 1,	  /* network, 5xx, timeout: retried with backoff */
	T2I_ERR_RATE_LIMITED = 2, /* 429 or equivalent: retried after retry_after_ms */
	T2I_ERR_REJECTED = 3,	  /* bad request, content policy: not retried */
	T2I_ERR_AUTH = 4,	  /* bad credentials: fail over to the next provider */
	T2I_ERR_QUOTA = 5	  /* credits exhausted: fail over */
};

#define T2I_ERROR_MESSAGE_MAX 512

/* Filled by the plugin when generate_image() returns non-zero.  The host
 * zeroes it and sets abi_version and struct_size before the call. */
struct t2i_error {
	uint32_t abi_version;
	uint32_t struct_size;
	int32_t error_class;		/* enum t2i_error_class */
	int32_t http_status;		/* 0 when there was no HTTP answer */
	int64_t retry_after_ms;		/* for T2I_ERR_RATE_LIMITED, 0 if unknown */
	char message[T2I_ERROR_MESSAGE_MAX]; /* for people; never the api key */
	/* end of ABI version 1 */
};

enum t2i_log_level { T2I_LOG_ERR = 3, T2I_LOG_WARNING = 4, T2I_LOG_INFO = 6, T2I_LOG_DEBUG = 7 };

/* What the host offers the plugin during one call. */
struct t2i_host {
	uint32_t abi_version;
	uint32_t struct_size;
	void *ctx;			/* pass back unchanged */
	/* Hands one image to the host: either url (bytes NULL) or bytes/size
	 * (url NULL, or the URL the bytes came from).  Returns 0 when the image
	 * was stored, -1 otherwise (the host has then recorded why). */
	int (*add_image)(void *ctx, const char *url, const void *bytes, size_t size);
	/* A log line, attributed to the plugin. */
	void (*log)(void *ctx, int level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	/* end of ABI version 1 */
};

/* Returns 0 when at least one image was added, -1 with *err filled
 * otherwise. */
typedef int t2i_generate_fn(const struct t2i_request *req,
			    const struct t2i_host *host, struct t2i_error *err);

t2i_generate_fn generate_image;

#ifdef __cplusplus
}
#endif

#endif /* T2ISTAGE_PLUGIN_H */
