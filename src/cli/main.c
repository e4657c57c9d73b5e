/* main: options and subcommands; everything else lives in cmd_*.c. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "hooksend.h"
#include "hooksend_proc.h"
#include "log.h"
#include "paths.h"
#include "serve.h"
#include "t2istage/plugin.h"

static const char usage_text[] =
	"usage: t2istage [-c FILE] [-v] COMMAND [ARGS]\n"
	"\n"
	"  run PROJECT.json | PROJECT_ID [--storyboard ID]... [--json] [--no-cache]\n"
	"                       generate the images of a project's storyboards\n"
	"  import PROJECT.json  import a project; prints its id\n"
	"  status [PROJECT_ID] [--json]\n"
	"                       stages and counts of one project, or of all\n"
	"  images PROJECT_ID [--json]\n"
	"                       generated images with paths and sizes\n"
	"  retry PROJECT_ID [--json] [--no-cache]\n"
	"                       a run over the storyboards without a completed image\n"
	"  plugins              plugins found, their ABI, and why any was refused\n"
	"  check-config         validate the configuration and its plugins\n"
	"  serve                the service: HTTP API with Server-Sent Events, SIGHUP\n"
	"                       reload, graceful stop on SIGTERM, recovery on start\n"
	"  reload [PID]         make the service reload its configuration and wait for\n"
	"                       the outcome: 0 reloaded, 1 refused, 2 no service found\n"
	"\n"
	"  -c FILE    configuration (default: $T2ISTAGE_CONF, then\n"
	"             " T2I_CONFIG_DEFAULT_PATH ", then built-in defaults)\n"
	"  -v         verbose logging\n"
	"\n"
	"exit status of run and retry: 0 completed, 3 partial, 1 failed, 2 refused\n";

static int
usage(int status)
{
	fputs(usage_text, status == 0 ? stdout : stderr);
	return status;
}

/* fds 0-2 must exist: pipes for workers must never land on them. */
static void
sanitize_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			_exit(EXIT_FAILED);
}

/* Options after the command: --json, --no-cache, --storyboard ID, and at
 * most one positional argument. */
static int
parse_command_args(int argc, char **argv, struct cmd_opts *o)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			o->json = true;
		} else if (strcmp(argv[i], "--no-cache") == 0) {
			o->no_cache = true;
		} else if (strcmp(argv[i], "--storyboard") == 0 && i + 1 < argc) {
			o->storyboards[o->nstoryboards++] = argv[++i];
		} else if (strncmp(argv[i], "--storyboard=", 13) == 0) {
			o->storyboards[o->nstoryboards++] = argv[i] + 13;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "t2istage: unknown option %s\n", argv[i]);
			return -1;
		} else if (o->target == NULL) {
			o->target = argv[i];
		} else {
			fprintf(stderr, "t2istage: unexpected argument %s\n", argv[i]);
			return -1;
		}
	}
	return 0;
}

static int
dispatch(const char *cmd, struct cmd_opts *o)
{
	bool need_target = strcmp(cmd, "run") == 0 || strcmp(cmd, "import") == 0 ||
			   strcmp(cmd, "images") == 0 || strcmp(cmd, "retry") == 0;

	if (need_target && o->target == NULL) {
		fprintf(stderr, "t2istage: %s needs an argument\n", cmd);
		return usage(EXIT_REFUSED);
	}
	if (strcmp(cmd, "run") == 0)
		return cmd_run(o, false);
	if (strcmp(cmd, "retry") == 0)
		return cmd_run(o, true);
	if (strcmp(cmd, "import") == 0)
		return cmd_import(o);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(o);
	if (strcmp(cmd, "images") == 0)
		return cmd_images(o);
	if (strcmp(cmd, "plugins") == 0)
		return cmd_plugins(o);
	if (strcmp(cmd, "check-config") == 0)
		return cmd_check_config(o);
	if (strcmp(cmd, "reload") == 0)
		return cmd_reload(o);
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve_main(config_choose_path(o->conf), o->verbose);
	if (strcmp(cmd, HOOKSEND_COMMAND) == 0)	/* started by the supervisor */
		return hooksend_proc_main(o->target);
	fprintf(stderr, "t2istage: unknown command '%s'\n", cmd);
	return usage(EXIT_REFUSED);
}

int
main(int argc, char **argv)
{
	struct cmd_opts o = { 0 };
	int i = 1, rc;

	sanitize_fds();
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return usage(0);
		if (strcmp(argv[i], "--version") == 0) {
			printf("t2istage %s (plugin ABI %d)\n", T2I_VERSION, T2I_ABI_VERSION);
			return 0;
		}
		if (strcmp(argv[i], "-v") == 0) {
			o.verbose++;
		} else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			o.conf = argv[++i];
		} else {
			fprintf(stderr, "t2istage: unknown option %s\n", argv[i]);
			return usage(EXIT_REFUSED);
		}
	}
	if (i >= argc)
		return usage(EXIT_REFUSED);
	log_init("main", o.verbose);
	o.storyboards = calloc((size_t)argc, sizeof(*o.storyboards));
	if (o.storyboards == NULL)
		return EXIT_FAILED;
	if (parse_command_args(argc - i - 1, argv + i + 1, &o) < 0) {
		free(o.storyboards);
		return usage(EXIT_REFUSED);
	}
	rc = dispatch(argv[i], &o);
	free(o.storyboards);
	return rc;
}
