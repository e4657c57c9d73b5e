/* project: the project file parsed and validated whole.
 *
 * The jansson tree is walked once and everything we keep is copied out into
 * plain C structs, so callers never touch jansson and the tree is freed
 * before we return.  Any error frees everything: a project is either
 * returned complete and valid or not at all (nothing is half-imported).
 *
 * Optional members given as JSON null are treated as absent: upstream
 * exporters (Django serializers) write null for blank fields. */
#include "project.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/random.h>
#include <time.h>
#include <uuid/uuid.h>

#include "imgsize.h"
#include "jsontext.h"

#define CLIP_MAX 64		/* bytes of a user value quoted in a message */
#define PROVIDER_NAME_MAX 64

/* Where we are, for messages: the source and, inside storyboards, which one. */
struct ctx {
	const char *where;
	char *err;
	size_t errlen;
	int sb;			/* 1-based storyboard position, 0 at project level */
	const char *sbid;	/* that storyboard's valid id, or NULL */
};

static bool fail(struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static const char json_oom[] = "out of memory (reading the JSON)";

/* Control bytes are replaced so a hostile value (or file name) cannot forge
 * extra log lines: every message stays one line. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* Writes "WHERE: [storyboard N [(id X)]: ]MESSAGE" as one line.  Returns
 * false so callers can `return fail(...)`. */
static bool
fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	size_t n;
	int r;

	if (c->err == NULL || c->errlen == 0)
		return false;
	if (c->sb > 0 && c->sbid != NULL)
		r = snprintf(c->err, c->errlen, "%s: storyboard %d (id %s): ",
			     c->where, c->sb, c->sbid);
	else if (c->sb > 0)
		r = snprintf(c->err, c->errlen, "%s: storyboard %d: ", c->where, c->sb);
	else
		r = snprintf(c->err, c->errlen, "%s: ", c->where);
	n = r < 0 ? 0 : (size_t)r;
	if (n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - n, fmt, ap);
		va_end(ap);
	}
	one_line(c->err);
	return false;
}

/* Copies at most CLIP_MAX bytes of s into buf, cut on a UTF-8 boundary and
 * marked with "..." when shortened, so a 8 KiB value cannot flood a message. */
static const char *
clip(const char *s, char buf[CLIP_MAX + 4])
{
	size_t n = strlen(s);

	if (n <= CLIP_MAX)
		return s;
	n = CLIP_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

static const char *
type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:	return "object";
	case JSON_ARRAY:	return "array";
	case JSON_STRING:	return "string";
	case JSON_INTEGER:
	case JSON_REAL:		return "number";
	case JSON_TRUE:
	case JSON_FALSE:	return "boolean";
	case JSON_NULL:		return "null";
	}
	return "unknown";
}

/* jansson strings are valid UTF-8 but, with JSON_ALLOW_NUL, may hold \u0000,
 * which every C consumer downstream would silently truncate. */
static bool
has_nul(const json_t *s)
{
	return strlen(json_string_value(s)) != json_string_length(s);
}

/* Checks v is a string without NUL of at most max bytes (0: no limit). */
static bool
check_string(struct ctx *c, const json_t *v, const char *field, size_t max)
{
	if (!json_is_string(v))
		return fail(c, "%s: expected a string, got %s", field, type_name(v));
	if (has_nul(v))
		return fail(c, "%s: contains a NUL character", field);
	if (max > 0 && json_string_length(v) > max)
		return fail(c, "%s: too long (%zu bytes, limit %zu)", field,
		            json_string_length(v), max);
	return true;
}

/* strdup that reports, so callers can simply return false. */
static bool
copy_string(struct ctx *c, const char *s, char **out)
{
	*out = strdup(s);
	if (*out == NULL)
		fail(c, "out of memory");
	return *out != NULL;
}

/* Refuses members of obj not in allowed (NULL-terminated).  prefix names
 * the object in the message: "" or "params: ". */
static bool
check_keys(struct ctx *c, json_t *obj, const char *const *allowed, const char *prefix)
{
	const char *key;
	json_t *v;
	char buf[CLIP_MAX + 4];

	json_object_foreach(obj, key, v) {
		size_t i = 0;

		while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
			i++;
		if (allowed[i] == NULL)
			return fail(c, "%sunknown key '%s'", prefix, clip(key, buf));
	}
	return true;
}

/* Parses an optional id: absent or null generates one, otherwise it must be
 * a UUID and is stored in canonical lower case. */
static bool
parse_id(struct ctx *c, const json_t *v, char out[37])
{
	char buf[CLIP_MAX + 4];
	const char *s;
	uuid_t u;

	if (v == NULL || json_is_null(v)) {
		project_uuid(out);
		return true;
	}
	if (!check_string(c, v, "id", 0))
		return false;
	s = json_string_value(v);
	if (strlen(s) != 36 || uuid_parse(s, u) != 0)
		return fail(c, "id: not a UUID '%s'", clip(s, buf));
	uuid_unparse_lower(u, out);
	return true;
}

/* Fails unless a ratio or resolution string is in its table. */
static bool
parse_size_name(struct ctx *c, const json_t *v, const char *what, char **out)
{
	bool ratio = strcmp(what, "ratio") == 0;
	char field[32];
	char buf[CLIP_MAX + 4];
	const char *s;

	if (v == NULL || json_is_null(v))
		return true;
	snprintf(field, sizeof field, "params.%s", what);
	if (!check_string(c, v, field, 0))
		return false;
	s = json_string_value(v);
	if (ratio ? !imgsize_ratio_valid(s) : !imgsize_resolution_valid(s))
		return fail(c, "%s: unknown %s '%s' (known: %s)", field, what,
			    clip(s, buf), ratio ? imgsize_ratios : imgsize_resolutions);
	return copy_string(c, s, out);
}

/* True when any string anywhere inside v holds a NUL (keys cannot: jansson
 * refuses them).  Depth is bounded by jansson's parser limit. */
static bool
tree_has_nul(json_t *v)
{
	const char *key;
	json_t *e;
	size_t i;

	if (json_is_string(v))
		return has_nul(v);
	if (json_is_object(v)) {
		json_object_foreach(v, key, e)
			if (tree_has_nul(e))
				return true;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if (tree_has_nul(e))
				return true;
	}
	return false;
}

/* options are opaque to us (the provider plugin reads them); they are kept
 * as compact text with sorted keys so equal options compare equal (cache),
 * each real as people type it (0.7, not 0.69999999999999996). */
static bool
parse_options(struct ctx *c, json_t *v, char **out)
{
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_object(v))
		return fail(c, "params.options: expected an object, got %s",
			    type_name(v));
	if (tree_has_nul(v))
		return fail(c, "params.options: contains a NUL character");
	*out = jsontext_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	if (*out == NULL)
		fail(c, "out of memory");
	return *out != NULL;
}

static void
free_params(struct project_params *p)
{
	free(p->ratio);
	free(p->resolution);
	free(p->options_json);
	memset(p, 0, sizeof *p);
}

/* The same rules at project and storyboard level. */
static bool
parse_params(struct ctx *c, json_t *v, struct project_params *out)
{
	static const char *const keys[] = { "ratio", "resolution", "options", NULL };

	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_object(v))
		return fail(c, "params: expected an object, got %s", type_name(v));
	return check_keys(c, v, keys, "params: ") &&
	       parse_size_name(c, json_object_get(v, "ratio"), "ratio", &out->ratio) &&
	       parse_size_name(c, json_object_get(v, "resolution"), "resolution",
			       &out->resolution) &&
	       parse_options(c, json_object_get(v, "options"), &out->options_json);
}

/* A provider name ends up in config lookups and log lines: keep it to a
 * conservative identifier alphabet. */
static bool
provider_name_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= PROVIDER_NAME_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789_.-") == n;
}

static bool
parse_provider(struct ctx *c, struct project *p, json_t *v, size_t i)
{
	char field[48];
	char buf[CLIP_MAX + 4];
	const char *s;

	snprintf(field, sizeof field, "image_providers: entry %zu", i + 1);
	if (!check_string(c, v, field, 0))
		return false;
	s = json_string_value(v);
	if (!provider_name_valid(s))
		return fail(c, "%s: invalid provider name '%s' "
			    "(1-%d of A-Z a-z 0-9 _ . -)",
			    field, clip(s, buf), PROVIDER_NAME_MAX);
	for (size_t j = 0; j < i; j++)
		/* fail() returns false: the analyzer does not follow its variadic
		 * body.  NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		if (strcmp(p->image_providers[j], s) == 0)
			return fail(c, "%s: duplicate of entry %zu ('%s')",
				    field, j + 1, clip(s, buf));
	if (!copy_string(c, s, &p->image_providers[i]))
		return false;
	p->nproviders = i + 1;
	return true;
}

static bool
parse_providers(struct ctx *c, json_t *v, struct project *p)
{
	size_t n;

	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_array(v))
		return fail(c, "image_providers: expected an array, got %s",
			    type_name(v));
	n = json_array_size(v);
	if (n == 0 || n > PROJECT_PROVIDERS_MAX)
		return fail(c, "image_providers: %zu names "
			    "(give 1 to %d, or leave it out)", n, PROJECT_PROVIDERS_MAX);
	p->image_providers = calloc(n, sizeof *p->image_providers);
	if (p->image_providers == NULL)
		return fail(c, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (!parse_provider(c, p, json_array_get(v, i), i))
			return false;
	return true;
}

static bool
parse_stage(struct ctx *c, const json_t *v, bool *completed)
{
	char buf[CLIP_MAX + 4];
	const char *s;

	*completed = true;
	if (v == NULL || json_is_null(v))
		return true;
	if (!check_string(c, v, "storyboard_stage", 0))
		return false;
	s = json_string_value(v);
	if (strcmp(s, "processing") == 0)
		*completed = false;
	else if (strcmp(s, "completed") != 0)
		return fail(c, "storyboard_stage: expected 'completed' or "
			    "'processing', got '%s'", clip(s, buf));
	return true;
}

/* True when s holds something other than ASCII whitespace. */
static bool
has_text(const char *s)
{
	return s[strspn(s, " \t\n\v\f\r")] != '\0';
}

static bool
parse_prompts(struct ctx *c, json_t *v, struct project_storyboard *sb)
{
	json_t *ip = json_object_get(v, "image_prompt");
	json_t *np = json_object_get(v, "negative_prompt");

	if (ip == NULL)
		return fail(c, "image_prompt: missing or empty");
	if (!check_string(c, ip, "image_prompt", PROJECT_PROMPT_MAX))
		return false;
	if (!has_text(json_string_value(ip)))
		return fail(c, "image_prompt: missing or empty");
	if (np != NULL && !json_is_null(np) &&
	    !check_string(c, np, "negative_prompt", PROJECT_PROMPT_MAX))
		return false;
	return copy_string(c, json_string_value(ip), &sb->image_prompt) &&
	       copy_string(c, np != NULL && !json_is_null(np) ?
			   json_string_value(np) : "", &sb->negative_prompt);
}

/* The id is read first so every later message about this storyboard can
 * name it. */
static bool
parse_storyboard(struct ctx *c, json_t *v, int index, struct project_storyboard *sb)
{
	static const char *const keys[] = {
		"id", "image_prompt", "negative_prompt", "params", NULL
	};

	c->sb = index;
	c->sbid = NULL;
	sb->index = index;
	if (!json_is_object(v))
		return fail(c, "expected an object, got %s", type_name(v));
	if (!parse_id(c, json_object_get(v, "id"), sb->id))
		return false;
	if (json_object_get(v, "id") != NULL)
		c->sbid = sb->id;
	return check_keys(c, v, keys, "") &&
	       parse_prompts(c, v, sb) &&
	       parse_params(c, json_object_get(v, "params"), &sb->params);
}

static int
cmp_storyboard_ptr(const void *a, const void *b)
{
	const struct project_storyboard *x = *(const struct project_storyboard *const *)a;
	const struct project_storyboard *y = *(const struct project_storyboard *const *)b;
	int r = strcmp(x->id, y->id);

	if (r != 0)
		return r;
	return (x->index > y->index) - (x->index < y->index);
}

/* Sorting keeps this O(n log n) for 100,000 storyboards.  Among all
 * duplicates we report the one earliest in the file, against the first
 * storyboard with its id: what a reader scanning top-down would find. */
static bool
check_duplicate_ids(struct ctx *c, struct project *p)
{
	struct project_storyboard **v, *dup = NULL, *orig = NULL;
	size_t first = 0;

	if (p->nstoryboards < 2)
		return true;
	v = malloc(p->nstoryboards * sizeof *v);
	if (v == NULL)
		return fail(c, "out of memory");
	for (size_t i = 0; i < p->nstoryboards; i++)
		v[i] = &p->storyboards[i];
	qsort(v, p->nstoryboards, sizeof *v, cmp_storyboard_ptr);
	for (size_t i = 1; i < p->nstoryboards; i++) {
		if (strcmp(v[i]->id, v[first]->id) != 0) {
			first = i;
			continue;
		}
		if (i == first + 1 && (dup == NULL || v[i]->index < dup->index)) {
			dup = v[i];
			orig = v[first];
		}
	}
	free(v);
	if (dup == NULL)
		return true;
	c->sb = dup->index;
	c->sbid = dup->id;
	return fail(c, "id: duplicate of storyboard %d", orig->index);
}

/* Each element is released from the tree once copied, so peak memory stays
 * near one copy of the input rather than two. */
static bool
parse_storyboards(struct ctx *c, json_t *v, struct project *p)
{
	size_t n;

	if (v == NULL)
		return fail(c, "storyboards: missing (expected an array)");
	if (!json_is_array(v))
		return fail(c, "storyboards: expected an array, got %s", type_name(v));
	n = json_array_size(v);
	if (n > PROJECT_STORYBOARDS_MAX)
		return fail(c, "storyboards: too many (%zu, limit %d)", n,
			    PROJECT_STORYBOARDS_MAX);
	p->storyboards = calloc(n ? n : 1, sizeof *p->storyboards);
	if (p->storyboards == NULL)
		return fail(c, "out of memory");
	for (size_t i = 0; i < n; i++) {
		p->nstoryboards = i + 1;
		if (!parse_storyboard(c, json_array_get(v, i), (int)i + 1,
				      &p->storyboards[i]))
			return false;
		json_array_set(v, i, json_null());
	}
	c->sb = 0;
	c->sbid = NULL;
	return check_duplicate_ids(c, p);
}

static bool
parse_name(struct ctx *c, const json_t *v, struct project *p)
{
	if (v == NULL || json_is_null(v))
		return copy_string(c, "", &p->name);
	return check_string(c, v, "name", PROJECT_NAME_MAX) &&
	       copy_string(c, json_string_value(v), &p->name);
}

static bool
parse_top(struct ctx *c, json_t *root, struct project *p)
{
	static const char *const keys[] = {
		"id", "name", "image_providers", "params", "storyboards",
		"storyboard_stage", NULL
	};

	if (!json_is_object(root))
		return fail(c, "expected a JSON object at the top level, got %s",
			    type_name(root));
	return check_keys(c, root, keys, "") &&
	       parse_id(c, json_object_get(root, "id"), p->id) &&
	       parse_name(c, json_object_get(root, "name"), p) &&
	       parse_providers(c, json_object_get(root, "image_providers"), p) &&
	       parse_params(c, json_object_get(root, "params"), &p->params) &&
	       parse_stage(c, json_object_get(root, "storyboard_stage"),
			   &p->storyboard_completed) &&
	       parse_storyboards(c, json_object_get(root, "storyboards"), p);
}

struct project *
project_parse(const char *text, size_t len, const char *where, char *err, size_t errlen)
{
	struct ctx c = { where != NULL ? where : "project", err, errlen, 0, NULL };
	json_error_t je;
	struct project *p;
	json_t *root;
	bool ok, oom;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	/* DECODE_ANY so a top-level scalar gets our clearer message; ALLOW_NUL
	 * so an embedded NUL is refused by field name rather than by offset.
	 * Trailing garbage is refused by jansson's default EOF check. */
	root = jsontext_load(text, len,
			     JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je, &oom);
	if (root == NULL) {
		/* "WHERE:LINE:COL:", the form editors and compilers use. */
		if (err != NULL && errlen > 0 && oom)
			snprintf(err, errlen, "%s: %s", c.where, json_oom);
		else if (err != NULL && errlen > 0) {
			snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", c.where,
				 je.line, je.column, je.text);
			one_line(err);
		}
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (p == NULL) {
		fail(&c, "out of memory");
		json_decref(root);
		return NULL;
	}
	ok = parse_top(&c, root, p);
	json_decref(root);
	if (!ok) {
		project_free(p);
		return NULL;
	}
	return p;
}

/* --- a storyboard's changes (PATCH) --- */

static bool
parse_patch_prompts(struct ctx *c, json_t *root, struct project_patch *pt)
{
	json_t *ip = json_object_get(root, "image_prompt");
	json_t *np = json_object_get(root, "negative_prompt");

	if (ip != NULL) {
		if (json_is_null(ip) ||
		    (json_is_string(ip) && !has_text(json_string_value(ip))))
			return fail(c, "image_prompt: must not be empty");
		if (!check_string(c, ip, "image_prompt", PROJECT_PROMPT_MAX) ||
		    !copy_string(c, json_string_value(ip), &pt->image_prompt))
			return false;
	}
	/* null clears the negative prompt, as absent does in a project file. */
	if (np != NULL && !json_is_null(np) &&
	    !check_string(c, np, "negative_prompt", PROJECT_PROMPT_MAX))
		return false;
	return np == NULL ||
	       copy_string(c, json_is_null(np) ? "" : json_string_value(np), &pt->negative_prompt);
}

int
project_parse_patch(const char *text, size_t len, struct project_patch *pt, char *err,
		    size_t errlen)
{
	static const char *const keys[] = { "image_prompt", "negative_prompt", "params", NULL };
	struct ctx c = { "request body", err, errlen, 0, NULL };
	json_error_t je;
	json_t *root, *params;
	bool ok, oom;

	memset(pt, 0, sizeof(*pt));
	root = jsontext_load(text, len,
			     JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je, &oom);
	if (root == NULL && oom) {
		snprintf(err, errlen, "request body: %s", json_oom);
		return -1;
	}
	if (root == NULL) {
		snprintf(err, errlen, "request body:%d:%d: invalid JSON: %s", je.line, je.column,
			 je.text);
		one_line(err);
		return -1;
	}
	params = json_object_get(root, "params");
	ok = json_is_object(root) ? check_keys(&c, root, keys, "") &&
					    parse_patch_prompts(&c, root, pt) &&
					    parse_params(&c, params, &pt->params)
				  : fail(&c, "expected a JSON object, got %s", type_name(root));
	pt->has_params = params != NULL;
	json_decref(root);
	if (!ok)
		project_patch_free(pt);
	return ok ? 0 : -1;
}

void
project_patch_free(struct project_patch *pt)
{
	free(pt->image_prompt);
	free(pt->negative_prompt);
	free_params(&pt->params);
	memset(pt, 0, sizeof(*pt));
}

/* Reads a regular file of known size; O_NONBLOCK keeps a FIFO named by
 * mistake from hanging us before fstat can refuse it. */
static char *
read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail_errno;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((uintmax_t)st.st_size > PROJECT_FILE_MAX) {
		snprintf(err, errlen, "%s: file too large (%jd bytes, limit %u)",
			 path, (intmax_t)st.st_size, PROJECT_FILE_MAX);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		goto fail_errno;
	/* A file shrinking under us just ends early; one growing is cut at
	 * the size fstat saw, and the parser judges what we have. */
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail_errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
fail_errno:
	snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

struct project *
project_load(const char *path, char *err, size_t errlen)
{
	struct project *p;
	size_t len = 0;
	char *text;

	if (err == NULL)
		errlen = 0;	/* snprintf(NULL, 0, ...) is defined: writes nothing */
	text = read_file(path, &len, err, errlen);
	if (text == NULL) {
		if (errlen > 0)
			one_line(err);	/* a path may hold a newline too */
		return NULL;
	}
	p = project_parse(text, len, path, err, errlen);
	free(text);
	return p;
}

void
project_free(struct project *p)
{
	if (p == NULL)
		return;
	free(p->name);
	for (size_t i = 0; i < p->nproviders; i++)
		free(p->image_providers[i]);
	free(p->image_providers);
	free_params(&p->params);
	for (size_t i = 0; i < p->nstoryboards; i++) {
		free(p->storyboards[i].image_prompt);
		free(p->storyboards[i].negative_prompt);
		free_params(&p->storyboards[i].params);
	}
	free(p->storyboards);
	free(p);
}

void
project_uuid(char out[37])
{
	/* Version 7 (RFC 9562): a millisecond timestamp, then random bits.
	 * Rows made together sit together in the B-trees, so a run's inserts
	 * touch few pages; random v4 ids scattered them (measured: ~8 WAL
	 * page writes per storyboard).  The random pool is refilled in a new
	 * process, so that a forked child never repeats its parent's ids. */
	static unsigned char pool[320];
	static size_t left;
	static pid_t owner;
	unsigned char b[16];
	struct timespec ts;
	uint64_t ms;

	if (left < 10 || owner != getpid()) {
		if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool)) {
			uuid_generate_random(b);
			uuid_unparse_lower(b, out);
			return;
		}
		left = sizeof(pool);
		owner = getpid();
	}
	memcpy(b + 6, pool + sizeof(pool) - left, 10);
	explicit_bzero(pool + sizeof(pool) - left, 10);
	left -= 10;
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	uuid_unparse_lower(b, out);
}

bool
project_is_uuid(const char *s)
{
	uuid_t u;

	return s != NULL && strlen(s) == 36 && uuid_parse(s, u) == 0;
}
