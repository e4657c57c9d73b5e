/*
 * t2istage plugin ABI.
 *
 * A plugin is a shared object NAME.so in the plugin directory.  It exports
 * two symbols, both with C linkage (this header declares them inside
 * extern "C", so a plugin may be written in C or C++):
 *
 *   const struct t2i_plugin t2i_plugin;     data: T2I_PLUGIN(...) defines it
 *   int generate_image(const struct t2i_request *, const struct t2i_host *,
 *                      struct t2i_error *);
 *
 * The host checks t2i_plugin (ABI version, struct size, name) before it calls
 * generate_image().  That check needs dlopen(), and dlopen() has already run
 * the plugin's constructors: __attribute__((constructor)) functions, C++
 * objects of static storage duration, and those of every library the plugin
 * pulls in.  They run whether or not the plugin is then accepted, in the
 * short-lived child of `t2istage plugins` and `check-config`, and once in the
 * plugin's template process, of which every worker is a fork().  So keep
 * constructors cheap and free of side effects: no threads (a plugin that
 * starts one while loading loses its template), no connections or open files
 * meant to be used later (they would be shared by every forked worker), no
 * output.  Do such work in generate_image().
 *
 * generate_image() is called in a disposable worker process, once per
 * storyboard, and may block for as long as req->timeout_s.  It hands every
 * image the provider returns to host->add_image(), as a URL (which the host
 * downloads at once, since provider URLs expire) or as bytes.  The first image
 * added is the storyboard's primary image; later ones are kept as variants.
 *
 * ABI version 2 adds, for asynchronous providers (paid at submission, free to
 * poll): host->checkpoint(), host->progress(), host->sleep(),
 * req->resume_json and req->idempotency_key; and t2i_plugin.flags, by which
 * a plugin says it needs an API key.  The way to use the task calls:
 *
 *   if (req->resume_json[0] != '\0')
 *           poll the task it names; if the provider says the task is gone
 *           or failed, submit again (below); else go on polling it;
 *   submit (with req->idempotency_key where the provider takes one);
 *   host->checkpoint(ctx, "{\"task_id\":...}") before anything else;
 *   loop: poll, host->progress(), then host->sleep(ctx, interval):
 *           on a stop, see enum t2i_stop for whether to cancel, and return
 *           an error;
 *   add the images; the host then forgets the task.
 *
 * The host calls must be made from the thread that called generate_image().
 *
 * Rules that keep the ABI stable:
 *   - every struct starts with abi_version and struct_size;
 *   - members are only ever appended at the end, each group under a comment
 *     naming the ABI version that added it;
 *   - a reader checks struct_size before touching a member added later.
 * The layouts are pinned by _Static_assert in tests/unit.  A host speaks
 * every version from 1 to T2I_ABI_VERSION: a plugin built against an older
 * header loads unchanged, and lacks only what later versions appended.
 */
#ifndef T2ISTAGE_PLUGIN_H
#define T2ISTAGE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes.  A host accepts plugins built for any
 * version from 1 to this one: members a plugin's struct lacks are absent,
 * members a host's structs lack are never read (check struct_size). */
#define T2I_ABI_VERSION 2

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
	uint32_t flags;		/* T2I_PLUGIN_* below; read only when struct_size covers it */
	/* end of ABI version 2 */
};

/* t2i_plugin.flags: what the host checks before any provider uses the plugin.
 * A host ignores bits it does not know. */
#define T2I_PLUGIN_NEEDS_API_KEY 0x1u	/* a provider without api_key is a config error */

/* The plugin's data symbol.  Declared here, inside extern "C", so that the
 * definition T2I_PLUGIN makes has external linkage and an unmangled name in
 * C++ too, where a namespace-scope const would otherwise be internal. */
extern const struct t2i_plugin t2i_plugin;

/* Convenience for plugin authors: T2I_PLUGIN("name", "1.0", "what it does");
 * or, with flags, T2I_PLUGIN_FLAGS("name", "1.0", "...", T2I_PLUGIN_NEEDS_API_KEY); */
#define T2I_PLUGIN(n, v, d) T2I_PLUGIN_FLAGS(n, v, d, 0)
#define T2I_PLUGIN_FLAGS(n, v, d, f)                                          \
	const struct t2i_plugin t2i_plugin = {                                \
		T2I_ABI_VERSION, sizeof(struct t2i_plugin), (n), (v), (d), (f) \
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

	/* The state this storyboard's last attempt on this provider, with the
	 * same generation parameters, handed to host->checkpoint(), or "" when
	 * there is none.  A plugin given one polls that task first, and submits
	 * again only when the provider says it is gone or failed.  The attempt
	 * may have been in an earlier run (a `retry` after a failure or an
	 * interruption), before a timeout, a crash or a kill -9 of the service;
	 * the state is forgotten once the storyboard has its image, or when a
	 * plugin checkpoints "{}". */
	const char *resume_json;
	/* A lower-case UUID (version 8: the first 128 bits of the SHA-256 of
	 * the image row's id, the provider's name and the generation
	 * parameters' cache key), the same for every attempt at this
	 * storyboard's image with this provider and these parameters, across
	 * crashes and restarts (a resumed run keeps its image rows); a new run,
	 * another provider or other parameters give another.  For providers
	 * that take a client-chosen task id (ComfyUI prompt_id, Kling
	 * external_task_id).  A task given in resume_json may have been
	 * submitted under another run's key: keep the id in the state. */
	const char *idempotency_key;
	/* end of ABI version 2 */
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

/* Why host->sleep() says to stop, and what a plugin polling a provider
 * task does then.  Whatever the reason it returns promptly, with
 * T2I_ERR_TRANSIENT and a message that says what became of the task: the
 * worker is killed a few seconds after a stop (cancel, budget, shutdown),
 * and an attempt stopped so is put back, not charged.  Cancelling at the
 * provider is only for a task that is abandoned for good; a task that
 * another attempt will poll must be left running.
 *
 * - T2I_STOP_CANCELLED: the run was cancelled.  Ask the provider to cancel
 *   the task where it can, then checkpoint "{}".
 * - T2I_STOP_DEADLINE: this image's time budget (timeout_s) is used up on
 *   its last attempt on this provider: no retry follows.  Ask the provider
 *   to cancel where it can, say so in the error message, checkpoint "{}".
 *   On earlier attempts the host never says this: the worker is killed at
 *   its deadline and the retry gets the task in resume_json.
 * - T2I_STOP_BUDGET: a spending budget is reached.  Do not cancel: the task
 *   is paid for, and a later attempt the budget allows polls it.
 * - T2I_STOP_SHUTDOWN: the service is stopping.  Do not cancel: the next
 *   start polls the task again. */
enum t2i_stop {
	T2I_STOP_NONE = 0,
	T2I_STOP_CANCELLED = 1,	/* the run was cancelled */
	T2I_STOP_DEADLINE = 2,	/* this image's time budget (timeout_s) is used up */
	T2I_STOP_BUDGET = 3,	/* a spending budget is reached */
	T2I_STOP_SHUTDOWN = 4	/* the service is stopping */
};

/* The largest state host->checkpoint() accepts, in bytes. */
#define T2I_CHECKPOINT_MAX 16384

/* What the host offers the plugin during one call. */
struct t2i_host {
	uint32_t abi_version;
	uint32_t struct_size;
	void *ctx;			/* pass back unchanged */
	/* Hands one image to the host: either url (bytes NULL) or bytes/size
	 * (url NULL, or the URL the bytes came from).  Returns 0 when the image
	 * was stored, -1 otherwise (the host has then recorded why). */
	int (*add_image)(void *ctx, const char *url, const void *bytes, size_t size);
	/* A log line, attributed to the plugin.  A T2I_LOG_WARNING line is
	 * also a `warning` event of the run (once per run for the same
	 * words): use it for what the people following the run should know,
	 * such as an option the provider has no field for. */
	void (*log)(void *ctx, int level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	/* end of ABI version 1 */

	/* Records state_json, a JSON object text of at most T2I_CHECKPOINT_MAX
	 * bytes (a task id and what is needed to poll it), for this storyboard,
	 * provider and generation parameters.  Call it right after a provider
	 * accepted a paid task, and poll only once it returned 0.  It blocks
	 * until the supervisor has committed the state to the database, so
	 * that a later attempt after a crash, a timeout or a kill -9 of the
	 * service gets it as resume_json.  A later call replaces the state;
	 * "{}" forgets it (the provider says the task failed, is gone, or was
	 * cancelled).  Returns -1 when it was refused (not a JSON object, too
	 * large, or holding the api key, which never goes into the database)
	 * or could not be recorded (the supervisor is gone, the database
	 * failed): the host has logged why.  Never put a secret in it: the
	 * state is shown by `t2istage images` and the API. */
	int (*checkpoint)(void *ctx, const char *state_json);
	/* Progress of a long generation: fraction from 0 to 1 (anything else
	 * when unknown) and a short message (at most 255 bytes are kept, "" for
	 * none).  Becomes a `progress` event with `fraction` (null when
	 * unknown); at most one a second per storyboard, the others dropped. */
	void (*progress)(void *ctx, double fraction, const char *message);
	/* Waits ms milliseconds.  Returns T2I_STOP_NONE after the wait, or at
	 * once another enum t2i_stop when the plugin must stop now: a stop
	 * that came before the call is returned at once, and so is every
	 * later call's (sleep(0) asks without waiting).  A polling plugin
	 * waits only through this, never with sleep(3) or poll(2), which a
	 * stop cannot end. */
	int (*sleep)(void *ctx, uint32_t ms);
	/* end of ABI version 2 */
};

/* Returns 0 when at least one image was added, -1 with *err filled
 * otherwise. */
typedef int t2i_generate_fn(const struct t2i_request *req,
			    const struct t2i_host *host, struct t2i_error *err);

t2i_generate_fn generate_image;

/* Optional third export.  A plugin whose provider options can be wrong in
 * ways worth finding before a run (a file they name, a value out of range)
 * exports t2i_check_options().  When a configuration is loaded
 * (check-config, a reload), the host calls it in a short-lived child, once
 * per provider that uses the plugin.  req carries that provider's api_url,
 * model and options_json; every other string is "" and every number 0.
 * Returns 0 when the options are usable, or -1 with err->message saying
 * what is wrong and where in the options (err->error_class is not read).
 * The host looks the symbol up by name: a plugin without it, or built
 * against any ABI version, is simply not asked. */
#define T2I_CHECK_OPTIONS_SYMBOL "t2i_check_options"

typedef int t2i_check_options_fn(const struct t2i_request *req, struct t2i_error *err);

t2i_check_options_fn t2i_check_options;

#ifdef __cplusplus
}
#endif

#endif /* T2ISTAGE_PLUGIN_H */
