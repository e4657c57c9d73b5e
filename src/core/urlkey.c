/* urlkey: read or make the key of signed image URLs. */
#include "urlkey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads all of fd, at most URLKEY_MAX + 1 bytes: one more tells too large. */
static ssize_t
read_all(int fd, unsigned char *buf, size_t cap)
{
	size_t n = 0;

	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

int
urlkey_read(const char *path, unsigned char **key, size_t *len, char *err, size_t errlen)
{
	unsigned char buf[URLKEY_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read_all(fd, buf, sizeof(buf)) : -1;
	int saved = errno;

	if (fd >= 0)
		close(fd);
	*key = NULL;
	*len = 0;
	if (n < 0)
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(saved));
	else if (n > URLKEY_MAX)
		snprintf(err, errlen, "%s is larger than %d bytes", path, URLKEY_MAX);
	else if (n < URLKEY_MIN)
		snprintf(err, errlen, "%s holds %zd bytes: a key needs at least %d", path, n,
			 URLKEY_MIN);
	else if ((*key = malloc((size_t)n)) == NULL)
		snprintf(err, errlen, "out of memory");
	if (*key != NULL) {
		memcpy(*key, buf, (size_t)n);
		*len = (size_t)n;
	}
	explicit_bzero(buf, sizeof(buf));
	return *key != NULL ? 0 : -1;
}

/* The new key in a temporary file beside path; its name into tmp. */
static int
write_temp(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen)
{
	unsigned char k[URLKEY_MIN];
	int fd;
	ssize_t w;

	snprintf(tmp, tmplen, "%s.XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {	/* mode 0600 */
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		w = -1;
	} else if ((w = write(fd, k, sizeof(k))) != (ssize_t)sizeof(k) || fsync(fd) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp,
			 w < 0 || w == (ssize_t)sizeof(k) ? strerror(errno) : "short write");
		w = -1;
	}
	explicit_bzero(k, sizeof(k));
	close(fd);
	if (w < 0)
		unlink(tmp);
	return w < 0 ? -1 : 0;
}

int
urlkey_make(const char *path, unsigned char **key, size_t *len, char *err, size_t errlen)
{
	char tmp[4096 + 8];
	int rc;

	if (access(path, F_OK) == 0 || errno != ENOENT)
		return urlkey_read(path, key, len, err, errlen);
	if (strlen(path) > 4096) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if (write_temp(path, tmp, sizeof(tmp), err, errlen) < 0)
		return -1;
	/* link() never replaces: whoever linked first made the key. */
	rc = link(tmp, path);
	if (rc < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	unlink(tmp);
	return urlkey_read(path, key, len, err, errlen);
}

void
urlkey_free(unsigned char *key, size_t len)
{
	if (key != NULL)
		explicit_bzero(key, len);
	free(key);
}
