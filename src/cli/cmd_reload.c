/* cmd_reload: `t2istage reload [PID]`, the unit's ExecReload=.
 *
 * Signals the service and waits for the outcome of a reload that read the
 * configuration after this command started, as the service itself reports
 * it in its status file (statusfile.h): `systemctl reload` then fails when
 * the new configuration was refused, and says why.  kill -HUP alone cannot:
 * it succeeds as soon as the signal is sent.
 *
 * Exit status: 0 the service reloaded; 1 it refused the new configuration
 * (it keeps the running one), or it stopped or did not answer; 2 it could
 * not be asked (usage, no status file, no such process). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "clock.h"
#include "cmd.h"
#include "statusfile.h"

/* As long as systemd gives a reload job by default. */
#define RELOAD_WAIT_MS (90 * 1000)
/* How often a silent service is checked for being alive. */
#define RELOAD_CHECK_MS 1000

/* The PID argument, else $MAINPID (systemd sets it for ExecReload=), else
 * 0: the status file's. -1 when what was given is no pid. */
static pid_t
target_pid(const char *arg)
{
	const char *s = arg != NULL ? arg : getenv("MAINPID");
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0 || v > INT_MAX) {
		fprintf(stderr, "t2istage: reload: not a process id: '%s'\n", s);
		return -1;
	}
	return (pid_t)v;
}

/* 0 reloaded, 1 refused or gone, or -1 while there is no outcome yet. */
static int
outcome(pid_t pid, long after)
{
	struct statusfile st;
	char err[PATH_MAX + 64];

	if (statusfile_read(&st, err, sizeof(err)) == 0 && st.pid == pid) {
		if (st.reload_done > after && strcmp(st.result, "ok") == 0) {
			printf("t2istage: reloaded (pid %ld)\n", (long)pid);
			return 0;
		}
		if (st.reload_done > after) {
			fprintf(stderr, "t2istage: reload refused, the running configuration "
				"stays: %s\n", st.message);
			return 1;
		}
		if (strcmp(st.state, "stopping") == 0) {
			fprintf(stderr, "t2istage: reload: pid %ld is stopping\n", (long)pid);
			return 1;
		}
	}
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		fprintf(stderr, "t2istage: reload: pid %ld exited before reloading\n", (long)pid);
		return 1;
	}
	return -1;
}

/* Waits for a reload numbered above after to finish.  inotify wakes us when
 * the file is replaced; without it, or when the service dies without a
 * word, the periodic check notices. */
static int
wait_outcome(pid_t pid, long after, int in)
{
	int64_t deadline = clock_now_ms() + RELOAD_WAIT_MS;
	char buf[4096];
	int rc;

	while ((rc = outcome(pid, after)) < 0) {
		struct pollfd pfd = { .fd = in, .events = POLLIN };
		int64_t left = deadline - clock_now_ms();

		if (left <= 0) {
			fprintf(stderr, "t2istage: reload: no answer from pid %ld in %d s\n",
				(long)pid, RELOAD_WAIT_MS / 1000);
			return 1;
		}
		if (poll(&pfd, 1, (int)(left < RELOAD_CHECK_MS ? left : RELOAD_CHECK_MS)) > 0)
			while (read(in, buf, sizeof(buf)) > 0)
				;
	}
	return rc;
}

int
cmd_reload(const struct cmd_opts *o)
{
	struct statusfile st;
	char err[PATH_MAX + 64];
	pid_t pid = target_pid(o->target);
	int in, rc;

	if (pid < 0)
		return EXIT_REFUSED;
	if (statusfile_read(&st, err, sizeof(err)) < 0) {
		fprintf(stderr, "t2istage: reload: cannot read the service's status: %s%s\n", err,
			errno == ENOENT ? " (is `t2istage serve` running, with the same "
			"RUNTIME_DIRECTORY?)" : "");
		return EXIT_REFUSED;
	}
	if (pid == 0)
		pid = st.pid;
	if (st.pid != pid) {
		fprintf(stderr, "t2istage: reload: the status file belongs to pid %ld, not %ld\n",
			(long)st.pid, (long)pid);
		return EXIT_REFUSED;
	}
	/* Watch before signalling: the answer may come at once. */
	in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (in >= 0 && inotify_add_watch(in, statusfile_dir(), IN_MOVED_TO | IN_CLOSE_WRITE |
					 IN_DELETE) < 0) {
		close(in);
		in = -1;
	}
	if (kill(pid, SIGHUP) < 0) {
		fprintf(stderr, "t2istage: reload: kill %ld: %s\n", (long)pid, strerror(errno));
		rc = EXIT_REFUSED;
	} else {
		rc = wait_outcome(pid, st.reload, in);
	}
	if (in >= 0)
		close(in);
	return rc;
}
