/* cmd: the subcommands.  Each returns the process exit status. */
#ifndef T2I_CMD_H
#define T2I_CMD_H

#include <stdbool.h>

/* Exit statuses of run and retry (t2istage(8), EXIT STATUS). */
enum {
	EXIT_COMPLETED = 0,
	EXIT_FAILED = 1,	/* the run failed, or an internal error */
	EXIT_REFUSED = 2,	/* usage, bad input, validation */
	EXIT_PARTIAL = 3
};

struct cmd_opts {
	const char *conf;	/* -c */
	int verbose;
	bool json;		/* --json */
	bool no_cache;		/* --no-cache */
	const char *target;	/* PROJECT.json or PROJECT_ID */
	const char **storyboards; /* --storyboard ID... */
	int nstoryboards;
};

int cmd_run(const struct cmd_opts *o, bool retry);
int cmd_import(const struct cmd_opts *o);
int cmd_status(const struct cmd_opts *o);
int cmd_images(const struct cmd_opts *o);
int cmd_plugins(const struct cmd_opts *o);
int cmd_check_config(const struct cmd_opts *o);
/* `reload [PID]`: 0 reloaded, 1 refused (or the service went away), 2 it
 * could not be asked; see cmd_reload.c. */
int cmd_reload(const struct cmd_opts *o);

/* Shared by the commands: the config, or NULL after printing why. */
struct config *cmd_config(const struct cmd_opts *o);

#endif
