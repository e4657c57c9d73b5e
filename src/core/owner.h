/* owner: files and directories created in the service's state stay the
 * service's, whoever creates them.
 *
 * An admin who runs the CLI as root against the service's state (say
 * `t2istage run`, or `import`) would otherwise leave directories the
 * service cannot write into and files it cannot read: a root:root 0750
 * image directory made GET /v1/images/{id}/file fail and every later image
 * of that directory.  So, as SQLite does for its journal files, what root
 * creates gets the owner and group of the directory it is created in.  Only
 * root can give files away; anyone else creates them as themselves. */
#ifndef T2I_OWNER_H
#define T2I_OWNER_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir(path, mode); an existing directory is fine.  0, or -1 with
 * "PATH: mkdir: strerror" (or fchown) in err. */
int owner_mkdir(const char *path, mode_t mode, char *err, size_t errlen);

/* mkdir -p: every missing directory of path, each with mode 0750 and as
 * owner_mkdir() makes it.  0, or -1 with err. */
int owner_mkdirs(const char *path, char *err, size_t errlen);

/* open(path, O_CREAT | O_EXCL | O_NOFOLLOW | flags, mode): a new file, never
 * one already there nor the target of a symbolic link planted in its place.
 * The descriptor, or -1 with errno kept and "PATH: open: strerror" (or
 * fchown) in err. */
int owner_create(const char *path, int flags, mode_t mode, char *err, size_t errlen);

#endif
