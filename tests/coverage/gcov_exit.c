/* gcov_exit: linked into every program and shared object of `make
 * coverage`, with -Wl,--wrap=_exit.  The spawner, the template, the spare
 * and the workers, and the webhook sender, leave through _exit(), which
 * skips the exit handler in which gcov writes its data: each call of
 * _exit() comes here first and writes it.  Normal builds never see this
 * file, so their _exit() is the C library's. */

void __gcov_dump(void);
void __real__exit(int status) __attribute__((noreturn));
void __wrap__exit(int status) __attribute__((noreturn));

void
__wrap__exit(int status)
{
	__gcov_dump();
	__real__exit(status);
}
