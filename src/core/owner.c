/* owner: new files take their directory's owner when root makes them. */
#include "owner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Gives fd (just created at path) the owner and group of path's directory
 * when we are root and they differ. */
static int
adopt(int fd, const char *path, char *err, size_t errlen)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	struct stat d, f;

	if (geteuid() != 0)
		return 0;
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (stat(dir, &d) < 0 || fstat(fd, &f) < 0) {
		snprintf(err, errlen, "%s: stat: %s", dir, strerror(errno));
		return -1;
	}
	if ((f.st_uid != d.st_uid || f.st_gid != d.st_gid) && fchown(fd, d.st_uid, d.st_gid) < 0) {
		snprintf(err, errlen, "%s: fchown: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
owner_mkdir(const char *path, mode_t mode, char *err, size_t errlen)
{
	int fd, rc;

	if (mkdir(path, mode) < 0) {
		int saved = errno;

		if (saved == EEXIST)
			return 0;
		snprintf(err, errlen, "%s: mkdir: %s", path, strerror(saved));
		errno = saved;	/* the caller names it (storage.c) */
		return -1;
	}
	if (geteuid() != 0)
		return 0;
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: open: %s", path, strerror(errno));
		return -1;
	}
	rc = adopt(fd, path, err, errlen);
	close(fd);
	return rc;
}

int
owner_create(const char *path, int flags, mode_t mode, char *err, size_t errlen)
{
	int fd = open(path, O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | flags, mode);
	int saved;

	if (fd < 0) {
		saved = errno;
		snprintf(err, errlen, "%s: open: %s", path, strerror(errno));
		errno = saved;
		return -1;
	}
	if (adopt(fd, path, err, errlen) < 0) {
		saved = errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	return fd;
}

int
owner_mkdirs(const char *path, char *err, size_t errlen)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (owner_mkdir(buf, 0750, err, errlen) < 0)
			return -1;
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}
