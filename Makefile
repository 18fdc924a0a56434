# checkpoint-agent and its test suite.
#
#   make                 build agent/checkpoint-agent
#   make test            install what is missing, build, run every suite
#   make test-ha         the opt-in three-node Patroni suite t6600 (timeout 1800 s)
#   make sanitize        build with ASan+UBSan and run the unit, migration and check suites with it
#   make valgrind        every command once under valgrind (the suite t0002)
#   make lint            cppcheck, clang-tidy, shellcheck and a warning-free build (the suite t0001)
#   make fuzz            the libFuzzer harnesses (config, SQL lexer, state file), FUZZ_SECONDS each
#   make install         binary, example config, units, man pages, bash completion:
#                        PREFIX=/usr/local (or /usr) SYSCONFDIR=/etc DESTDIR=
#   make clean
#
# Building needs (Debian 12): build-essential pkg-config libpq-dev libconfig-dev
# libsystemd-dev libjson-c-dev. A missing one is named before the compiler runs.

SHELL       := /bin/bash
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
# Units of a package go with the distribution's (/lib/systemd/system on Debian
# 12); a local install's with the administrator's (/etc/systemd/system).
UNITDIR     ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,/etc/systemd/system)
DESTDIR     ?=

CC          ?= cc
PKGS        := libpq libconfig libsystemd libmicrohttpd json-c
# The Debian package that brings each pkg-config module, for the message when one is missing.
PKG_DEBS    := libpq=libpq-dev libconfig=libconfig-dev libsystemd=libsystemd-dev libmicrohttpd=libmicrohttpd-dev json-c=libjson-c-dev
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION     := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN        := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wstrict-prototypes -Wmissing-prototypes
CFLAGS      ?= -O2 -g
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(PKG_CFLAGS) -DAGENT_VERSION='"$(VERSION)"' -Iagent $(CPPFLAGS)
ALL_CFLAGS  := $(BASE_CFLAGS) $(CFLAGS)
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=all
LDLIBS      := $(PKG_LIBS) -lpthread -lm

SRCS        := $(wildcard agent/*.c)
SRCS        := $(filter-out agent/sql_embed.c,$(SRCS)) agent/sql_embed.c
LIB_SRCS    := $(filter-out agent/main.c,$(SRCS))
SQL_FILES   := $(sort $(wildcard sql/*/*.sql)) sql/superseded.sha256
UNIT_SRCS   := $(wildcard tests/unit/*.c)

UNITS       := checkpoint-agent.service checkpoint-agent-migrate.service
MANPAGES    := man/checkpoint-agent.8 man/checkpoint-agent.conf.5

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZERS      := config sqlsplit state
FUZZ_BINS    := $(FUZZERS:%=tests/fuzz/fuzz_%)
FUZZ_CFLAGS  := $(BASE_CFLAGS) -Wno-format-nonliteral -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all

.PHONY: test-ha all test deps build-deps sanitize valgrind lint fuzz fuzzers install uninstall clean

all: agent/checkpoint-agent tests/unit/run-unit tests/tools/notify-listen

# Names the Debian package of every library pkg-config cannot find, before
# the compiler fails on a missing header. The first line of every build's
# recipe, so it runs only when something is built (make -q stays quiet).
define check_build_deps
command -v $(firstword $(CC)) >/dev/null 2>&1 || { \
	echo "make: the C compiler $(CC) is missing; install it: apt-get install build-essential" >&2; exit 1; }; \
command -v pkg-config >/dev/null 2>&1 || { \
	echo "make: pkg-config is missing; install it: apt-get install pkg-config" >&2; exit 1; }; \
missing=; for m in $(PKG_DEBS); do \
	pkg-config --exists "$${m%%=*}" || missing="$$missing $${m#*=}"; \
done; \
if [ -n "$$missing" ]; then \
	echo "make: missing build dependencies:$$missing; install them: apt-get install$$missing" >&2; \
	exit 1; \
fi
endef

build-deps:
	@$(check_build_deps)

agent/sql_embed.c: $(SQL_FILES) agent/gen-sql-embed.sh
	sh agent/gen-sql-embed.sh sql > $@.tmp && mv $@.tmp $@

agent/checkpoint-agent: $(SRCS) $(wildcard agent/*.h) VERSION
	@$(check_build_deps)
	$(CC) $(ALL_CFLAGS) -o $@ $(SRCS) $(LDFLAGS) $(LDLIBS)

tests/unit/run-unit: $(UNIT_SRCS) $(LIB_SRCS) $(wildcard agent/*.h) VERSION
	@$(check_build_deps)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $(UNIT_SRCS) $(LIB_SRCS) $(LDFLAGS) $(LDLIBS)

# The same, built with AddressSanitizer and UndefinedBehaviorSanitizer.
agent/checkpoint-agent-asan: $(SRCS) $(wildcard agent/*.h) VERSION
	@$(check_build_deps)
	$(CC) $(ASAN_CFLAGS) -o $@ $(SRCS) $(LDFLAGS) $(LDLIBS)

tests/unit/run-unit-asan: $(UNIT_SRCS) $(LIB_SRCS) $(wildcard agent/*.h) VERSION
	@$(check_build_deps)
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

# The suites marked opt-in (the three-node Patroni cluster), with a longer timeout.
test-ha: deps
	$(MAKE) all
	TL_HA=1 TL_SUITE_TIMEOUT=$${TL_SUITE_TIMEOUT:-1800} tests/run.sh t6600

sanitize: deps agent/checkpoint-agent-asan tests/unit/run-unit-asan
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		TL_AGENT=$(CURDIR)/agent/checkpoint-agent-asan TL_UNIT=$(CURDIR)/tests/unit/run-unit-asan \
		tests/run.sh unit t1 t3

valgrind: deps all
	tests/run.sh t0002

lint: agent/sql_embed.c
	tests/run.sh t0001

# A unit with this installation's paths: the files in systemd/ name
# /usr/local/bin and /etc/checkpoint-agent.
define install_unit
	sed -e 's|/usr/local/bin/checkpoint-agent|$(BINDIR)/checkpoint-agent|g' \
	    -e 's|/etc/checkpoint-agent/|$(SYSCONFDIR)/checkpoint-agent/|g' systemd/$(1) >$(DESTDIR)$(UNITDIR)/$(1).tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/$(1).tmp
	mv $(DESTDIR)$(UNITDIR)/$(1).tmp $(DESTDIR)$(UNITDIR)/$(1)

endef

install: agent/checkpoint-agent
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/checkpoint-agent $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(COMPLETIONDIR)
	install -m 0755 agent/checkpoint-agent $(DESTDIR)$(BINDIR)/checkpoint-agent
	install -m 0644 agent/agent.conf.example $(DESTDIR)$(SYSCONFDIR)/checkpoint-agent/agent.conf.example
	$(foreach u,$(UNITS),$(call install_unit,$(u)))
	install -m 0644 man/checkpoint-agent.8 $(DESTDIR)$(MANDIR)/man8/checkpoint-agent.8
	install -m 0644 man/checkpoint-agent.conf.5 $(DESTDIR)$(MANDIR)/man5/checkpoint-agent.conf.5
	install -m 0644 completion/checkpoint-agent.bash $(DESTDIR)$(COMPLETIONDIR)/checkpoint-agent

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/checkpoint-agent
	rm -f $(DESTDIR)$(SYSCONFDIR)/checkpoint-agent/agent.conf.example
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	rm -f $(DESTDIR)$(MANDIR)/man8/checkpoint-agent.8 $(DESTDIR)$(MANDIR)/man5/checkpoint-agent.conf.5
	rm -f $(DESTDIR)$(COMPLETIONDIR)/checkpoint-agent

clean:
	rm -f agent/checkpoint-agent agent/checkpoint-agent-asan agent/sql_embed.c agent/sql_embed.c.tmp \
		tests/unit/run-unit tests/unit/run-unit-asan $(FUZZ_BINS)
