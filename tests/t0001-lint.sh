#!/bin/bash
# t0001: the code is clean under the static checkers we hold it to.
# shellcheck source=lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

c_sources() {
	find "$TL_ROOT/agent" "$TL_ROOT/tests/unit" "$TL_ROOT/tests/tools" -name '*.c' \
		! -name sql_embed.c 2>/dev/null | sort
}

shell_scripts() {
	{
		find "$TL_ROOT" -path "$TL_ROOT/.git" -prune -o -name node_modules -prune -o \
			-type f -name '*.sh' -print
		printf '%s\n' "$TL_ROOT/.ci/run" "$TL_ROOT/completion/checkpoint-agent.bash" \
			"$TL_ROOT"/debian/*.postinst "$TL_ROOT"/debian/*.prerm
	} | sort
}

test_01_cppcheck_finds_nothing() {
	local out
	# shellcheck disable=SC2046 # one file name a word
	out=$(cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
		--std=c11 --inline-suppr --suppress=missingIncludeSystem -I"$TL_ROOT/agent" \
		$(c_sources) 2>&1)
	assertEquals "cppcheck: $out" 0 $?
}

test_02_clang_tidy_finds_nothing() {
	local out rc
	make -s -C "$TL_ROOT" agent/sql_embed.c >/dev/null
	# shellcheck disable=SC2046 # one file name a word
	out=$(cd "$TL_ROOT" && clang-tidy --quiet $(c_sources | grep '/agent/') -- -std=c11 -D_GNU_SOURCE \
		$(pkg-config --cflags libpq libconfig libsystemd libmicrohttpd json-c) -DAGENT_VERSION='"lint"' -Iagent 2>&1)
	rc=$?
	assertEquals "clang-tidy: $(printf '%s\n' "$out" | grep -v 'warnings generated' | tail -n 30)" 0 "$rc"
}

test_03_shellcheck_finds_nothing() {
	local out
	# shellcheck disable=SC2046 # one file name a word
	out=$(cd "$TL_ROOT" && shellcheck -x $(shell_scripts) 2>&1)
	assertEquals "shellcheck: $out" 0 $?
}

test_04_build_has_no_warnings() {
	local out
	# -B rebuilds from scratch; the Makefile compiles with -Wall -Wextra -Werror.
	out=$(make -s -B -C "$TL_ROOT" agent/checkpoint-agent 2>&1)
	assertEquals "make: $out" 0 $?
	assertEquals "compiler output" "" "$out"
}

tl_run
