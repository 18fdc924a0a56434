#!/bin/bash
# t0010: the libFuzzer harnesses (tests/fuzz: the config loader, the SQL
# lexer and directives, the state file reader) build with clang and run for
# a short fixed time each (T0010_SECONDS, default 8) from the corpora in the
# tree, with AddressSanitizer and UndefinedBehaviorSanitizer: no crash, no
# leak of ours, no failed invariant. `make fuzz` runs them longer.
# shellcheck source=lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

SECONDS_EACH=${T0010_SECONDS:-8}

suite_setup() {
	command -v clang >/dev/null || { tl_log "clang is missing; tests/install-deps.sh installs it"; return 1; }
	make -s -C "$TL_ROOT" fuzzers >/dev/null 2>&1 || { tl_log "the fuzzers do not build"; return 1; }
}

# run_fuzzer NAME: runs tests/fuzz/fuzz_NAME on a copy of its corpus; FUZZ_OUT holds its report.
run_fuzzer() {
	local work artifacts
	work=$(tl_tmpdir)
	artifacts=$(tl_tmpdir)
	cp "$TL_ROOT/tests/fuzz/corpus/$1"/* "$work"/
	FUZZ_OUT=$(LSAN_OPTIONS=suppressions=$TL_ROOT/tests/fuzz/lsan.supp "$TL_ROOT/tests/fuzz/fuzz_$1" \
		-max_total_time="$SECONDS_EACH" -close_fd_mask=3 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$artifacts/" "$work" 2>&1)
	FUZZ_RC=$?
	FUZZ_EXECS=$(printf '%s\n' "$FUZZ_OUT" | awk '/^stat::number_of_executed_units/ { print $2 }')
	tl_log "fuzz_$1: ${FUZZ_EXECS:-?} inputs in $SECONDS_EACH s, exit $FUZZ_RC"
}

assert_clean() {
	assertEquals "fuzz_$1 found nothing: $(printf '%s\n' "$FUZZ_OUT" | grep -E 'ERROR|SUMMARY|==' | head -n 20)" 0 "$FUZZ_RC"
	assertTrue "fuzz_$1 ran ($FUZZ_EXECS inputs)" "[ ${FUZZ_EXECS:-0} -gt 100 ]"
}

test_01_config_loader() {
	run_fuzzer config
	assert_clean config
}

test_02_sql_lexer_and_directives() {
	run_fuzzer sqlsplit
	assert_clean sqlsplit
}

test_03_state_file_reader() {
	run_fuzzer state
	assert_clean state
}

tl_run
