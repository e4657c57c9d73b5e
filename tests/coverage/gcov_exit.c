/* gcov_exit: linked into every program and shared object of `make
 * coverage`, with -Wl,--wrap=_exit.  The spawner, the template, the spare
 * and the workers, and the webhook sender, leave through _exit(), which
 * skips the exit handlers in which gcov writes its data: each call of
 * _exit() comes here first and writes it, for the program and for each
 * plugin and module it loaded (each shared object has a gcov of its own,
 * hidden inside it, reached through its t2i_gcov_dump).  Normal builds
 * never see this file, so their _exit() is the C library's. */
#include <dlfcn.h>
#include <link.h>
#include <stddef.h>

void __gcov_dump(void);
void __real__exit(int status) __attribute__((noreturn));
void __wrap__exit(int status) __attribute__((noreturn));
void t2i_gcov_dump(void);

/* This object's own gcov data. */
void
t2i_gcov_dump(void)
{
	__gcov_dump();
}

/* A loaded shared object's t2i_gcov_dump, when it has one of its own (a
 * search by handle goes on into its dependencies). */
static int
dump_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	void (*dump)(void);
	void *h;
	Dl_info where;

	(void)size;
	(void)arg;
	if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0')
		return 0;	/* the program itself */
	if ((h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD)) == NULL)
		return 0;
	dump = (void (*)(void))dlsym(h, "t2i_gcov_dump");
	if (dump != NULL && dladdr((void *)dump, &where) != 0 &&
	    (ElfW(Addr))where.dli_fbase == info->dlpi_addr)
		dump();
	dlclose(h);
	return 0;
}

void
__wrap__exit(int status)
{
	__gcov_dump();
	dl_iterate_phdr(dump_object, NULL);
	__real__exit(status);
}
