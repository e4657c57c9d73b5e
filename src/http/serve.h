/* serve: the `serve` command. */
#ifndef T2I_SERVE_H
#define T2I_SERVE_H

/* Runs the service until a stop signal; the process exit status. */
int cmd_serve_main(const char *conf_path, int verbose);

#endif
