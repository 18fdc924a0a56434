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
	local out rc flags
	make -s -C "$TL_ROOT" agent/sql_embed.c >/dev/null
	flags="-std=c11 -D_GNU_SOURCE $(pkg-config --cflags libpq libconfig libsystemd libmicrohttpd json-c)"
	flags+=' -DAGENT_VERSION="lint" -Iagent'
	# One clang-tidy per 4 files, as many at once as there are cores; xargs
	# exits 123 when any of them found something.
	# shellcheck disable=SC2016 # $CT_FLAGS is split by the sh that xargs starts
	out=$(cd "$TL_ROOT" && c_sources | grep '/agent/' | CT_FLAGS=$flags xargs -P "$(nproc)" -n 4 \
		sh -c 'clang-tidy --quiet "$@" -- $CT_FLAGS' clang-tidy 2>&1)
	rc=$?
	assertEquals "clang-tidy: $(printf '%s\n' "$out" | grep -v 'warnings generated' | tail -n 30)" 0 "$rc"
}

test_03_shellcheck_finds_nothing() {
	local out
	# Eight scripts per shellcheck, as many at once as there are cores; xargs
	# exits 123 when any of them found something.
	out=$(cd "$TL_ROOT" && shell_scripts | xargs -P "$(nproc)" -n 8 shellcheck -x 2>&1)
	assertEquals "shellcheck: $out" 0 $?
}

test_04_build_has_no_warnings() {
	local out
	# -B rebuilds from scratch; the Makefile compiles with -Wall -Wextra -Werror.
	out=$(make -s -B -C "$TL_ROOT" agent/checkpoint-agent 2>&1)
	assertEquals "make: $out" 0 $?
	assertEquals "compiler output" "" "$out"
}

# The error convention (agent.h): functions return 0 or a negative agent_err,
# and only the dispatcher (main.c, with cli.c's exit_code_for) names an exit
# code; nothing calls exit() but util.c's out-of-memory path.
exit_code_names_outside_dispatcher() {
	grep -nE '\bEXIT_[A-Z]+' "$TL_ROOT"/agent/*.c "$TL_ROOT"/agent/*.h |
		grep -vE '^[^:]*/agent/(main\.c|cli\.c|agent\.h):' || true
}

exit_calls() {
	grep -nE '(^|[^A-Za-z0-9_])(_?exit|_Exit|quick_exit)[[:space:]]*\(' "$TL_ROOT"/agent/*.c || true
}

test_05_only_the_dispatcher_names_exit_codes() {
	local found
	found=$(exit_code_names_outside_dispatcher)
	assertEquals "EXIT_* outside main.c and cli.c; return an AERR_* (agent.h) instead:
$found" "" "$found"
}

test_06_only_running_out_of_memory_calls_exit() {
	local found oom='^[^:]*/agent/util\.c:[0-9]+:[[:space:]]*exit\(70\);' others
	found=$(exit_calls)
	others=$(printf '%s\n' "$found" | grep -vE "$oom" || true)
	assertEquals "util.c's die_oom is the one exit(): $found" 1 "$(printf '%s\n' "$found" | grep -cE "$oom" || true)"
	assertEquals "exit() outside util.c's die_oom; return an AERR_* (agent.h) instead:
$others" "" "$others"
}

tl_run
