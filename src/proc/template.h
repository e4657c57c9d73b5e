/* template: a warm process per plugin file, from which that plugin's
 * workers are forked.
 *
 * Why: a worker that dlopen()s an HTTP plugin maps and relocates libcurl
 * and ~30 libraries it pulls in (OpenSSL, Kerberos, LDAP...) and
 * initialises OpenSSL; measured, that was 15-25 ms of CPU per batch, most
 * of a worker's cost, and on a small machine it delayed every batch behind
 * it.  A template pays it once: it loads the plugin (with the same checks a
 * worker makes), the download module when the plugin already links libcurl,
 * the thumbnail module when thumbnails are on, and then only forks.  A
 * worker forked from it calls plugin_load() as before, which finds the
 * library already mapped.  It also keeps a few spare workers forked ahead
 * of need (template_proc.h), so that the fork is not between a free slot
 * and the next provider request either.
 *
 * What keeps the process model's promises (README, "How it works"):
 * - The template is a child of the spawner, never of the supervisor, which
 *   still never loads provider code.
 * - A replaced .so takes effect for the next batch: the spawner stat()s the
 *   plugin file at each request and retires a template whose file changed
 *   (device, inode, size, mtime or ctime).  A retired template takes no more
 *   requests and exits when its last worker has.
 * - A template is a cache, never a requirement: until it says it is ready,
 *   when it failed to start, died, or its plugin started a thread while
 *   loading (fork() would copy one thread of several), the spawner forks the
 *   worker itself, exactly as without templates.
 * - A template reaps its own workers and reports their exits on the
 *   spawner's exit socket; the spawner is a child subreaper, so workers of a
 *   template that died (they die with it: PR_SET_PDEATHSIG) are still
 *   reaped and reported. */
#ifndef T2I_TEMPLATE_H
#define T2I_TEMPLATE_H

#include <stdbool.h>
#include <sys/types.h>

/* Spawner side.  Returns the pid of a worker forked by the template for
 * (plugin, flags) with fds[0] as its batch pipe and fds[1] as its message
 * pipe; 0 when the caller should fork the worker itself (no template yet,
 * not ready, failed); never fails otherwise.  exits_fd is the socket a
 * template reports worker exits on. */
pid_t template_spawn(const char *plugin, unsigned flags, const int fds[2], int exits_fd);

/* Spawner side: starts the template for (plugin, flags) if there is none,
 * so that it is ready by the time the first batch needs it, and has it keep
 * spares workers forked ahead of need (at least one; a template started by
 * a batch keeps one). */
void template_warm(const char *plugin, unsigned flags, int spares, int exits_fd);

/* Spawner side: true when pid was a template (it is forgotten), false when
 * it is a worker whose exit the supervisor must hear of. */
bool template_reaped(pid_t pid);

/* Spawner side: retires templates not used for idle_ms. */
void template_expire(long long idle_ms);

/* Spawner side, when it stops: every template is retired (it ends its
 * spares and exits once its workers have; one still loading is killed). */
void template_retire_all(void);
/* SIGKILL to every template still running; their spares and workers die
 * with them (PR_SET_PDEATHSIG). */
void template_kill_all(void);

#endif
