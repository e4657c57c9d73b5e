/* statusfile: what `serve` says about itself in its runtime directory, for
 * `t2istage reload` (and for people):
 *
 *   pid=1234
 *   state=serving            serving, reloading or stopping
 *   reload=3                 reloads begun
 *   reload_done=3            reloads finished (one less while reloading)
 *   reload_result=refused    ok or refused: the outcome of reload number 3
 *   reload_message=...       why it was refused, on one line
 *
 * Why a file: only the main process knows whether a reload took (it probes
 * the plugins, reads its credentials; under systemd 252 an ExecReload=
 * process cannot even read /run/credentials/).  The reload command notes
 * the number of reloads begun, sends SIGHUP and waits for a reload with a
 * higher number to finish: that one read the configuration after the
 * command started.
 *
 * The file is $RUNTIME_DIRECTORY/t2istage.status (systemd sets the variable
 * for RuntimeDirectory=), else /run/t2istage/t2istage.status.  It is
 * replaced with rename(), so a reader never sees half of it. */
#ifndef T2I_STATUSFILE_H
#define T2I_STATUSFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define STATUSFILE_NAME "t2istage.status"
#define STATUSFILE_DEFAULT_DIR "/run/t2istage"

struct statusfile {
	pid_t pid;
	char state[16];
	long reload;
	long reload_done;
	char result[16];	/* "", "ok" or "refused" */
	char message[512];
};

/* The directory and the file's path. */
const char *statusfile_dir(void);
void statusfile_path(char *buf, size_t len);

/* Writes st (creating the directory if needed).  0, or -1 with one line
 * (path and errno) in err. */
int statusfile_write(const struct statusfile *st, char *err, size_t errlen);

/* Reads the file.  0, or -1 with errno kept and one line in err. */
int statusfile_read(struct statusfile *st, char *err, size_t errlen);

/* Removes the file if it is still pid's. */
void statusfile_remove(pid_t pid);

#endif
