# t2istage build.  `make` builds build/t2istage, its modules and plugins;
# `make check` installs missing packages and runs every test; `make asan` runs
# them under ASan + UBSan; `make install` / `make uninstall` (PREFIX, DESTDIR,
# SYSCONFDIR, ...).

# ---- where `make install` puts things ----
PREFIX       ?= /usr/local
SYSCONFDIR   ?= /etc
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(PREFIX)/lib/pkgconfig
MANDIR       ?= $(PREFIX)/share/man
UNITDIR      ?= $(PREFIX)/lib/systemd/system
DESTDIR      ?=
# The binary looks for its modules in ../lib/t2istage beside itself
# (src/proc/module.c), so these follow PREFIX and are not settable on their own.
BINDIR       := $(PREFIX)/bin
PKGLIBDIR    := $(PREFIX)/lib/t2istage
PLUGINDIR    := $(PKGLIBDIR)/plugins

# ---- tools ----
BUILD        ?= build
CC           ?= cc
PKG_CONFIG   ?= pkg-config
PYTHON       ?= /usr/bin/python3
INSTALL_DEPS ?= tools/install-deps

VERSION  := 0.1.0
# The source layers, lowest first; HACKING.md says what each may include.
LAYERS   := core store stage proc sup http cli
PKGS     := libconfig jansson sqlite3 libpq uuid nettle libpng libjpeg libwebp libmicrohttpd
# Everything the build and the tests ask pkg-config for.
ALLPKGS  := $(PKGS) libcurl vips cmocka libseccomp

# Why the flags below are computed when make reads this file, and why that is
# safe on a fresh machine: the targets that install the packages (demo, check,
# bench, asan) run $(INSTALL_DEPS) first and then do their work in a new
# $(MAKE), which reads this file again once the packages are there.  A target
# that merely lists `deps` as a prerequisite would compile with the flags of a
# machine that had none of them.  Computing every flag inside each recipe
# instead would run pkg-config once per object file.
pkg = $(shell $(PKG_CONFIG) $(1) 2>/dev/null)

CFLAGS   ?= -O2 -g
# -Wformat-truncation is gcc's: clang 14 does not know it and, under -Werror,
# refuses -Wno-format-truncation, so it is only turned off where it exists.
cc_knows = $(shell $(CC) -Werror $(1) -E -x c /dev/null >/dev/null 2>&1 && echo yes)
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wno-format-nonliteral -Wvla \
            $(if $(call cc_knows,-Wformat-truncation),-Wno-format-truncation)
# Every object records the headers it read, so touching a header rebuilds
# only what includes it.
DEPFLAGS := -MMD -MP
CSTD     := -std=c11 -D_GNU_SOURCE
CPPFLAGS_ALL := $(CSTD) -Iinclude $(LAYERS:%=-Isrc/%) -I$(BUILD)/gen -DT2I_VERSION=\"$(VERSION)\" \
            $(call pkg,--cflags $(PKGS))
# Plugins see the public header and nothing else of the program, as a plugin
# built out of tree does.
PLUGIN_CPPFLAGS := $(CSTD) -Iinclude
# libmicrohttpd is loaded by `serve` at run time (see src/http/mhd.h), not linked.
MHD_SONAME := $(shell objdump -p "$$($(PKG_CONFIG) --variable=libdir libmicrohttpd 2>/dev/null)/libmicrohttpd.so" 2>/dev/null | awk '/SONAME/ {print $$2}')
CPPFLAGS_ALL += $(if $(MHD_SONAME),-DT2I_MHD_SONAME=\"$(MHD_SONAME)\")
LIBS     := $(call pkg,--libs $(filter-out libmicrohttpd,$(PKGS))) -ldl -lm

# ---- what is built ----
SRCS     := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
# The dashboard's files, compiled in (src/http/webasset.h): sorted, so that
# the generated table is the same for the same tree.
WEB      := $(sort $(wildcard web/*.html web/*.css web/*.js web/*.svg))
WEB_OBJ  := $(BUILD)/obj/gen/webasset_data.o
OBJS     := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
LIBOBJS  := $(filter-out $(BUILD)/obj/cli/main.o,$(OBJS)) $(WEB_OBJ)

MODULES  := $(BUILD)/lib/t2istage/thumb_vips.so $(BUILD)/lib/t2istage/fetch_curl.so \
            $(BUILD)/lib/t2istage/post_curl.so
# Plugins that speak HTTP share plugins/phttp.c (libcurl) and phttp_task.c.
PHTTP    := plugins/phttp.c plugins/phttp_task.c
PLUGINS  := $(patsubst plugins/%.c,$(BUILD)/plugins/%.so,$(filter-out $(PHTTP),$(wildcard plugins/*.c)))
HTTP_PLUGINS := $(filter $(addprefix $(BUILD)/plugins/,jimeng.so openai.so sdwebui.so ark.so dashscope.so comfyui.so),$(PLUGINS))
TPLUGINS := $(patsubst tests/plugins/%.c,$(BUILD)/tests/plugins/%.so,$(filter-out tests/plugins/common.c,$(wildcard tests/plugins/*.c)))
UNITS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
# Objects of the shared objects: kept (not deleted as intermediates), so that
# an unchanged plugin is not compiled again.
SO_OBJS  := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard plugins/*.c tests/plugins/*.c modules/*.c)) \
            $(BUILD)/obj/plugins/jsontext.o $(BUILD)/obj/tests/plugins/abi1/common.o
.SECONDARY: $(SO_OBJS)

# Installed files with the install paths written in: the sources name the
# default paths (/usr/local/..., /etc/t2istage) so that they read true in a
# checkout, and @PREFIX@-style placeholders where no default reads well.
MANPAGES := $(wildcard man/*.[1-8])
DIST     := $(addprefix $(BUILD)/dist/,t2istage.service t2istage.conf.example t2istage-plugin.pc) \
            $(MANPAGES:man/%=$(BUILD)/dist/man/%)

.PHONY: all plugins test-plugins deps test check check-clang layers unit system torture asan demo \
        bench install uninstall clean pkgcheck lint FORCE

all: $(BUILD)/t2istage $(MODULES) plugins $(DIST)

plugins: $(PLUGINS)

test-plugins: $(TPLUGINS) $(BUILD)/tests/helpers/seccomp-exec $(BUILD)/tests/helpers/failinject.so

deps:
	@$(INSTALL_DEPS)

# One clear line naming the missing package instead of pages of compiler
# errors: every compile waits for it.
pkgcheck:
	@$(PKG_CONFIG) --print-errors --exists $(ALLPKGS) || \
	    { echo "make: missing packages: run 'make deps' ($(INSTALL_DEPS)) first" >&2; exit 1; }

# ---- compiling ----
# $(call compile,EXTRA FLAGS): one object, with its header dependencies.
# With CCDB=FILE (make compile_commands.json) nothing is compiled: each
# object's command is written to FILE instead, so that the database holds
# exactly the flags these rules use.
compile = $(if $(CCDB),$(call ccdb_line,$(1)),$(call compile_real,$(1)))
compile_real = @mkdir -p $(@D) && echo "  CC      $<" && \
          $(CC) $(1) $(WARN) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<
ccdb_line = @$(file >>$(CCDB),$(CURDIR)|$<|$(CC) $(1) $(WARN) $(CFLAGS) -c -o $@ $<)true
link_so = @mkdir -p $(@D) && echo "  LD      $@" && \
          $(CC) $(CFLAGS) $(LDFLAGS) -shared -o $@ $^ $(1) && chmod 755 $@

$(BUILD)/obj/%.o: src/%.c | pkgcheck $(BUILD)/gen/paths.h
	$(call compile,$(CPPFLAGS_ALL))

$(BUILD)/obj/plugins/%.o: plugins/%.c | pkgcheck
	$(call compile,$(PLUGIN_CPPFLAGS) -fPIC $(call pkg,--cflags libcurl jansson nettle libpng))

$(BUILD)/obj/tests/plugins/%.o: tests/plugins/%.c | pkgcheck
	$(call compile,$(PLUGIN_CPPFLAGS) -fPIC $(call pkg,--cflags libpng jansson))

# libvips and libcurl live in modules the worker loads when it needs them
# (see src/proc/module.h for why).  vips.h has K&R-style prototypes.
$(BUILD)/obj/modules/thumb_vips.o: modules/thumb_vips.c | pkgcheck
	$(call compile,$(CPPFLAGS_ALL) -Wno-strict-prototypes -fPIC $(call pkg,--cflags vips))

$(BUILD)/obj/modules/fetch_curl.o: modules/fetch_curl.c | pkgcheck
	$(call compile,$(CPPFLAGS_ALL) -fPIC $(call pkg,--cflags libcurl))

# tools/webembed writes web/* into a C table.  web.list names the files, and
# changes only when the set of files does, so that removing one rebuilds the
# table too.
$(BUILD)/tools/webembed: tools/webembed.c | pkgcheck
	@mkdir -p $(@D) && echo "  CCLD    $@"
	@$(CC) $(CSTD) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(call pkg,--cflags --libs nettle)

$(BUILD)/gen/web.list: FORCE
	@mkdir -p $(@D)
	@echo '$(WEB)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

$(BUILD)/gen/webasset_data.c: $(BUILD)/tools/webembed $(WEB) $(BUILD)/gen/web.list
	@echo "  GEN     $@"
	@$(BUILD)/tools/webembed -o $@ $(WEB)

$(WEB_OBJ): $(BUILD)/gen/webasset_data.c | pkgcheck
	$(call compile,$(CPPFLAGS_ALL))

$(BUILD)/libt2i.a: $(LIBOBJS)
	$(AR) rcs $@ $^

$(BUILD)/t2istage: $(BUILD)/obj/cli/main.o $(BUILD)/libt2i.a
	$(CC) $(CFLAGS) $(LDFLAGS) -Wl,-z,relro,-z,now -o $@ $^ $(LIBS)

$(BUILD)/lib/t2istage/thumb_vips.so: $(BUILD)/obj/modules/thumb_vips.o
	$(call link_so,$(call pkg,--libs vips))

$(BUILD)/lib/t2istage/fetch_curl.so: $(BUILD)/obj/modules/fetch_curl.o
	$(call link_so,$(call pkg,--libs libcurl))

$(BUILD)/obj/modules/post_curl.o: modules/post_curl.c | pkgcheck
	$(call compile,$(CPPFLAGS_ALL) -fPIC $(call pkg,--cflags libcurl))

# The webhook sender's client (src/proc/hooksend_proc.c).
$(BUILD)/lib/t2istage/post_curl.so: $(BUILD)/obj/modules/post_curl.o
	$(call link_so,$(call pkg,--libs libcurl))

# The host's shortest-real JSON text (src/core/jsontext.c) is compiled into
# each HTTP plugin too, its symbols hidden, so that provider requests carry
# options as the user wrote them.
$(BUILD)/obj/plugins/jsontext.o: src/core/jsontext.c | pkgcheck
	$(call compile,$(PLUGIN_CPPFLAGS) -fPIC $(call pkg,--cflags jansson))

$(HTTP_PLUGINS): $(BUILD)/plugins/%.so: $(BUILD)/obj/plugins/%.o $(BUILD)/obj/plugins/phttp.o \
		$(BUILD)/obj/plugins/phttp_task.o $(BUILD)/obj/plugins/jsontext.o
	$(call link_so,$(call pkg,--libs libcurl jansson nettle))

$(BUILD)/plugins/%.so: $(BUILD)/obj/plugins/%.o
	$(call link_so,$(call pkg,--libs libpng) -lm)

$(BUILD)/tests/plugins/%.so: $(BUILD)/obj/tests/plugins/%.o $(BUILD)/obj/tests/plugins/common.o
	$(call link_so,$(call pkg,--libs libpng jansson))

# The helper that runs the binary under the unit's seccomp filters
# (tests/helpers/seccomp_exec.c), built with the test plugins.
$(BUILD)/tests/helpers/seccomp-exec: tests/helpers/seccomp_exec.c | pkgcheck
	@mkdir -p $(@D) && echo "  CCLD    $@"
	@$(CC) $(CSTD) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(call pkg,--cflags --libs libseccomp)

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libt2i.a | $(BUILD)/gen/paths.h
	@mkdir -p $(@D) && echo "  CCLD    $@"
	@$(CC) $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libt2i.a \
	    $(call pkg,--cflags --libs cmocka) $(LIBS)

# The LD_PRELOAD library of the failure-injection tests
# (tests/helpers/failinject.c).
$(BUILD)/tests/helpers/failinject.so: tests/helpers/failinject.c
	@mkdir -p $(@D) && echo "  CCLD    $@"
	@$(CC) $(CSTD) $(WARN) $(CFLAGS) $(LDFLAGS) -fPIC -shared -o $@ $< -ldl

# The install paths compiled into the binary (the default configuration
# file).  Rewritten only when a value changed, so that changing SYSCONFDIR
# rebuilds what uses it and an unchanged one rebuilds nothing.
$(BUILD)/gen/paths.h: FORCE
	@mkdir -p $(@D)
	@{ echo '/* Written by make from its install variables. */'; \
	   echo '#define T2I_SYSCONFDIR "$(SYSCONFDIR)"'; \
	   echo '#define T2I_CONFIG_DEFAULT_PATH T2I_SYSCONFDIR "/t2istage/t2istage.conf"'; } >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

# A plugin of ABI version 1 is built as it was then: against that header,
# which comes first on its include path.
$(BUILD)/obj/tests/plugins/abi1.o: tests/plugins/abi1.c | pkgcheck
	$(call compile,-Itests/plugins/abi1 $(PLUGIN_CPPFLAGS) -fPIC $(call pkg,--cflags libpng jansson))

$(BUILD)/obj/tests/plugins/abi1/common.o: tests/plugins/common.c | pkgcheck
	$(call compile,-Itests/plugins/abi1 $(PLUGIN_CPPFLAGS) -fPIC $(call pkg,--cflags libpng jansson))

$(BUILD)/tests/plugins/abi1.so: $(BUILD)/obj/tests/plugins/abi1.o $(BUILD)/obj/tests/plugins/abi1/common.o
	$(call link_so,$(call pkg,--libs libpng jansson))

# The same for the paths written into the installed text files.
$(BUILD)/gen/install.vars: FORCE
	@mkdir -p $(@D)
	@echo '$(VERSION) $(PREFIX) $(SYSCONFDIR) $(INCLUDEDIR) $(PKGCONFIGDIR) $(MANDIR) $(UNITDIR)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

# The defaults first, then the placeholders: a placeholder's value may itself
# contain a default path (SYSCONFDIR=/usr/local/etc) and must not be
# rewritten again.
SUBST = sed -e 's|/usr/local/|$(PREFIX)/|g' -e 's|/etc/t2istage|$(SYSCONFDIR)/t2istage|g' \
            -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
            -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@PKGLIBDIR@|$(PKGLIBDIR)|g' \
            -e 's|@PLUGINDIR@|$(PLUGINDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
            -e 's|@VERSION@|$(VERSION)|g'
subst = @mkdir -p $(@D) && $(SUBST) $< >$@.tmp && mv -f $@.tmp $@

$(BUILD)/dist/t2istage.service: etc/t2istage.service $(BUILD)/gen/install.vars
	$(subst)
$(BUILD)/dist/t2istage.conf.example: etc/t2istage.conf $(BUILD)/gen/install.vars
	$(subst)
$(BUILD)/dist/t2istage-plugin.pc: include/t2istage-plugin.pc.in $(BUILD)/gen/install.vars
	$(subst)
$(BUILD)/dist/man/%: man/% $(BUILD)/gen/install.vars
	$(subst)

-include $(OBJS:.o=.d) $(WEB_OBJ:.o=.d) $(SO_OBJS:.o=.d) $(UNITS:=.d)

# ---- tests ----
unit: $(UNITS)
	@set -e; for t in $(UNITS); do echo "== $$t"; $$t; done

PYTEST_ARGS ?= -m "not torture"

system: all test-plugins
	T2I_BUILD=$(BUILD) $(PYTHON) -m pytest -q -p no:cacheprovider tests/system $(PYTEST_ARGS)

# The long variants of the service tests (reload and kill loops).
torture: all test-plugins
	T2I_BUILD=$(BUILD) $(PYTHON) -m pytest -q -p no:cacheprovider tests/system -m torture

# The layering rule of HACKING.md: no include across layers it forbids, no
# include circle between modules.
layers:
	@$(PYTHON) tools/check-layers .

# ---- lint ----
# The compile database of every object of src/, plugins/, modules/ and the
# test plugins, with the flags the rules above use (see `compile`), written
# to CCDB_OUT.  Always made anew: it takes a fraction of a second.
CCDB_OUT ?= compile_commands.json
compile_commands.json: FORCE
	@mkdir -p $(BUILD) && rm -f $(BUILD)/ccdb.lines
	@$(MAKE) -B -s --no-print-directory CCDB=$(CURDIR)/$(BUILD)/ccdb.lines $(OBJS) $(SO_OBJS)
	@$(PYTHON) tools/ccdb $(BUILD)/ccdb.lines >$(CCDB_OUT).tmp && mv -f $(CCDB_OUT).tmp $(CCDB_OUT)
	@echo "  GEN     $(CCDB_OUT)"

# cppcheck and clang-tidy (.clang-tidy, tools/lint/) over src/, plugins/ and
# modules/, with clang's flags: clang-tidy is clang, and refuses gcc's
# warning options.  HACKING.md says why each check is on or off.
LINT_JOBS ?= 2
lint:
	@$(MAKE) -s --no-print-directory BUILD=build-lint CC=clang \
	    CCDB_OUT=build-lint/compile_commands.json compile_commands.json
	@$(PYTHON) tools/lint/run build-lint $(LINT_JOBS)

include tests/fuzz/fuzz.mk
include tests/coverage/coverage.mk

# Every test, on a machine that has the packages.  make coverage runs it
# on an instrumented build (tests/coverage/coverage.mk).
test: layers all test-plugins unit fuzz-replay system

# lint runs here too (about 50 s on two cores): a lint that is not run
# at every change stops being clean.  CHECK_LINT=no leaves it out (the test
# that runs make check in a fresh copy of the tree, where it would only
# repeat).  Not LINT: make has a built-in LINT = lint, which ?= keeps.
CHECK_LINT ?= yes
check:
	$(INSTALL_DEPS)
	$(MAKE) test
	$(MAKE) check-clang
	$(if $(filter yes,$(CHECK_LINT)),$(MAKE) lint)

# The whole tree, the test plugins and the unit tests built and run with
# clang, which warns about things gcc does not.
check-clang:
	$(MAKE) BUILD=build-clang CC=clang all test-plugins unit

asan:
	$(INSTALL_DEPS)
	$(MAKE) BUILD=build-asan \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" test

demo:
	$(INSTALL_DEPS)
	$(MAKE) all
	$(BUILD)/t2istage run examples/demo.json

bench:
	$(INSTALL_DEPS)
	$(MAKE) all test-plugins
	$(PYTHON) tools/bench.py --build $(BUILD)

# ---- installing ----
MANSECT   = $(subst .,,$(suffix $(1)))
INST_MAN  := $(foreach m,$(MANPAGES),$(MANDIR)/man$(call MANSECT,$(m))/$(notdir $(m)))
# Every file `install` writes; `uninstall` removes exactly these.
INSTALLED := $(BINDIR)/t2istage \
             $(addprefix $(PKGLIBDIR)/,$(notdir $(MODULES))) \
             $(addprefix $(PLUGINDIR)/,$(notdir $(PLUGINS))) \
             $(INCLUDEDIR)/t2istage/plugin.h \
             $(PKGCONFIGDIR)/t2istage-plugin.pc \
             $(SYSCONFDIR)/t2istage/t2istage.conf.example \
             $(UNITDIR)/t2istage.service \
             $(INST_MAN)
# Directories that are t2istage's own, removed by uninstall when empty.
OWNDIRS   := $(PLUGINDIR) $(PKGLIBDIR) $(INCLUDEDIR)/t2istage $(SYSCONFDIR)/t2istage

install: all
	install -d $(addprefix $(DESTDIR),$(BINDIR) $(PLUGINDIR) $(INCLUDEDIR)/t2istage \
	    $(PKGCONFIGDIR) $(SYSCONFDIR)/t2istage $(UNITDIR) $(sort $(dir $(INST_MAN))))
	install -m 755 $(BUILD)/t2istage $(DESTDIR)$(BINDIR)/t2istage
	install -m 755 $(MODULES) $(DESTDIR)$(PKGLIBDIR)/
	install -m 755 $(PLUGINS) $(DESTDIR)$(PLUGINDIR)/
	install -m 644 include/t2istage/plugin.h $(DESTDIR)$(INCLUDEDIR)/t2istage/plugin.h
	install -m 644 $(BUILD)/dist/t2istage-plugin.pc $(DESTDIR)$(PKGCONFIGDIR)/
	install -m 644 $(BUILD)/dist/t2istage.conf.example $(DESTDIR)$(SYSCONFDIR)/t2istage/
	install -m 644 $(BUILD)/dist/t2istage.service $(DESTDIR)$(UNITDIR)/
	$(foreach m,$(MANPAGES),install -m 644 $(BUILD)/dist/$(m) \
	    $(DESTDIR)$(MANDIR)/man$(call MANSECT,$(m))/$(notdir $(m)) &&) true

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@for d in $(addprefix $(DESTDIR),$(OWNDIRS)); do \
	    if [ -d "$$d" ]; then rmdir "$$d" 2>/dev/null || echo "uninstall: kept $$d (not empty)"; fi; \
	done

clean:
	rm -rf build build-asan build-clang build-lint build-fuzz build-cov
