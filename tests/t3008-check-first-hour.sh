#!/bin/bash
# t3008-check-first-hour: `check` as a new user meets it, and as monitoring
# systems read it.
#   - the README's local quick start: an ordinary operating-system user, an
#     ordinary role, no config file, CHECKPOINT_DB_URI: check is not UNKNOWN;
#     disk says it does not apply (SKIPPED), the state file falls back to
#     ~/.local/state and the size check says where; nothing on stderr;
#   - a missing state folder is created; a configured state file that cannot
#     be kept makes size UNKNOWN, said once in its line and not on stderr;
#   - the text output is a Nagios plugin's: "STATUS - summary | perfdata",
#     every perfdata item well formed, thresholds where a check has them;
#   - --only and --skip choose checks; -w and -c set one check's thresholds;
#     after check, -c is that threshold and the config is --config=FILE;
#   - Prometheus: build_info, one series per state, a duration per check.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

# The ordinary user of the quick start: nobody, with a home of its own.
USER_NAME=nobody

suite_setup() {
	tl_pg_start || return 1
	WORK=$(tl_tmpdir) || return 1
	USER_HOME=$WORK/home
	mkdir -p "$USER_HOME" || return 1
	install -m 0600 "$TL_PGPASSFILE" "$USER_HOME/.pgpass" || return 1
	chown -R "$USER_NAME" "$USER_HOME" || return 1
	CONF=$WORK/agent.conf
	cat >"$CONF" <<-EOF
		database: { uri = "$TL_DB_URI"; password_file = "$TL_PASSWORD_FILE"; };
		service: { state_file = "$WORK/state"; data_directory = "$TL_PGDATA"; };
	EOF
	as_user migrate
	[ "$TL_RC" = 0 ] || { tl_log "migrate as $USER_NAME failed: $TL_ERR"; return 1; }
}

# as_user ARGS...: the agent as the ordinary user, in its home, with the
# quick start's environment only: no config file, CHECKPOINT_DB_URI.
as_user() {
	local out err
	out=$(mktemp) err=$(mktemp)
	chmod 0666 "$out" "$err"
	(cd "$USER_HOME" && runuser -u "$USER_NAME" -- env -i PATH=/usr/bin:/bin HOME="$USER_HOME" \
		CHECKPOINT_DB_URI="$TL_DB_URI" "$TL_AGENT" "$@" >"$out" 2>"$err")
	TL_RC=$?
	TL_OUT=$(cat "$out")
	TL_ERR=$(cat "$err")
	rm -f "$out" "$err"
}

status_of() {
	printf '%s\n' "$TL_OUT" | awk -v name="$1:" '$2 == name { print $1 }'
}

# perfdata: the items after '|' on the first line, one per line.
perfdata() {
	printf '%s\n' "$TL_OUT" | head -n 1 | sed 's/^[^|]*| //' | tr ' ' '\n'
}

test_01_quick_start_check_is_not_unknown() {
	[ ! -e /etc/checkpoint-agent/agent.conf ] || {
		fail "/etc/checkpoint-agent/agent.conf exists on this machine; the quick start assumes none"
		return
	}
	as_user check
	assertEquals "exit code; out: $TL_OUT; err: $TL_ERR" 0 "$TL_RC"
	assertEquals "disk does not apply for this role" SKIPPED "$(status_of disk)"
	assertContains "and says why" "$TL_OUT" "SKIPPED  disk: the data directory is unknown"
	assertContains "the summary counts it" "$(printf '%s\n' "$TL_OUT" | head -n 1)" "14 checks OK, 1 skipped (disk)"
	assertContains "size says where the state went" "$TL_OUT" \
		"state kept in $USER_HOME/.local/state/checkpoint-agent/state, since"
	assertTrue "the state file is there" "[ -s '$USER_HOME/.local/state/checkpoint-agent/state' ]"
	assertEquals "nothing on stderr" "" "$TL_ERR"
}

# The first run's samples, made ten minutes older, are the base of the
# second run's growth per hour: the fallback state is read back.
test_02_the_fallback_state_carries_the_growth() {
	local state=$USER_HOME/.local/state/checkpoint-agent/state aged
	aged=$(awk -F'\t' 'BEGIN { OFS = "\t" } /^[0-9]/ { $2 -= 600 } { print }' "$state") || return
	printf '%s\n' "$aged" >"$state"
	as_user check
	assertEquals "exit code: $TL_ERR" 0 "$TL_RC"
	assertTrue "growth per hour over the aged window: $TL_OUT" \
		"printf '%s\n' \"\$TL_OUT\" | grep -Eq '^OK +size: public.checkpoints [0-9.]+ KiB \(\+[0-9.]+ [KMG]?i?B/h over 6[0-9][0-9] s\)'"
}

test_03_a_missing_state_folder_is_created() {
	local conf=$WORK/newdir.conf
	sed "s|state_file = \"$WORK/state\"|state_file = \"$WORK/new/sub/state\"|" "$CONF" >"$conf"
	tl_agent -c "$conf" check
	assertEquals "exit code; out: $TL_OUT; err: $TL_ERR" 0 "$TL_RC"
	assertTrue "the folders and the file were made" "[ -s '$WORK/new/sub/state' ]"
}

test_04_a_configured_state_file_that_cannot_be_kept_is_unknown_once() {
	local conf=$WORK/locked.conf line
	mkdir -p "$WORK/locked"
	chmod 0700 "$WORK/locked"
	cat >"$conf" <<-EOF
		database: { uri = "$TL_DB_URI"; };
		service: { state_file = "$WORK/locked/state"; };
	EOF
	chmod 0644 "$conf"
	as_user -c "$conf" check
	assertEquals "UNKNOWN; out: $TL_OUT" 3 "$TL_RC"
	assertEquals "size" UNKNOWN "$(status_of size)"
	line=$(printf '%s\n' "$TL_OUT" | grep '^UNKNOWN  size:')
	assertContains "its line says what and how to fix it" "$line" \
		"service.state_file $WORK/locked/state cannot be kept: this user may not write to $WORK/locked"
	assertEquals "said once among the checks" 1 "$(printf '%s\n' "$TL_OUT" | sed 1d | grep -c 'cannot be kept')"
	assertEquals "not on stderr" "" "$TL_ERR"
}

test_05_text_is_a_nagios_plugins_output() {
	local first bad
	tl_agent -c "$CONF" check
	assertEquals "exit code: $TL_OUT" 0 "$TL_RC"
	first=$(printf '%s\n' "$TL_OUT" | head -n 1)
	assertTrue "first line: STATUS - summary | perfdata: $first" \
		"printf '%s\n' \"\$first\" | grep -Eq '^OK - 15 checks OK \| [^|]+$'"
	bad=$(perfdata | grep -Ev "^('[^'=]+'|[^' =]+)=-?[0-9.]+(e[-+]?[0-9]+)?(s|B|c)?(;[-0-9.e+]*:?){0,4}$")
	assertEquals "malformed perfdata items" "" "$bad"
	assertTrue "connect time in seconds with its thresholds: $(perfdata | grep connect_seconds)" \
		"perfdata | grep -Eq '^connect_seconds=[0-9.e-]+s;1;4$'"
	assertTrue "free space with its lower bounds and range: $(perfdata | grep disk_free_ratio)" \
		"perfdata | grep -Eq '^disk_free_ratio=[0-9.]+;0.2:;0.1:;0;1$'"
	assertTrue "a labelled sample" "perfdata | grep -Eq '^table_size_bytes\[public.checkpoints\]=[0-9]+B$'"
	assertEquals "no '|' after the first line" "" "$(printf '%s\n' "$TL_OUT" | sed 1d | grep -F '|')"
}

test_06_only_and_skip_choose_checks() {
	tl_agent -c "$CONF" check --only wraparound,query
	assertEquals "exit code: $TL_ERR" 0 "$TL_RC"
	assertEquals "two checks" "query wraparound" "$(printf '%s\n' "$TL_OUT" | sed 1d | awk '{print $2}' | tr -d : | sort | paste -sd ' ')"
	tl_agent -c "$CONF" check --skip disk,size --skip schema
	assertEquals "exit code: $TL_ERR" 0 "$TL_RC"
	assertEquals "twelve checks" 12 "$(printf '%s\n' "$TL_OUT" | sed 1d | wc -l)"
	assertEquals "without the skipped ones" "" "$(status_of disk)$(status_of size)$(status_of schema)"
	tl_agent -c "$CONF" check --only dsk
	assertEquals "an unknown check is a usage error, UNKNOWN as for every plugin" 3 "$TL_RC"
	assertContains "that lists the checks" "$TL_ERR" "no check is named 'dsk'; the checks are connect, query, writable"
}

test_07_w_and_c_set_the_thresholds_of_one_check() {
	tl_agent -c "$CONF" check --only wraparound -w 1 -c 2000000000
	assertEquals "WARNING: $TL_OUT" 1 "$TL_RC"
	assertEquals "summary" "WARNING - wraparound:" "$(printf '%s\n' "$TL_OUT" | head -n 1 | cut -d' ' -f1-3)"
	assertTrue "the thresholds in the perfdata: $(perfdata)" "perfdata | grep -Eq '^xid_age=[0-9]+;1;2000000000$'"
	tl_agent -c "$CONF" check --only disk --warning 100 --critical 100
	assertEquals "CRITICAL: $TL_OUT" 2 "$TL_RC"
	tl_agent -c "$CONF" check --only disk -w 5 -c 10
	assertEquals "for free space -w must be above -c" 3 "$TL_RC"
	tl_agent -c "$CONF" check -w 5
	assertEquals "-w without --only" 3 "$TL_RC"
	tl_agent -c "$CONF" check --only schema -c 1
	assertEquals "schema has no thresholds" 3 "$TL_RC"
	tl_agent -c "$CONF" check --only size -w many
	assertEquals "not a number" 3 "$TL_RC"
	assertContains "$TL_ERR" "-w needs a whole number, not 'many'"
}

# After `check`, -c is the critical threshold (check_postgres, every Nagios
# plugin); the config file is --config=FILE there, or -c FILE before check.
test_09_after_check_c_is_critical_and_the_config_is_long() {
	tl_agent check --only wraparound --config="$CONF" -w 1 -c 2000000000
	assertEquals "--config after check, -c the threshold: $TL_ERR" 1 "$TL_RC"
	assertTrue "the thresholds: $(perfdata)" "perfdata | grep -Eq '^xid_age=[0-9]+;1;2000000000$'"
	tl_agent check --config "$CONF" --only query
	assertEquals "--config FILE after check: $TL_ERR" 0 "$TL_RC"
	tl_agent check -c "$CONF"
	assertEquals "-c FILE after check is a (bad) threshold, UNKNOWN" 3 "$TL_RC"
	assertContains "it says how to give the config file" "$TL_ERR" \
		"after \`check\`, -c is the CRITICAL threshold: give the config file as --config=FILE"
	tl_agent check --only query -c "$CONF"
	assertEquals "with --only, -c FILE is not a number" 3 "$TL_RC"
	assertContains "the same hint" "$TL_ERR" "give the config file as --config=FILE, or as -c FILE before the command"
	tl_agent check --help
	assertContains "check --help says it" "$TL_OUT" "--config=FILE, or -c FILE before the command"
}

test_08_prometheus_has_build_info_states_and_durations() {
	local version summary
	version=$(cat "$TL_ROOT/VERSION")
	tl_agent -c "$CONF" check --format prometheus
	assertEquals "exit code: $TL_ERR" 0 "$TL_RC"
	assertContains "build_info" "$TL_OUT" "checkpoint_agent_build_info{version=\"$version\"} 1"
	summary=$(printf '%s\n' "$TL_OUT" | python3 -c '
import re, sys
states, ones, durations = {}, {}, set()
for line in sys.stdin:
    m = re.match(r"checkpoint_agent_check_status\{check=\"(\w+)\",state=\"(\w+)\"\} ([01])$", line)
    if m:
        states.setdefault(m[1], set()).add(m[2])
        ones[m[1]] = ones.get(m[1], 0) + int(m[3])
    m = re.match(r"checkpoint_agent_check_duration_seconds\{check=\"(\w+)\"\} [0-9.e-]+$", line)
    if m:
        durations.add(m[1])
five = all(s == {"ok", "warning", "critical", "unknown", "skipped"} for s in states.values())
print(len(states), five, set(ones.values()), len(durations), set(states) == durations)')
	assertEquals "15 checks, 5 states each, exactly one 1, a duration each" "15 True {1} 15 True" "$summary"
	assertContains "the number stays, as its own metric" "$TL_OUT" 'checkpoint_agent_check_status_code{check="disk"} 0'
	assertContains "the whole run" "$TL_OUT" "checkpoint_agent_probe_duration_seconds "
	if command -v promtool >/dev/null; then
		printf '%s\n' "$TL_OUT" | promtool check metrics >/dev/null 2>&1
		assertEquals "promtool check metrics" 0 $?
	fi
}

tl_run
