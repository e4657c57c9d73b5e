/* project: the project file (JSON) parsed and validated whole, before
 * anything is written.  Used by `import`, `run FILE` and POST /v1/projects. */
#ifndef T2I_PROJECT_H
#define T2I_PROJECT_H

#include <stdbool.h>
#include <stddef.h>

#define PROJECT_FILE_MAX (32u * 1024 * 1024)	/* bytes */
#define PROJECT_STORYBOARDS_MAX 100000
#define PROJECT_PROMPT_MAX 8192		/* bytes of image_prompt / negative_prompt */
#define PROJECT_NAME_MAX 256
#define PROJECT_PROVIDERS_MAX 16

/* Parameters as written; NULL members are "not given" and resolve later
 * (storyboard, then project, then config, then 16:9 / 2k). */
struct project_params {
	char *ratio;
	char *resolution;
	char *options_json;	/* compact JSON object text, or NULL */
};

struct project_storyboard {
	char id[37];		/* UUID, lower case */
	int index;		/* 1-based position in the file */
	char *image_prompt;	/* non-empty */
	char *negative_prompt;	/* "" when absent */
	struct project_params params;
};

struct project {
	char id[37];
	char *name;		/* "" when absent */
	size_t nproviders;
	char **image_providers;	/* provider names in priority order */
	struct project_params params;
	bool storyboard_completed; /* false when "storyboard_stage": "processing" */
	size_t nstoryboards;
	struct project_storyboard *storyboards;
};

/* Parses text (len bytes).  where names the source for messages ("demo.json").
 * On error returns NULL and writes one line naming the place, e.g.
 * "demo.json: storyboard 3 (id ...): image_prompt: missing or empty". */
struct project *project_parse(const char *text, size_t len, const char *where,
			      char *err, size_t errlen);

/* Reads and parses a file, refusing files larger than PROJECT_FILE_MAX. */
struct project *project_load(const char *path, char *err, size_t errlen);

void project_free(struct project *p);

/* A PATCH of a storyboard: NULL members are left as they are; has_params
 * replaces the storyboard's params whole (null or {} clears them). */
struct project_patch {
	char *image_prompt;	/* non-empty when given */
	char *negative_prompt;	/* "" clears it (null does too) */
	bool has_params;
	struct project_params params;
};

/* Parses {"image_prompt", "negative_prompt", "params"} with the rules of a
 * project file's storyboard.  On error -1 and one line naming the field. */
int project_parse_patch(const char *text, size_t len, struct project_patch *pt, char *err,
			size_t errlen);
void project_patch_free(struct project_patch *pt);

/* Generates a random UUID (v4) into out[37]. */
void project_uuid(char out[37]);

/* True when s is a UUID in canonical text form (any case). */
bool project_is_uuid(const char *s);

#endif
