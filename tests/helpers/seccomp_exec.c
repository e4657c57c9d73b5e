/* seccomp-exec: runs a program under the seccomp filters a systemd unit
 * would give it, so that the system tests can run the real binary as the
 * shipped unit confines it without systemd as PID 1.
 *
 *   seccomp-exec [-a ALLOWED] [-f FAMILIES] [-w] -- PROGRAM [ARGS...]
 *
 * -a FILE      SystemCallFilter=: the system calls in FILE (one name a line,
 *              as the test computed them from the unit with systemd-analyze)
 *              are allowed, any other kills the process with SIGSYS; names
 *              this architecture does not have are skipped, as systemd does.
 *              Only the native architecture passes (SystemCallArchitectures=
 *              native).
 * -f 1,2,10    RestrictAddressFamilies=: socket() of another family fails
 *              with EAFNOSUPPORT.
 * -w           MemoryDenyWriteExecute=yes: a mapping both writable and
 *              executable, mprotect() to executable and shmat() with SHM_EXEC
 *              fail with EPERM.
 *
 * The filters are loaded in that reverse order (the allow list last: it does
 * not allow seccomp() itself), then PROGRAM is executed; every process it
 * forks inherits them, as under systemd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <unistd.h>

#include <seccomp.h>

static void
die(const char *what, int rc)
{
	fprintf(stderr, "seccomp-exec: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(127);
}

static void
load(scmp_filter_ctx ctx, const char *what)
{
	int rc = seccomp_load(ctx);

	if (rc < 0)
		die(what, rc);
	seccomp_release(ctx);
}

/* systemd's MemoryDenyWriteExecute=: the same three rules. */
static void
deny_write_execute(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc;

	if (ctx == NULL)
		die("seccomp_init", ENOMEM);
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mmap), 1,
			      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC | PROT_WRITE,
				      PROT_EXEC | PROT_WRITE));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mprotect), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(pkey_mprotect), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(shmat), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC));
	if (rc < 0)
		die("MemoryDenyWriteExecute rules", rc);
	load(ctx, "seccomp_load (MemoryDenyWriteExecute)");
}

/* socket(family, ...) for a family not in the comma-separated list. */
static void
restrict_families(const char *list)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EAFNOSUPPORT));
	char *copy = strdup(list), *save = NULL;
	int rc = 0;

	if (ctx == NULL || copy == NULL)
		die("seccomp_init", ENOMEM);
	/* Every other system call passes this filter. */
	for (int nr = 0; nr < 1024 && rc == 0; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		if (name != NULL && nr != SCMP_SYS(socket))
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		free(name);
	}
	for (char *f = strtok_r(copy, ",", &save); f != NULL && rc == 0;
	     f = strtok_r(NULL, ",", &save))
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_EQ, strtoul(f, NULL, 10), 0));
	if (rc < 0)
		die("RestrictAddressFamilies rules", rc);
	free(copy);
	load(ctx, "seccomp_load (RestrictAddressFamilies)");
}

/* SystemCallFilter= as an allow list read from path. */
static void
allow_only(const char *path)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	FILE *f = fopen(path, "re");
	char line[128];
	int n = 0, rc;

	if (ctx == NULL)
		die("seccomp_init", ENOMEM);
	if (f == NULL)
		die(path, errno);
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if ((rc = seccomp_syscall_resolve_name(line)) == __NR_SCMP_ERROR || rc < 0)
			continue;	/* not a system call of this architecture */
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, rc, 0)) < 0)
			die(line, rc);
		n++;
	}
	fclose(f);
	if (n == 0)
		die(path, ENODATA);
	load(ctx, "seccomp_load (SystemCallFilter)");
}

int
main(int argc, char **argv)
{
	const char *allowed = NULL, *families = NULL;
	int wx = 0, c;

	while ((c = getopt(argc, argv, "+a:f:w")) != -1) {
		if (c == 'a')
			allowed = optarg;
		else if (c == 'f')
			families = optarg;
		else if (c == 'w')
			wx = 1;
		else
			return 127;
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: seccomp-exec [-a ALLOWED] [-f FAMILIES] [-w] -- PROGRAM "
			"[ARGS...]\n");
		return 127;
	}
	if (wx)
		deny_write_execute();
	if (families != NULL)
		restrict_families(families);
	if (allowed != NULL)
		allow_only(allowed);
	execv(argv[optind], argv + optind);
	/* Not reached unless execve() failed: under the allow list even
	 * writing this may be forbidden, hence the plain exit status. */
	return 126;
}
