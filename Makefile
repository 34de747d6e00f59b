# Careline — one flat Makefile (see README.md).
#   make            build bin/dispatchd, the clients and tools
#   make run        install what is missing, start the local stack with Yuyao data, run dispatchd
#   make stop       stop the local PostgreSQL and Redis of `make run`
#   make test       sanitizer build, unit tests, then integration tests on real servers
#   make check      unit tests only (sanitizer build)      make itest   integration only
#   make bench      benchmarks            make format / format-check / lint
# Build dir and flavour: BUILD=build (default) or build/san when SAN=1 (ASan + UBSan).
SHELL := /bin/bash
.SUFFIXES:
.DELETE_ON_ERROR:
.SECONDARY:
.DEFAULT_GOAL := all

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT ?= -O1 -g
else
BUILD ?= build/rel
SANFLAGS :=
OPT ?= -O2 -g
endif
BIN := $(BUILD)/bin

# Test hooks (the kill -9 fault_point, its config keys) exist only in the sanitizer/test
# build; the release build (build/rel: make run, make bench, installs) never has them.
# tests/run.sh --rel-bin checks the release dispatchd for them (make test, make check).
ifeq ($(SAN),1)
TEST_DEFS := -DCARELINE_TESTING
else
TEST_DEFS :=
endif

PKGS := libevent libevent_pthreads libpq hiredis libprotobuf-c jansson inih libcrypto
# TLS (issue 12): libevent's OpenSSL bufferevents and libssl
PKGS += libevent_openssl libssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WERROR ?= 1
WARN := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wwrite-strings -Wno-missing-field-initializers \
        -Wshadow -Wvla $(if $(filter 1,$(WERROR)),-Werror)
CFLAGS ?= $(OPT)
# Include paths say the layer: "common/frame.h" (shared by the daemon, clients and tools),
# "net/conn.h" (a daemon layer). Clients get no -Idaemon: they may include only common/.
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(TEST_DEFS) $(WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP \
               -I. -I$(BUILD)/proto $(PKG_CFLAGS)
ALL_CFLAGS := $(BASE_CFLAGS) -Idaemon -Iclients/lib -Itools/lib -Itests/lib
CLIENT_CFLAGS := $(BASE_CFLAGS) -Iclients/lib
LDLIBS := $(PKG_LIBS) -lm -lpthread
ALL_LDFLAGS := $(SANFLAGS) $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

PROTO_SRC := $(wildcard proto/*.proto)
PROTO_C := $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTO_SRC))
PROTO_H := $(PROTO_C:.c=.h)

# Three libraries, one per audience: common (codec, config loader, util, log, generated
# protobuf) for everyone; the daemon's layers for dispatchd, tools and tests; the client
# library for clients/. Lua scripts in daemon/store/lua/ are embedded as C strings.
COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC)) \
              $(patsubst $(BUILD)/proto/%.c,$(BUILD)/obj/proto/%.o,$(PROTO_C))
COMMON_LIB := $(BUILD)/libcommon.a
LUA_SRC := $(wildcard daemon/store/lua/*.lua)
LUA_C := $(patsubst daemon/store/lua/%.lua,$(BUILD)/gen/lua_%.c,$(LUA_SRC))
DAEMON_SRC := $(filter-out daemon/server/main.c,$(wildcard daemon/*/*.c))
DAEMON_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(DAEMON_SRC)) \
              $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(LUA_C))
DAEMON_LIB := $(BUILD)/libdaemon.a
CLIENTLIB_SRC := $(wildcard clients/lib/*.c)
CLIENT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLIENTLIB_SRC))
CLIENT_LIB := $(BUILD)/libclient.a
# careline-gen's modules (tools/lib/gen_*.c), for the tools and test_gen
TOOLLIB_SRC := $(wildcard tools/lib/*.c)
TOOL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TOOLLIB_SRC))
TOOL_LIB := $(BUILD)/libtools.a

# every clients/NAME.c and tools/NAME.c is one program bin/NAME
CLIENT_PROGS := $(patsubst clients/%.c,$(BIN)/%,$(wildcard clients/*.c))
TOOL_PROGS := $(patsubst tools/%.c,$(BIN)/%,$(wildcard tools/*.c))
PROGS := $(BIN)/dispatchd $(CLIENT_PROGS) $(TOOL_PROGS)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(ITEST_SRC))
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRC))

# Every object is rebuilt when the build's defines or flags change (a build dir made before
# CARELINE_TESTING existed must not keep or lack the test hooks).
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW := $(TEST_DEFS) $(OPT) $(SANFLAGS)
$(shell mkdir -p $(BUILD) && { [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" = "$(FLAGS_NOW)" ] || \
        echo "$(FLAGS_NOW)" > $(FLAGS_STAMP); })
$(DAEMON_OBJ) $(COMMON_OBJ) $(CLIENT_OBJ) $(TOOL_OBJ) $(TESTLIB_OBJ) \
    $(patsubst %.c,$(BUILD)/obj/%.o,daemon/server/main.c $(UNIT_SRC) $(ITEST_SRC) \
    $(wildcard clients/*.c tools/*.c)): $(FLAGS_STAMP)

.PHONY: all build run stop test check itest bench format format-check lint layers clean deps distclean
all: build
	$(Q)mkdir -p bin && for p in $(PROGS); do ln -sfn ../$$p bin/$$(basename $$p); done

build: $(PROGS) $(UNIT_BIN) $(ITEST_BIN)

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/proto
	@echo "  PROTOC  $<"
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

$(BUILD)/obj/proto/%.o: $(BUILD)/proto/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(filter-out -Wshadow,$(ALL_CFLAGS)) -c -o $@ $<

$(BUILD)/gen/lua_%.c: daemon/store/lua/%.lua tools/embed.sh
	@mkdir -p $(dir $@)
	@echo "  EMBED   $<"
	$(Q)tools/embed.sh lua_$* $< > $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/clients/%.o: clients/%.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CLIENT_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(COMMON_LIB): $(COMMON_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(DAEMON_LIB): $(DAEMON_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(CLIENT_LIB): $(CLIENT_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(TOOL_LIB): $(TOOL_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/dispatchd: $(BUILD)/obj/daemon/server/main.o $(DAEMON_LIB) $(COMMON_LIB)
	@mkdir -p $(BIN)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(CLIENT_PROGS): $(BIN)/%: $(BUILD)/obj/clients/%.o $(CLIENT_LIB) $(COMMON_LIB)
	@mkdir -p $(BIN)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(TOOL_PROGS): $(BIN)/%: $(BUILD)/obj/tools/%.o $(TOOL_LIB) $(DAEMON_LIB) $(COMMON_LIB)
	@mkdir -p $(BIN)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

TEST_LIBS := $(TESTLIB_OBJ) $(TOOL_LIB) $(DAEMON_LIB) $(CLIENT_LIB) $(COMMON_LIB)
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(TEST_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(TEST_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- developer stack ---------------------------------------------------------------------
deps:
	$(Q)deploy/install-deps.sh

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)deploy/run-dev.sh

stop:
	$(Q)deploy/stack.sh stop var

# ---- tests -------------------------------------------------------------------------------
test: deps
	$(Q)tools/check-layers.sh
	$(Q)$(MAKE) --no-print-directory SAN=1 build
	$(Q)$(MAKE) --no-print-directory build/rel/bin/dispatchd
	$(Q)tests/run.sh --bin $(abspath build/san/bin) --tests $(abspath build/san/tests) \
	    --rel-bin $(abspath build/rel/bin) all

check:
	$(Q)$(MAKE) --no-print-directory SAN=1 build
	$(Q)$(MAKE) --no-print-directory build/rel/bin/dispatchd
	$(Q)tests/run.sh --bin $(abspath build/san/bin) --tests $(abspath build/san/tests) \
	    --rel-bin $(abspath build/rel/bin) unit

itest:
	$(Q)$(MAKE) --no-print-directory SAN=1 build
	$(Q)tests/run.sh --bin $(abspath build/san/bin) --tests $(abspath build/san/tests) integration

bench: deps
	$(Q)$(MAKE) --no-print-directory build
	$(Q)tests/bench/run.sh --bin $(abspath build/rel/bin)

# ---- fuzzing (libFuzzer from Debian's clang; README "Fuzzing") -------------------------
#   make fuzz        every harness for FUZZ_RUNS executions (at most FUZZ_SECONDS each)
#   make fuzz-smoke  the short pass CI runs (FUZZ_SMOKE_RUNS each)
# The objects are built again with clang into build/fuzz (coverage + ASan + UBSan); any
# crash, leak, UBSan report or broken invariant fails, leaving its input in
# build/fuzz/artifacts/. FUZZ=name runs one harness.
FUZZ_CC ?= clang
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 1800
FUZZ_SMOKE_RUNS ?= 20000
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_ALL := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_env.c,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ ?= $(FUZZ_ALL)
FUZZ_RUN := tests/fuzz/run.sh --bin build/fuzz/fuzz --corpus tests/fuzz/corpus --work build/fuzz
.PHONY: fuzz fuzz-smoke fuzz-build fuzz-bins fuzz-seeds
fuzz: fuzz-build
	$(Q)$(FUZZ_RUN) --runs $(FUZZ_RUNS) --seconds $(FUZZ_SECONDS) $(FUZZ)

fuzz-smoke: fuzz-build
	$(Q)$(FUZZ_RUN) --runs $(FUZZ_SMOKE_RUNS) --seconds 60 $(FUZZ)

fuzz-build:
	$(Q)$(MAKE) --no-print-directory BUILD=build/fuzz CC=$(FUZZ_CC) OPT='-O1 -g' \
	    SANFLAGS='$(FUZZ_SAN) -fsanitize=fuzzer-no-link' fuzz-bins

# the seed generator (ordinary flags); make fuzz-seeds rewrites tests/fuzz/corpus/*/seed-*
fuzz-seeds:
	$(Q)$(MAKE) --no-print-directory $(BUILD)/fuzz/gen_seeds
	$(Q)$(BUILD)/fuzz/gen_seeds tests/fuzz/corpus

FUZZ_LIBS := $(BUILD)/obj/tests/fuzz/fuzz_env.o $(DAEMON_LIB) $(CLIENT_LIB) $(COMMON_LIB)
fuzz-bins: $(FUZZ_ALL:%=$(BUILD)/fuzz/fuzz_%)
$(BUILD)/fuzz/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz/gen_seeds: $(BUILD)/obj/tests/fuzz/gen_seeds.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- hygiene -----------------------------------------------------------------------------
C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	$(Q)clang-format -i $(C_FILES)

format-check:
	$(Q)clang-format --dry-run --Werror $(C_FILES)

layers:
	$(Q)tools/check-layers.sh && echo "layers: every include goes down"

lint: $(PROTO_H)
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --suppress=missingIncludeSystem --inline-suppr -I. -Idaemon -Iclients/lib -Itools/lib -Itests/lib -I$(BUILD)/proto \
	    common daemon clients tools tests

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
