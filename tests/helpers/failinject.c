/* failinject: an LD_PRELOAD library that makes calls of the real binary
 * fail, for the failure-injection tests (tests/system/test_failinject.py).
 *
 *   T2I_FAILALLOC_FILE=PATH  T2I_FAILALLOC_UNTIL=END  T2I_FAILALLOC_N=N
 *   [T2I_FAILALLOC_REPORT=OUT]
 *       The window opens when PATH is opened (the project file) and closes
 *       when a path ending in END is opened (the database): the project
 *       file's reading, parsing and checking.  The Nth allocation inside it (malloc,
 *       calloc, realloc and the aligned ones, counted from 1) returns NULL
 *       with ENOMEM, once.  OUT gets "ALLOCATIONS FAILED" at exit: how many
 *       the window saw, and 1 when one was failed.  T2I_FAILALLOC_TRACE=1
 *       writes the stack of the failed call to stderr, to find its site.
 *
 *   T2I_FAILFSYNC_DIR=DIR
 *       fsync() and fdatasync() of a file or directory under DIR fail with
 *       EIO, in every process that inherits the variable (the workers).
 *
 * Allocation goes to glibc's own __libc_* functions, so that counting
 * needs no allocation and dlsym() is never reentered. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

enum { BEFORE, INSIDE, AFTER };

static int window = BEFORE;
static long count, fail_at = -1, failed;
static int trace;
static const char *alloc_file, *alloc_until, *fsync_dir;

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static FILE *(*real_fopen)(const char *, const char *);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void report(void);

__attribute__((constructor)) static void
failinject_init(void)
{
	const char *n = getenv("T2I_FAILALLOC_N");

	real_open = (__typeof__(real_open))dlsym(RTLD_NEXT, "open");
	real_openat = (__typeof__(real_openat))dlsym(RTLD_NEXT, "openat");
	real_fopen = (__typeof__(real_fopen))dlsym(RTLD_NEXT, "fopen");
	real_fsync = (__typeof__(real_fsync))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (__typeof__(real_fdatasync))dlsym(RTLD_NEXT, "fdatasync");
	alloc_file = getenv("T2I_FAILALLOC_FILE");
	alloc_until = getenv("T2I_FAILALLOC_UNTIL");
	fsync_dir = getenv("T2I_FAILFSYNC_DIR");
	if (getenv("T2I_FAILALLOC_TRACE") != NULL) {
		void *frames[1];

		trace = 1;
		backtrace(frames, 1);	/* loads libgcc now, not inside malloc */
	}
	if (alloc_file != NULL && alloc_until != NULL && n != NULL) {
		fail_at = strtol(n, NULL, 10);
		atexit(report);
	}
}

static void
report(void)
{
	const char *out = getenv("T2I_FAILALLOC_REPORT");
	char line[64];
	int fd, len;

	if (out == NULL || window == BEFORE)
		return;
	len = snprintf(line, sizeof(line), "%ld %ld\n", count, failed);
	if ((fd = real_open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) >= 0) {
		if (write(fd, line, (size_t)len) != len)
			_exit(99);
		close(fd);
	}
}

/* An open() of path moves the window along. */
static void
opened(const char *path)
{
	size_t n = path != NULL && alloc_until != NULL ? strlen(path) : 0,
	       u = alloc_until != NULL ? strlen(alloc_until) : 0;

	if (fail_at < 0 || path == NULL)
		return;
	if (window == BEFORE && strcmp(path, alloc_file) == 0)
		window = INSIDE;
	else if (window == INSIDE && n >= u && strcmp(path + n - u, alloc_until) == 0)
		window = AFTER;
}

/* True when this allocation is the one to fail. */
static int
fail_now(void)
{
	if (window != INSIDE)
		return 0;
	if (++count != fail_at)
		return 0;
	failed = 1;
	if (trace) {
		void *frames[32];

		backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
	}
	errno = ENOMEM;
	return 1;
}

void *
malloc(size_t n)
{
	return fail_now() ? NULL : __libc_malloc(n);
}

void *
calloc(size_t k, size_t n)
{
	return fail_now() ? NULL : __libc_calloc(k, n);
}

void *
realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __libc_realloc(p, n);
}

void *
memalign(size_t align, size_t n)
{
	return fail_now() ? NULL : __libc_memalign(align, n);
}

void *
aligned_alloc(size_t align, size_t n)
{
	return memalign(align, n);
}

int
posix_memalign(void **out, size_t align, size_t n)
{
	void *p = memalign(align, n);

	if (p == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}

int
open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	int fd;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	opened(path);
	fd = real_open(path, flags, mode);
	return fd;
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	opened(path);
	return real_openat(dirfd, path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

FILE *
fopen(const char *path, const char *mode)
{
	opened(path);
	return real_fopen(path, mode);
}

FILE *fopen64(const char *path, const char *mode) __attribute__((alias("fopen")));

/* fd names a file under fsync_dir (or the directory itself). */
static int
under_dir(int fd)
{
	char link[64], target[4096];
	size_t n = fsync_dir != NULL ? strlen(fsync_dir) : 0;
	ssize_t len;

	if (n == 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((len = readlink(link, target, sizeof(target) - 1)) < 0)
		return 0;
	target[len] = '\0';
	return strncmp(target, fsync_dir, n) == 0 && (target[n] == '\0' || target[n] == '/');
}

int
fsync(int fd)
{
	if (under_dir(fd)) {
		errno = EIO;
		return -1;
	}
	return real_fsync(fd);
}

int
fdatasync(int fd)
{
	if (under_dir(fd)) {
		errno = EIO;
		return -1;
	}
	return real_fdatasync(fd);
}
