# The fuzz harnesses (tests/fuzz/), included by the Makefile.
#
# Each harness is built twice over: by `make fuzz` with clang and libFuzzer
# (build-fuzz/, ASan and UBSan), which runs each for FUZZ_SECONDS; and by
# `make test` in $(BUILD) with the build's own compiler and flags, linked
# with replay.c instead of libFuzzer, which runs it once on every file of
# its corpus tests/fuzz/corpus/NAME/ (under ASan and UBSan in `make asan`).
# A crash that fuzzing finds is saved there once fixed, and stays fixed.

# Harnesses of the program's own parsers, linked with libt2i.a.
FUZZ_LIB     := project patch config msg_worker msg_batch msg_ctl base64 image route guard \
                urlsig cursor run_body last_event_id listen frame
# One harness per HTTP plugin, from fuzz_plugin.c.
FUZZ_PLUGINS := jimeng openai sdwebui ark dashscope comfyui
FUZZERS      := $(FUZZ_LIB) $(FUZZ_PLUGINS:%=plugin_%) phttp_b64
FUZZ_SECONDS ?= 10
FUZZ_JOBS    ?= 2
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_BINS    := $(FUZZERS:%=$(FUZZ_DIR)/%)
# Empty: linked with replay.c.  -fsanitize=fuzzer: with libFuzzer's main.
FUZZ_ENGINE  ?=
FUZZ_MAIN    := $(if $(FUZZ_ENGINE),,$(FUZZ_DIR)/obj/replay.o)
FUZZ_CFLAGS_CLANG := -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
                     -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_PLUGIN_CPPFLAGS = $(PLUGIN_CPPFLAGS) -Iplugins -Itests/fuzz $(call pkg,--cflags libcurl jansson)
FUZZ_PLUGIN_LIBS     = $(call pkg,--libs libcurl jansson nettle) -lm
# The sanitizers' settings for a harness run (ignored by a build without them).
FUZZ_ENV     := LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
PHTTP_OBJS   := $(addprefix $(BUILD)/obj/plugins/,phttp.o phttp_task.o jsontext.o)

.PHONY: fuzz fuzz-build fuzz-replay fuzz-run
.SECONDARY: $(FUZZ_PLUGINS:%=$(BUILD)/obj/plugins/%.o) $(PHTTP_OBJS)

fuzz-build: $(FUZZ_BINS)

# The harnesses of the program see its headers (and include a .c of it
# where the parser is static); those of the plugins see what a plugin sees.
$(FUZZ_DIR)/obj/fuzz_%.o: tests/fuzz/fuzz_%.c | pkgcheck $(BUILD)/gen/paths.h
	$(call compile,$(CPPFLAGS_ALL) -Itests/fuzz)

$(FUZZ_DIR)/obj/fuzz_plugin.o $(FUZZ_DIR)/obj/fuzz_phttp_b64.o $(FUZZ_DIR)/obj/fake_curl.o: \
		$(FUZZ_DIR)/obj/%.o: tests/fuzz/%.c | pkgcheck
	$(call compile,$(FUZZ_PLUGIN_CPPFLAGS))

$(FUZZ_DIR)/obj/fuzz.o $(FUZZ_DIR)/obj/replay.o: $(FUZZ_DIR)/obj/%.o: tests/fuzz/%.c
	$(call compile,$(CSTD))

fuzz_link = @mkdir -p $(@D) && echo "  LD      $@" && \
            $(CC) $(CFLAGS) $(LDFLAGS) $(FUZZ_ENGINE) -o $@ $^ $(1)

$(FUZZ_LIB:%=$(FUZZ_DIR)/%): $(FUZZ_DIR)/%: $(FUZZ_DIR)/obj/fuzz_%.o $(FUZZ_DIR)/obj/fuzz.o \
		$(FUZZ_MAIN) $(BUILD)/libt2i.a
	$(call fuzz_link,$(LIBS))

$(FUZZ_PLUGINS:%=$(FUZZ_DIR)/plugin_%): $(FUZZ_DIR)/plugin_%: $(FUZZ_DIR)/obj/fuzz_plugin.o \
		$(BUILD)/obj/plugins/%.o $(PHTTP_OBJS) $(FUZZ_DIR)/obj/fake_curl.o \
		$(FUZZ_DIR)/obj/fuzz.o $(FUZZ_MAIN)
	$(call fuzz_link,$(FUZZ_PLUGIN_LIBS))

$(FUZZ_DIR)/phttp_b64: $(FUZZ_DIR)/obj/fuzz_phttp_b64.o $(PHTTP_OBJS) $(FUZZ_DIR)/obj/fake_curl.o \
		$(FUZZ_DIR)/obj/fuzz.o $(FUZZ_MAIN)
	$(call fuzz_link,$(FUZZ_PLUGIN_LIBS))

-include $(wildcard $(FUZZ_DIR)/obj/*.d)

# Every corpus file through its harness: part of `make test`.
fuzz-replay: $(FUZZ_BINS)
	@set -e; for h in $(FUZZERS); do \
	    TMPDIR=$(CURDIR)/$(BUILD) $(FUZZ_ENV) $(FUZZ_DIR)/$$h tests/fuzz/corpus/$$h; done

# Fuzzing proper.  New inputs go to build-fuzz/corpus/NAME (the tree's
# corpus is read, never written: add an input there by hand when it is
# worth keeping); crashes to build-fuzz/crashes/.
fuzz:
	$(INSTALL_DEPS)
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_CFLAGS_CLANG)" \
	    LDFLAGS="-fsanitize=address,undefined" FUZZ_ENGINE=-fsanitize=fuzzer fuzz-build
	@rm -rf build-fuzz/log && mkdir -p build-fuzz/log build-fuzz/crashes
	@$(MAKE) -k -j$(FUZZ_JOBS) --no-print-directory BUILD=build-fuzz \
	    $(FUZZERS:%=fuzz-run-%); rc=$$?; \
	 for h in $(FUZZERS); do $(PYTHON) tools/fuzz-stats build-fuzz/log/$$h.log; done; \
	 exit $$rc

fuzz-run-%:
	@mkdir -p build-fuzz/corpus/$*
	@echo "  FUZZ    $* ($(FUZZ_SECONDS) s)"
	@TMPDIR=$(CURDIR)/build-fuzz $(FUZZ_ENV) build-fuzz/fuzz/$* -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/$*- \
	    build-fuzz/corpus/$* tests/fuzz/corpus/$* >build-fuzz/log/$*.log 2>&1 || \
	    { echo "fuzz: $* FAILED, see build-fuzz/log/$*.log"; exit 1; }
