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

PKGS := libevent libevent_pthreads libpq hiredis libprotobuf-c jansson inih libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WERROR ?= 1
WARN := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wwrite-strings -Wno-missing-field-initializers \
        -Wshadow -Wvla $(if $(filter 1,$(WERROR)),-Werror)
CFLAGS ?= $(OPT)
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP \
              -Idaemon -Iclients/lib -Itests/lib -I$(BUILD)/proto $(PKG_CFLAGS)
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

DAEMON_SRC := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
CLIENTLIB_SRC := $(wildcard clients/lib/*.c)
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(DAEMON_SRC) $(CLIENTLIB_SRC)) \
           $(patsubst $(BUILD)/proto/%.c,$(BUILD)/obj/proto/%.o,$(PROTO_C))
LIB := $(BUILD)/libcareline.a

# every clients/NAME.c and tools/NAME.c is one program bin/NAME
PROG_SRC := $(wildcard clients/*.c tools/*.c)
PROGS := $(BIN)/dispatchd $(patsubst %.c,$(BIN)/%,$(notdir $(PROG_SRC)))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(ITEST_SRC))
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRC))

.PHONY: all build run stop test check itest bench format format-check lint clean deps distclean
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

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/dispatchd: $(BUILD)/obj/daemon/main.o $(LIB)
	@mkdir -p $(BIN)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/%: $(BUILD)/obj/clients/%.o $(LIB)
	@mkdir -p $(BIN)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/%: $(BUILD)/obj/tools/%.o $(LIB)
	@mkdir -p $(BIN)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(TESTLIB_OBJ) $(LIB)
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
	$(Q)$(MAKE) --no-print-directory SAN=1 build
	$(Q)tests/run.sh --bin $(abspath build/san/bin) --tests $(abspath build/san/tests) all

check:
	$(Q)$(MAKE) --no-print-directory SAN=1 build
	$(Q)tests/run.sh --bin $(abspath build/san/bin) --tests $(abspath build/san/tests) unit

itest:
	$(Q)$(MAKE) --no-print-directory SAN=1 build
	$(Q)tests/run.sh --bin $(abspath build/san/bin) --tests $(abspath build/san/tests) integration

bench: deps
	$(Q)$(MAKE) --no-print-directory build
	$(Q)tests/bench/run.sh --bin $(abspath build/rel/bin)

# ---- hygiene -----------------------------------------------------------------------------
C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	$(Q)clang-format -i $(C_FILES)

format-check:
	$(Q)clang-format --dry-run --Werror $(C_FILES)

lint: $(PROTO_H)
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --suppress=missingIncludeSystem --inline-suppr -Idaemon -Iclients/lib -Itests/lib -I$(BUILD)/proto \
	    daemon clients tools tests

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
