# checkpoint-agent and its test suite.
#
#   make                 build agent/checkpoint-agent
#   make test            install what is missing, build, run every suite
#   make sanitize        build with ASan+UBSan and run the unit, migration and check suites with it
#   make valgrind        every command once under valgrind (the suite t0002)
#   make lint            cppcheck, clang-tidy, shellcheck and a warning-free build (the suite t0001)
#   make install         PREFIX=/usr/local DESTDIR=
#   make clean

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
UNITDIR     ?= /etc/systemd/system
DESTDIR     ?=

CC          ?= cc
PKGS        := libpq libconfig libsystemd libmicrohttpd
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
SQL_FILES   := $(sort $(wildcard sql/*/*.sql))
UNIT_SRCS   := $(wildcard tests/unit/*.c)

.PHONY: all test deps sanitize valgrind lint install uninstall clean

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
		tests/unit/run-unit tests/unit/run-unit-asan
