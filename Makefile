# checkpoint-agent and its test suite.
#
#   make                 build agent/checkpoint-agent
#   make test            install what is missing, build, run every suite
#   make sanitize        build with ASan+UBSan and run the unit, migration and check suites with it
#   make valgrind        every command once under valgrind (the suite t0002)
#   make lint            cppcheck, clang-tidy, shellcheck and a warning-free build (the suite t0001)
#   make fuzz            the libFuzzer harnesses (config, SQL lexer, state file), FUZZ_SECONDS each
#   make install         PREFIX=/usr/local DESTDIR=
#   make clean

SHELL       := /bin/bash
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
UNITDIR     ?= /etc/systemd/system
DESTDIR     ?=

CC          ?= cc
PKGS        := libpq libconfig libsystemd json-c
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION     := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN        := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wstrict-prototypes -Wmissing-prototypes
CFLAGS      ?= -O2 -g
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(PKG_CFLAGS) -DAGENT_VERSION='"$(VERSION)"' -Iagent
ALL_CFLAGS  := $(BASE_CFLAGS) $(CFLAGS)
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=all
LDLIBS      := $(PKG_LIBS) -lpthread -lm

SRCS        := $(wildcard agent/*.c)
SRCS        := $(filter-out agent/sql_embed.c,$(SRCS)) agent/sql_embed.c
LIB_SRCS    := $(filter-out agent/main.c,$(SRCS))
SQL_FILES   := $(sort $(wildcard sql/*/*.sql)) sql/superseded.sha256
UNIT_SRCS   := $(wildcard tests/unit/*.c)

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZERS      := config sqlsplit state
FUZZ_BINS    := $(FUZZERS:%=tests/fuzz/fuzz_%)
FUZZ_CFLAGS  := $(BASE_CFLAGS) -Wno-format-nonliteral -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all

.PHONY: all test deps sanitize valgrind lint fuzz fuzzers install uninstall clean

all: agent/checkpoint-agent tests/unit/run-unit tests/tools/notify-listen

agent/sql_embed.c: $(SQL_FILES) agent/gen-sql-embed.sh
	sh agent/gen-sql-embed.sh sql > $@.tmp && mv $@.tmp $@

agent/checkpoint-agent: $(SRCS) $(wildcard agent/*.h) VERSION
	$(CC) $(ALL_CFLAGS) -o $@ $(SRCS) $(LDFLAGS) $(LDLIBS)

tests/unit/run-unit: $(UNIT_SRCS) $(LIB_SRCS) $(wildcard agent/*.h) VERSION
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $(UNIT_SRCS) $(LIB_SRCS) $(LDFLAGS) $(LDLIBS)

# The same, built with AddressSanitizer and UndefinedBehaviorSanitizer.
agent/checkpoint-agent-asan: $(SRCS) $(wildcard agent/*.h) VERSION
	$(CC) $(ASAN_CFLAGS) -o $@ $(SRCS) $(LDFLAGS) $(LDLIBS)

tests/unit/run-unit-asan: $(UNIT_SRCS) $(LIB_SRCS) $(wildcard agent/*.h) VERSION
	$(CC) $(ASAN_CFLAGS) -Itests/unit -o $@ $(UNIT_SRCS) $(LIB_SRCS) $(LDFLAGS) $(LDLIBS)

# The receiving end of sd_notify, for the service's protocol tests (t4001).
tests/tools/notify-listen: tests/tools/notify-listen.c
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -o $@ $<

# libFuzzer harnesses (clang): each links the agent's code without main.c.
tests/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRCS) $(wildcard agent/*.h) VERSION
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(LDFLAGS) $(LDLIBS)

fuzzers: $(FUZZ_BINS)

# Runs each harness for FUZZ_SECONDS on a copy of its corpus (the tree's stays small);
# a crash leaves its input in tests/fuzz/crash-*.
fuzz: fuzzers
	@for f in $(FUZZERS); do \
		work=$$(mktemp -d) && cp tests/fuzz/corpus/$$f/* "$$work"/ && \
		echo "== fuzz_$$f, $(FUZZ_SECONDS) s" && \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp tests/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -close_fd_mask=3 -max_len=65536 \
			-artifact_prefix=tests/fuzz/crash-$$f- -print_final_stats=1 "$$work" 2>&1 | \
			grep -E '^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|Done)' ; \
		rc=$${PIPESTATUS[0]}; rm -rf "$$work"; [ "$$rc" -eq 0 ] || exit "$$rc"; \
	done

deps:
	tests/install-deps.sh

test: deps
	$(MAKE) all
	tests/run.sh $(SUITES)

sanitize: deps agent/checkpoint-agent-asan tests/unit/run-unit-asan
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		TL_AGENT=$(CURDIR)/agent/checkpoint-agent-asan TL_UNIT=$(CURDIR)/tests/unit/run-unit-asan \
		tests/run.sh unit t1 t3

valgrind: deps all
	tests/run.sh t0002

lint: agent/sql_embed.c
	tests/run.sh t0001

install: agent/checkpoint-agent
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/checkpoint-agent
	install -m 0755 agent/checkpoint-agent $(DESTDIR)$(BINDIR)/checkpoint-agent
	install -m 0644 agent/agent.conf.example $(DESTDIR)$(SYSCONFDIR)/checkpoint-agent/agent.conf.example

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/checkpoint-agent
	rm -f $(DESTDIR)$(SYSCONFDIR)/checkpoint-agent/agent.conf.example

clean:
	rm -f agent/checkpoint-agent agent/checkpoint-agent-asan agent/sql_embed.c agent/sql_embed.c.tmp \
		tests/unit/run-unit tests/unit/run-unit-asan $(FUZZ_BINS)
