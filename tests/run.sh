#!/bin/bash
# run.sh: runs the C unit tests and every shunit2 suite, then prints the
# totals as the last line: "N passed, N failed".
#
#   tests/run.sh                 every suite
#   tests/run.sh t1 t3001        only suites whose names start with these
#
# Environment: TL_SUITE_TIMEOUT (seconds per suite; default a suite's own
# "# suite-timeout: N" header line, else 900).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

passed=0
failed=0
failed_suites=()
results=$(mktemp)
suite_log=$(mktemp)
asserts=$(mktemp)
trap 'rm -f "$results" "$suite_log" "$asserts"' EXIT
export TL_RESULTS=$results

count_unit_tests() {
	local out line p f
	echo "== unit tests (tests/unit)"
	if ! out=$("${TL_UNIT:-./tests/unit/run-unit}" 2>&1); then
		true
	fi
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '^unit: [0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)
	if [ -z "$line" ]; then
		echo "unit tests did not report their counts: counted as 1 failure"
		failed=$((failed + 1))
		failed_suites+=("unit")
		return
	fi
	p=$(printf '%s' "$line" | awk '{print $2}')
	f=$(printf '%s' "$line" | awk '{print $4}')
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -eq 0 ] || failed_suites+=("unit ($f)")
}

suite_selected() {
	local name=$1 prefix
	[ "$#" -gt 0 ] || return 0
	shift
	[ "$#" -gt 0 ] || return 0
	for prefix in "$@"; do
		case "$name" in "$prefix"*) return 0 ;; esac
	done
	return 1
}

# suite_timeout SUITE: TL_SUITE_TIMEOUT, else the suite's own "# suite-timeout: N"
# (the end-to-end suites that provision a whole server), else 900 seconds.
suite_timeout() {
	local own
	own=$(sed -n 's/^# suite-timeout: \([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
	printf '%s\n' "${TL_SUITE_TIMEOUT:-${own:-900}}"
}

# suite_opted_in SUITE [PREFIX...]: false for a suite marked "# opt-in: VAR"
# (one not yet reliable within the per-suite timeout) unless VAR=1 or a
# prefix names it; such a suite is listed as not run, never counted.
suite_opted_in() {
	local suite=$1 var prefix
	shift
	var=$(sed -n 's/^# opt-in: \([A-Z_]*\)$/\1/p' "$suite" | head -n 1)
	[ -n "$var" ] || return 0
	[ "${!var:-0}" != 1 ] || return 0
	for prefix in "$@"; do	# named by its number at least, not by a broad prefix such as t6
		if [ "${#prefix}" -ge 5 ]; then
			case "$(basename "$suite")" in "$prefix"*) return 0 ;; esac
		fi
	done
	echo "== $(basename "$suite"): not run (opt-in: $var=1, or name it: tests/run.sh $(basename "$suite" .sh))"
	return 1
}

run_suite() {
	local suite=$1 name before after start rc
	name=$(basename "$suite")
	echo "== $name"
	before=$(wc -l <"$results")
	start=$(date +%s)
	set +e
	timeout --kill-after=30 "$(suite_timeout "$suite")" bash "$suite" </dev/null 2>&1 | tee "$suite_log"
	rc=${PIPESTATUS[0]}
	set -e
	grep -a 'ASSERT' "$suite_log" | sed "s/^/$name: /" >>"$asserts" || true
	after=$(wc -l <"$results")
	if [ "$after" -eq "$before" ]; then
		echo "$name ended (exit $rc) without reporting its counts: counted as 1 failure"
		failed=$((failed + 1))
		failed_suites+=("$name (no counts, exit $rc)")
	else
		read -r _ p f < <(tail -n 1 "$results")
		passed=$((passed + p))
		failed=$((failed + f))
		[ "$f" -eq 0 ] || failed_suites+=("$name ($f)")
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			echo "$name exited $rc after its tests passed: counted as 1 failure"
			failed=$((failed + 1))
			failed_suites+=("$name (exit $rc)")
		fi
	fi
	echo "-- $name: $(( $(date +%s) - start ))s"
}

selected=0
if suite_selected unit "$@"; then
	count_unit_tests
fi
for suite in tests/t[0-9][0-9][0-9][0-9]-*.sh; do
	if suite_selected "$(basename "$suite")" "$@"; then
		if ! suite_opted_in "$suite" "$@"; then
			continue
		fi
		selected=$((selected + 1))
		run_suite "$suite"
	fi
done

# The failing suites are named just above the totals, where a log's tail shows them.
if [ "${#failed_suites[@]}" -gt 0 ]; then
	echo "failing: ${failed_suites[*]}"
	tail -n 20 "$asserts"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
