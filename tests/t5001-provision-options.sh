#!/bin/bash
# t5001-provision-options: the command line shared by provision.sh, its steps
# and rollback.sh: defaults from defaults.env, environment overrides, option
# overrides, validation (exit 64), root check (77), the step list. Nothing
# here changes the machine: --show-config and --help exit before any step.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

P=$TL_ROOT/provision

# show_config ARGS...: the effective settings, with the environment cleared of
# CPA_* so the defaults are what defaults.env says.
show_config() {
	# shellcheck disable=SC2046 # one -u NAME pair per variable
	env $(env | sed -n 's/^\(CPA_[A-Z0-9_]*\)=.*/-u \1/p') "$P/provision.sh" --show-config "$@"
}

config_value() {
	sed -n "s/^$1=//p"
}

test_01_defaults_come_from_defaults_env() {
	local out key value
	out=$(show_config) || fail "--show-config failed"
	while IFS='=' read -r key value; do
		case "$key" in '' | '#'*) continue ;; esac
		[ "$key" = CPA_DATA_DIR ] && continue
		[ "$key" = CPA_BACKUP_STANZA ] && continue
		assertEquals "$key" "$value" "$(config_value "$key" <<<"$out")"
	done <"$P/defaults.env"
}

test_02_data_dir_is_derived_from_root_version_and_cluster() {
	local out
	out=$(show_config --data-root /srv/disk --pg-version 16 --cluster app)
	assertEquals /srv/disk/postgresql/16/app "$(config_value CPA_DATA_DIR <<<"$out")"
	out=$(show_config --data-dir /srv/pg/)
	assertEquals "an explicit data dir wins, trailing slash dropped" /srv/pg "$(config_value CPA_DATA_DIR <<<"$out")"
}

test_03_environment_overrides_defaults_and_options_override_environment() {
	local out
	out=$(CPA_POOL_SIZE=33 CPA_DB_ROLE=other env -u CPA_PG_PORT "$P/provision.sh" --show-config)
	assertEquals 33 "$(config_value CPA_POOL_SIZE <<<"$out")"
	assertEquals other "$(config_value CPA_DB_ROLE <<<"$out")"
	out=$(CPA_POOL_SIZE=33 "$P/provision.sh" --show-config --pool-size=44)
	assertEquals 44 "$(config_value CPA_POOL_SIZE <<<"$out")"
	out=$("$P/provision.sh" --show-config --wal-rate 2048)
	assertEquals 2048 "$(config_value CPA_WAL_RATE_KB <<<"$out")"
}

test_04_allow_cidr_accumulates_after_the_environment() {
	local out
	out=$(CPA_ALLOWED_CIDRS=10.0.0.0/8 "$P/provision.sh" --show-config --allow-cidr 192.0.2.0/24 --allow-cidr=2001:db8::/32)
	assertEquals "10.0.0.0/8 192.0.2.0/24 2001:db8::/32" "$(config_value CPA_ALLOWED_CIDRS <<<"$out")"
}

test_05_bad_values_exit_64_with_a_reason() {
	local args err rc
	# shellcheck disable=SC2089 # the quote is part of the bad value
	for args in "--allow-cidr 10.0.0.1" "--allow-cidr 300.1.1.1/8" "--allow-cidr 10.0.0.0/33" \
		"--port 70000" "--port x" "--pool-size 0" "--wal-rate -1" "--wal-rate fast" "--role bad\"name" "--database Upper" \
		"--data-root relative/path" "--sets langgraph,bogus" "--sets bogus" "--listen 1.2.3.4;drop" \
		"--env-file /etc/it's" "--space-margin -1" "--no-such-option" "--agent-role Bad" "--agent-role ai_agent" \
		"--tls-ca /etc/ca.pem" "--tls-cert /etc/c.pem" "--tls-key /etc/k.pem" "--public-host a;b" \
		"--apt-cache-valid-time soon" "--remote-env-file relative.env" \
		"--backup-repo relative/repo" "--backup-repo /" "--backup-stanza bad/name" "--archive-timeout 0" \
		"--backup-retention 0" "--backup-interval-hours x" "--backup-full-schedule not-a-calendar" \
		"--backup-diff-schedule Mon;reboot" "--backup-status-dir /var/lib/it's"; do
		rc=0
		# shellcheck disable=SC2086,SC2090 # the words are separate arguments, quotes literal
		err=$("$P/provision.sh" --show-config $args 2>&1 >/dev/null) || rc=$?
		assertEquals "exit code for: $args" 64 "$rc"
		assertContains "message for: $args" "$err" "Try: provision.sh --help"
	done
}

test_05b_backup_options_and_their_derived_stanza() {
	local out
	out=$(show_config) || fail "--show-config failed"
	assertEquals "the stanza is the cluster's name" main "$(config_value CPA_BACKUP_STANZA <<<"$out")"
	out=$(show_config --cluster lg --no-backup --backup-repo /srv/pg-backup/ --backup-cipher --enable-checksums \
		--archive-timeout 30 --backup-full-schedule "Sat 02:00" --backup-retention 4) || fail "--show-config failed"
	assertEquals lg "$(config_value CPA_BACKUP_STANZA <<<"$out")"
	assertEquals 0 "$(config_value CPA_BACKUP <<<"$out")"
	assertEquals "a trailing slash is dropped" /srv/pg-backup "$(config_value CPA_BACKUP_REPO <<<"$out")"
	assertEquals 1 "$(config_value CPA_BACKUP_CIPHER <<<"$out")"
	assertEquals 1 "$(config_value CPA_ENABLE_CHECKSUMS <<<"$out")"
	assertEquals 30 "$(config_value CPA_ARCHIVE_TIMEOUT <<<"$out")"
	assertEquals "Sat 02:00" "$(config_value CPA_BACKUP_FULL_SCHEDULE <<<"$out")"
	assertEquals 4 "$(config_value CPA_BACKUP_RETENTION_FULL <<<"$out")"
	out=$(show_config --backup-stanza other) || fail "--show-config failed"
	assertEquals other "$(config_value CPA_BACKUP_STANZA <<<"$out")"
}

test_06_missing_option_value_is_a_usage_error() {
	local rc=0 err
	err=$("$P/provision.sh" --port 2>&1) || rc=$?
	assertEquals 64 "$rc"
	assertContains "$err" "--port needs a value"
}

test_07_help_lists_every_setting_and_the_exit_codes() {
	local help key
	help=$("$P/provision.sh" --help) || fail "--help failed"
	while IFS='=' read -r key _; do
		case "$key" in '' | '#'*) continue ;; esac
		assertContains "help names $key" "$help" "$key"
	done <"$P/defaults.env"
	for key in --dry-run --remove-old --require-mount --allow-cidr --listen --password-file --step --from \
		--no-backup --backup-repo --backup-cipher --enable-checksums; do
		assertContains "help names $key" "$help" "$key"
	done
	assertContains "$help" "73 refused"
}

test_08_every_step_runs_alone_and_has_help() {
	local f out
	for f in "$P"/steps/[0-9][0-9]-*.sh; do
		out=$(bash "$f" --help) || fail "$f --help failed"
		assertContains "$f" "$out" "Usage: provision/steps/$(basename "$f")"
	done
}

test_09_steps_are_listed_in_order_and_unknown_steps_are_refused() {
	local rc=0
	assertEquals "install datadir role-db tune app-env backup agent table-tuning summary" \
		"$("$P/provision.sh" --list-steps | paste -sd ' ')"
	"$P/provision.sh" --step nosuch >/dev/null 2>&1 || rc=$?
	assertEquals 64 "$rc"
	rc=0
	"$P/provision.sh" --from nosuch >/dev/null 2>&1 || rc=$?
	assertEquals 64 "$rc"
}

test_10_a_non_root_user_gets_77_without_dry_run() {
	local rc=0 err
	err=$(cd / && runuser -u nobody -- "$P/provision.sh" --step summary 2>&1) || rc=$?
	assertEquals 77 "$rc"
	assertContains "$err" "must run as root"
}

test_11_rollback_needs_one_known_action() {
	local rc=0
	"$P/rollback.sh" >/dev/null 2>&1 || rc=$?
	assertEquals "no action" 64 "$rc"
	rc=0
	"$P/rollback.sh" sideways >/dev/null 2>&1 || rc=$?
	assertEquals "unknown action" 64 "$rc"
	rc=0
	"$P/rollback.sh" schema >/dev/null 2>&1 || rc=$?
	assertEquals "schema without --to" 64 "$rc"
	assertContains "$("$P/rollback.sh" app)" "checkpoint:*"
}

test_12_a_cidr_from_both_the_environment_and_an_option_is_kept_once() {
	local out
	# What provision.sh does to every step: the list exported, and its
	# --allow-cidr options passed on again.
	out=$(CPA_ALLOWED_CIDRS="10.0.0.0/8 192.0.2.0/24" bash "$P/steps/30-role-db.sh" --show-config \
		--allow-cidr 10.0.0.0/8 --allow-cidr 192.0.2.0/24 --allow-cidr 198.51.100.0/24 --allow-cidr 10.0.0.0/8)
	assertEquals "10.0.0.0/8 192.0.2.0/24 198.51.100.0/24" "$(config_value CPA_ALLOWED_CIDRS <<<"$out")"
	out=$(CPA_ALLOWED_CIDRS=10.0.0.0/8 "$P/provision.sh" --show-config --allow-cidr 10.0.0.0/8)
	assertEquals "provision.sh too" 10.0.0.0/8 "$(config_value CPA_ALLOWED_CIDRS <<<"$out")"
}

test_13_table_tuning_is_skipped_without_the_langgraph_set() {
	local out rc=0
	# Without langgraph the step must not even look for a database: the
	# port points nowhere.
	out=$(CPA_SETS="agentos langgraph-store" bash "$P/steps/70-table-tuning.sh" --port 1 2>&1) || rc=$?
	assertEquals "exit code: $out" 0 "$rc"
	assertContains "$out" "skipped"
	assertContains "$out" "langgraph set"
}

# hold_lock FILE SECONDS: another provisioning holding the lock (in the
# background); its pid in HOLDER.
hold_lock() {
	flock "$1" sleep "$2" &
	HOLDER=$!
	printf 'provision.sh (pid %s, since a while)\n' "$HOLDER" >"$1.owner"
	for _ in $(seq 1 50); do
		flock -n "$1" true || return 0
		sleep 0.1
	done
	return 1
}

test_14_every_entry_point_takes_the_one_lock() {
	local d rc out entry
	d=$(tl_tmpdir)
	hold_lock "$d/lock" 60 || fail "the lock was not taken"
	for entry in "$P/provision.sh --step summary" "$P/rollback.sh datadir" "$P/rollback.sh schema --to 8" \
		"$P/steps/20-datadir.sh" "$P/steps/40-tune.sh" "$P/restore.sh --drill" "$P/restore.sh --latest --yes"; do
		rc=0
		# shellcheck disable=SC2086 # the entry's words are separate arguments
		out=$(CPA_LOCK_FILE=$d/lock bash $entry 2>&1) || rc=$?
		assertEquals "$entry: $out" 69 "$rc"
		assertContains "$entry says who holds it" "$out" "another provisioning is running on this host"
		assertContains "$out" "held by provision.sh (pid $HOLDER"
	done
	kill "$HOLDER"
	wait "$HOLDER" 2>/dev/null
	rc=0
	out=$(CPA_LOCK_FILE=$d/lock "$P/rollback.sh" app 2>&1) || rc=$?
	assertEquals "rollback.sh app changes nothing and needs no lock: $out" 0 "$rc"
	rc=0
	out=$(CPA_LOCK_FILE=$d/lock "$P/provision.sh" --dry-run --step summary 2>&1) || rc=$?
	assertEquals "a dry run takes no lock: $out" 0 "$rc"
}

test_15_the_lock_is_not_inherited_by_what_the_run_starts() {
	local d daemon lockfile
	d=$(tl_tmpdir)
	# A run that takes the lock and leaves a daemon behind, as pg_ctlcluster
	# leaves PostgreSQL running when systemd is not PID 1.
	# shellcheck disable=SC2016 # expanded by the inner bash
	CPA_LOCK_FILE=$d/lock bash -c 'set -euo pipefail
		. "$1/provision/lib/common.sh"
		cpa_take_lock "a test run"
		setsid sleep 60 </dev/null >/dev/null 2>&1 &
		echo "$!" >"$2"' bash "$TL_ROOT" "$d/daemon" || fail "the run failed"
	daemon=$(cat "$d/daemon")
	assertTrue "the daemon runs" "kill -0 $daemon"
	lockfile=$(readlink -f "$d/lock")
	assertEquals "the daemon holds no descriptor of the lock" "" \
		"$(for f in /proc/"$daemon"/fd/*; do [ "$(readlink -f "$f")" = "$lockfile" ] && echo "$f"; done)"
	for _ in $(seq 1 20); do
		flock -n "$d/lock" true && break
		sleep 0.1
	done
	assertTrue "the lock is free once the run has ended, though the daemon runs on" "flock -n '$d/lock' true"
	kill "$daemon"
	# And the steps provision.sh runs are inside its lock, not refused by it.
	# shellcheck disable=SC2016 # expanded by the inner bash
	assertEquals "a child of the holder takes it again freely" ok "$(CPA_LOCK_FILE=$d/lock bash -c '
		. "$1/provision/lib/common.sh"; CPA_DRY_RUN=0
		cpa_take_lock parent
		bash -c ". \"$1/provision/lib/common.sh\"; CPA_DRY_RUN=0; cpa_take_lock child && echo ok"' bash "$TL_ROOT" 2>&1)"
}

tl_run
