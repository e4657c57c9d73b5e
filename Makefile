# t2istage build.  `make` builds build/t2istage and build/plugins/*.so;
# `make check` runs every test; `make asan` runs them under ASan + UBSan.

PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
CC       ?= cc
PYTHON   ?= /usr/bin/python3

VERSION  := 0.1.0
# The source layers, lowest first; HACKING.md says what each may include.
LAYERS   := core store stage proc sup http cli
PKGS     := libconfig jansson sqlite3 uuid nettle libpng libjpeg libwebp libmicrohttpd
PLUGPKGS := libpng

CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation -Wvla
CPPFLAGS_ALL := -std=c11 -D_GNU_SOURCE -Iinclude $(LAYERS:%=-Isrc/%) -DT2I_VERSION=\"$(VERSION)\" \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libmicrohttpd is loaded by `serve` at run time (see src/http/mhd.h), not linked.
MHD_SONAME := $(shell objdump -p "$$(pkg-config --variable=libdir libmicrohttpd 2>/dev/null)/libmicrohttpd.so" 2>/dev/null | awk '/SONAME/ {print $$2}')
CPPFLAGS_ALL += $(if $(MHD_SONAME),-DT2I_MHD_SONAME=\"$(MHD_SONAME)\")
LIBS     := $(shell pkg-config --libs $(filter-out libmicrohttpd,$(PKGS)) 2>/dev/null) -ldl -lm

SRCS     := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
OBJS     := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
LIBOBJS  := $(filter-out $(BUILD)/obj/cli/main.o,$(OBJS))

# Plugins that speak HTTP share plugins/phttp.c (libcurl) and phttp_task.c.
PHTTP    := plugins/phttp.c plugins/phttp_task.c
PLUGINS  := $(patsubst plugins/%.c,$(BUILD)/plugins/%.so,$(filter-out $(PHTTP),$(wildcard plugins/*.c)))
HTTP_PLUGINS := $(filter $(addprefix $(BUILD)/plugins/,jimeng.so openai.so sdwebui.so ark.so dashscope.so comfyui.so),$(PLUGINS))
TPLUGINS := $(patsubst tests/plugins/%.c,$(BUILD)/tests/plugins/%.so,$(filter-out tests/plugins/common.c,$(wildcard tests/plugins/*.c)))
UNITS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))

.PHONY: all plugins test-plugins check layers unit system torture asan demo bench install clean deps
MODULES  := $(BUILD)/lib/t2istage/thumb_vips.so $(BUILD)/lib/t2istage/fetch_curl.so

all: $(BUILD)/t2istage $(MODULES) plugins

deps:
	@tools/install-deps

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*/*.h include/t2istage/*.h)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) -c -o $@ $<

$(BUILD)/libt2i.a: $(LIBOBJS)
	$(AR) rcs $@ $^

$(BUILD)/t2istage: $(BUILD)/obj/cli/main.o $(BUILD)/libt2i.a
	$(CC) $(CFLAGS) $(LDFLAGS) -Wl,-z,relro,-z,now -o $@ $^ $(LIBS)

plugins: $(PLUGINS)

# libvips and libcurl live in modules the worker loads when it needs them
# (see src/proc/module.h for why).
$(BUILD)/lib/t2istage/thumb_vips.so: modules/thumb_vips.c | $(BUILD)/lib/t2istage
	@echo "  CC      $@"
	@$(CC) $(CPPFLAGS_ALL) $(WARN) -Wno-strict-prototypes $(CFLAGS) -fPIC -shared -o $@ $< \
	    $(shell pkg-config --cflags --libs vips)

$(BUILD)/lib/t2istage/fetch_curl.so: modules/fetch_curl.c include/curl_policy.h | $(BUILD)/lib/t2istage
	@echo "  CC      $@"
	@$(CC) $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< \
	    $(shell pkg-config --cflags --libs libcurl)

$(HTTP_PLUGINS): $(BUILD)/plugins/%.so: plugins/%.c $(PHTTP) plugins/phttp.h plugins/phttp_task.h include/t2istage/plugin.h include/curl_policy.h | $(BUILD)/plugins
	@echo "  CC      $@"
	@$(CC) $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< $(PHTTP) \
	    $(shell pkg-config --cflags --libs libcurl jansson nettle)
	@chmod 755 $@

$(BUILD)/plugins/%.so: plugins/%.c include/t2istage/plugin.h | $(BUILD)/plugins
	@echo "  CC      $@"
	@$(CC) $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< \
	    $(shell pkg-config --cflags --libs $(PLUGPKGS)) -lm
	@chmod 755 $@

test-plugins: $(TPLUGINS)

$(BUILD)/tests/plugins/%.so: tests/plugins/%.c tests/plugins/common.c tests/plugins/common.h include/t2istage/plugin.h | $(BUILD)/tests/plugins
	$(CC) $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< tests/plugins/common.c \
	    $(shell pkg-config --cflags --libs libpng jansson)
	@chmod 755 $@

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libt2i.a | $(BUILD)/tests/unit
	$(CC) $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libt2i.a \
	    $(shell pkg-config --cflags --libs cmocka) $(LIBS)

# A plugin of ABI version 1 is built as it was then: against that header,
# which comes first on its include path.
$(BUILD)/tests/plugins/abi1.so: tests/plugins/abi1.c tests/plugins/common.c tests/plugins/common.h tests/plugins/abi1/t2istage/plugin.h | $(BUILD)/tests/plugins
	$(CC) -Itests/plugins/abi1 $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< tests/plugins/common.c \
	    $(shell pkg-config --cflags --libs libpng jansson)
	@chmod 755 $@

$(BUILD)/plugins $(BUILD)/tests/plugins $(BUILD)/tests/unit $(BUILD)/lib/t2istage:
	mkdir -p $@

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
	@/usr/bin/python3 tools/check-layers .

check: deps all test-plugins layers unit system

asan:
	$(MAKE) BUILD=build-asan \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" check

demo: deps all
	$(BUILD)/t2istage run examples/demo.json

bench: deps all test-plugins
	$(PYTHON) tools/bench.py --build $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/t2istage/plugins \
	    $(DESTDIR)$(PREFIX)/include/t2istage $(DESTDIR)/etc/t2istage \
	    $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BUILD)/t2istage $(DESTDIR)$(PREFIX)/bin/t2istage
	install -m 755 $(MODULES) $(DESTDIR)$(PREFIX)/lib/t2istage/
	install -m 755 $(PLUGINS) $(DESTDIR)$(PREFIX)/lib/t2istage/plugins/
	install -m 644 include/t2istage/plugin.h $(DESTDIR)$(PREFIX)/include/t2istage/plugin.h
	install -m 644 etc/t2istage.conf $(DESTDIR)/etc/t2istage/t2istage.conf.example
	sed 's|@PREFIX@|$(PREFIX)|g' etc/t2istage.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/t2istage.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/t2istage.service

clean:
	rm -rf build build-asan
