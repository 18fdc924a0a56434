#!/bin/bash
# provision-rerun.sh: the wall time of a no-change re-run of
# provision/provision.sh, beside the same re-run of the Ansible playbook
# (ansible/site.yml), and their ratio. Each runs in its own booted Debian 12
# container (tests/lib/container.sh: private network, a host folder at
# /mnt/data): one converging run, then RUNS timed re-runs; the median counts.
# A re-run that reports a change is an error (the number would be wrong).
#
#   bench/provision-rerun.sh [RUNS]        (default 5; root; about 6 minutes)
#
# Output: one line per tool, then "ratio ansible/provision: X".
set -uo pipefail

RUNS=${1:-5}
[[ "$RUNS" =~ ^[1-9][0-9]?$ ]] || { echo "usage: provision-rerun.sh [RUNS 1-99]" >&2; exit 64; }
[ "$(id -u)" -eq 0 ] || { echo "provision-rerun.sh: run as root (it boots containers)" >&2; exit 77; }

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/../tests/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$TL_ROOT/tests/lib/container.sh"

trap 'tl_cleanup' EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f\n", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

boot() {
	local data
	data=$(tl_tmpdir) || return 1
	tc_boot "bench-$1" --private-network --bind="$data:/mnt/data"
}

# time_reruns NAME CHECK CMD...: converge once, then time RUNS re-runs into
# LOGS/NAME.times; CHECK is a function given the output file, true when
# nothing changed.
time_reruns() {
	local name=$1 check=$2 log i start
	shift 2
	log=$LOGS/$name.log
	: >"$LOGS/$name.times"
	if ! tc_exec "$@" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		echo "$name: the converging run failed" >&2
		return 1
	fi
	for ((i = 1; i <= RUNS; i++)); do
		start=$(now)
		tc_exec "$@" >"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "$name: re-run $i failed" >&2; return 1; }
		since "$start" >>"$LOGS/$name.times"
		"$check" "$log" || { echo "$name: re-run $i changed something; see $log" >&2; return 1; }
	done
}

provision_unchanged() { grep -q '^Nothing changed' "$1"; }
ansible_unchanged() { grep -Eq '^localhost +: ok=[0-9]+ +changed=0 .*failed=0' "$1"; }

bench_provision() {
	boot provision || return 1
	time_reruns provision provision_unchanged /opt/checkpoint-agent/provision/provision.sh || return 1
	tc_stop
}

bench_ansible() {
	local work=/root/bench
	boot ansible || return 1
	# As tests/t6500 installs it (python3-apt: from its cache when the base's
	# apt cache lacks it; sudo: the roles' become).
	if compgen -G "$TC_CACHE_DIR/t6500-debs/*.deb" >/dev/null; then
		cp "$TC_CACHE_DIR"/t6500-debs/*.deb "$TC_ROOT/var/cache/apt/archives/"
	fi
	tc_exec env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		ansible sudo python3-apt >"$LOGS/apt-ansible.log" 2>&1 ||
		{ echo "installing ansible in the container failed; see $LOGS/apt-ansible.log (run tests/t6500 once first)" >&2; return 1; }
	mkdir -p "$TC_ROOT$work"
	printf '%s\n' '---' 'all:' '  children:' '    checkpoint_db_servers:' '      hosts:' '        localhost:' \
		'          ansible_connection: local' '          ansible_python_interpreter: /usr/bin/python3' \
		>"$TC_ROOT$work/inventory.yml"
	printf '%s\n' '---' 'checkpoint_agent_copy_source: false' 'checkpoint_agent_source_dir: /opt/checkpoint-agent' \
		'postgresql_apt_cache_valid_time: 315360000' 'checkpoint_agent_apt_cache_valid_time: 315360000' \
		>"$TC_ROOT$work/vars.yml"
	time_reruns ansible ansible_unchanged env ANSIBLE_CONFIG=/opt/checkpoint-agent/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 \
		ansible-playbook -i "$work/inventory.yml" -e "@$work/vars.yml" /opt/checkpoint-agent/ansible/site.yml || return 1
	tc_stop
}

LOGS=$(tl_tmpdir) || exit 1
bench_provision || exit 1
p=$(median <"$LOGS/provision.times")
printf 'provision.sh no-change re-run: %ss (median of %s: %s)\n' "$p" "$RUNS" "$(paste -sd ' ' "$LOGS/provision.times")"
if [ ! -f "$TL_ROOT/ansible/site.yml" ]; then
	echo "ansible/site.yml does not exist yet: no ratio"
	exit 0
fi
bench_ansible || exit 1
a=$(median <"$LOGS/ansible.times")
printf 'ansible-playbook no-change re-run: %ss (median of %s: %s)\n' "$a" "$RUNS" "$(paste -sd ' ' "$LOGS/ansible.times")"
printf 'ratio ansible/provision: %s\n' "$(awk -v a="$a" -v p="$p" 'BEGIN { printf "%.1f", a / p }')"
