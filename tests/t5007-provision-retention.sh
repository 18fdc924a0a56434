#!/bin/bash
# t5007-provision-retention: `provision.sh --retention DURATION` (and
# --retention-strategy, CPA_RETENTION_SWEEP_*): the defaults are off, bad
# values exit 64 with the reason, and the agent step writes the retention
# group into agent.conf, which the agent reads: with a TTL, `prune` takes
# it as its --older-than; without, it asks for one. Nothing on the machine
# changes: --show-config and the agent step's --dry-run only print.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

P=$TL_ROOT/provision

suite_setup() {
	WORK=$(tl_tmpdir) || return 1
}

# show_config ARGS...: the effective settings, with the environment cleared of CPA_*.
show_config() {
	# shellcheck disable=SC2046 # one -u NAME pair per variable
	env $(env | sed -n 's/^\(CPA_[A-Z0-9_]*\)=.*/-u \1/p') "$P/provision.sh" --show-config "$@"
}

config_value() {
	sed -n "s/^$1=//p"
}

# rendered_config ARGS...: agent.conf as the agent step would write it, from its --dry-run diff.
rendered_config() {
	local dir
	dir=$(mktemp -d "$WORK/conf.XXXXXX")
	: >"$dir/agent.conf"
	bash "$P/steps/60-agent.sh" --dry-run --config-dir "$dir" "$@" 2>&1 |
		sed -n '/agent config .* would change:/,/^\[agent\]/p' | sed -n 's/^      +//p'
}

test_01_retention_is_off_by_default_and_set_by_option_or_environment() {
	local out
	out=$(show_config)
	assertEquals "off by default" "" "$(config_value CPA_RETENTION <<<"$out")"
	assertEquals delete "$(config_value CPA_RETENTION_STRATEGY <<<"$out")"
	out=$(show_config --retention 30d --retention-strategy keep-latest)
	assertEquals 30d "$(config_value CPA_RETENTION <<<"$out")"
	assertEquals "the platform's spelling" keep_latest "$(config_value CPA_RETENTION_STRATEGY <<<"$out")"
	out=$(CPA_RETENTION=12h CPA_RETENTION_SWEEP_INTERVAL=15m "$P/provision.sh" --show-config)
	assertEquals 12h "$(config_value CPA_RETENTION <<<"$out")"
	assertEquals 15m "$(config_value CPA_RETENTION_SWEEP_INTERVAL <<<"$out")"
}

test_02_bad_values_exit_64_with_the_reason() {
	local args rc err
	for args in "--retention 30" "--retention -1d" "--retention 1.5d" "--retention 30y" \
		"--retention-strategy archive" "--retention"; do
		rc=0
		# shellcheck disable=SC2086 # the words are separate arguments
		err=$("$P/provision.sh" --show-config $args 2>&1 >/dev/null) || rc=$?
		assertEquals "exit for: $args" 64 "$rc"
		assertContains "reason for: $args" "$err" "retention"
	done
	rc=0
	err=$(CPA_RETENTION_SWEEP_LIMIT=0 "$P/provision.sh" --show-config 2>&1 >/dev/null) || rc=$?
	assertEquals "a sweep limit of 0" 64 "$rc"
	rc=0
	err=$(CPA_RETENTION_SWEEP_INTERVAL=5 "$P/provision.sh" --show-config 2>&1 >/dev/null) || rc=$?
	assertEquals "a sweep interval without a unit: $err" 64 "$rc"
}

test_03_the_agent_step_writes_the_retention_group() {
	local conf
	conf=$(rendered_config --retention 30d --retention-strategy keep_latest)
	assertContains "$conf" 'strategy = "keep_latest";'
	assertContains "$conf" 'ttl = "30d";'
	assertContains "$conf" 'sweep_interval = "1h";'
	assertContains "$conf" 'sweep_limit = 1000;'
	conf=$(rendered_config)
	assertContains "off by default" "$conf" 'ttl = "";'
}

# agent_on CONF: prune --dry-run with CONF (password file and database swapped for test ones).
agent_on() {
	printf '%s\n' "$1" | sed "s|password_file = .*|password_file = \"$WORK/pw\";|" >"$WORK/agent.conf"
	printf 'x\n' >"$WORK/pw"
	chmod 0600 "$WORK/pw"
	CHECKPOINT_DB_URI=postgresql://nobody@127.0.0.1:1/none tl_agent -c "$WORK/agent.conf" prune --dry-run
}

test_04_the_agent_reads_what_the_step_writes() {
	agent_on "$(rendered_config --retention 30d)"
	assertEquals "the config parses and the TTL is prune's --older-than (then the database is unreachable): $TL_ERR" \
		69 "$TL_RC"
	agent_on "$(rendered_config)"
	assertEquals "without a TTL prune asks for --older-than: $TL_ERR" 64 "$TL_RC"
	assertContains "$TL_ERR" "retention.ttl"
}

tl_run
