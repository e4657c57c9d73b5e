# make coverage: every test (unit, fuzz corpus replay, system) on a build
# instrumented for gcov in build-cov/, then the line coverage of each file
# of src/, plugins/ and modules/ (gcovr; build-cov/coverage.txt).  The
# children that leave through _exit() write their data first
# (tests/coverage/gcov_exit.c); a worker killed by a signal (a deadline,
# a torture test) writes none.

COV_BUILD   := build-cov
COV_EXIT    := $(CURDIR)/$(COV_BUILD)/gcov_exit.o
COV_CFLAGS  := -O0 -g --coverage
COV_LDFLAGS := --coverage -Wl,--wrap=_exit $(COV_EXIT)

.PHONY: coverage coverage-report

coverage:
	$(INSTALL_DEPS)
	@mkdir -p $(COV_BUILD)
	@find $(COV_BUILD) -name '*.gcda' -delete
	$(CC) $(CSTD) $(WARN) -fPIC -c -o $(COV_EXIT) tests/coverage/gcov_exit.c
	$(MAKE) BUILD=$(COV_BUILD) CFLAGS="$(COV_CFLAGS)" LDFLAGS="$(COV_LDFLAGS)" test
	$(MAKE) --no-print-directory coverage-report

# The summary of what the last `make coverage` ran.
coverage-report:
	@gcovr --root . --object-directory $(COV_BUILD) --filter 'src/' --filter 'plugins/' \
	    --filter 'modules/' --exclude-unreachable-branches --sort-percentage \
	    --txt $(COV_BUILD)/coverage.txt --print-summary >/dev/null
	@cat $(COV_BUILD)/coverage.txt
