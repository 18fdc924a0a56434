#!/bin/bash
# ansible-rerun.sh: the wall time of a no-change re-run of ansible/site.yml
# beside that of provision/provision.sh, and their ratio. Each runs in its
# own booted Debian 12 container (tests/lib/container.sh) with a folder bound
# at /mnt/data: a first run provisions the host, then the re-run (which
# changes nothing) is timed RUNS times; the median is reported.
#
#   bench/ansible-rerun.sh [RUNS]        (default 3; root, like the e2e suites)
#
# Output, last line:  ansible=S.Ss provision=S.Ss ratio=R.RR
# Exit codes: 0 ok, 64 usage, 69 a container, a first run or a re-run failed
# (the log named in the message says why), 77 not root.
set -euo pipefail

runs=${1:-3}
if ! [[ "$runs" =~ ^[1-9][0-9]?$ ]]; then
	echo "usage: bench/ansible-rerun.sh [RUNS]   (RUNS: 1-99)" >&2
	exit 64
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "ansible-rerun.sh: run as root (it boots containers)" >&2
	exit 77
fi

# The container library expects the test library (tl_log, cleanup hooks).
# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/../tests/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$(dirname "$0")/../tests/lib/container.sh"

DATA_DIRS=()
cleanup() {
	local d
	tl_cleanup
	for d in "${DATA_DIRS[@]}"; do
		rm -rf --one-file-system -- "$d"
	done
}
trap cleanup EXIT

die() {
	echo "ansible-rerun.sh: $1" >&2
	exit 69
}

# boot_host NAME: a fresh container with its own /mnt/data folder.
boot_host() {
	local data
	mkdir -p "$TC_CACHE_DIR"
	data=$(mktemp -d "$TC_CACHE_DIR/bench-data.XXXXXX")
	chmod 0755 "$data"
	DATA_DIRS+=("$data")
	tc_boot "$1" --private-network --bind="$data:/mnt/data" || die "booting the container $1 failed"
}

# seconds CMD...: run CMD inside the container; print its wall time.
seconds() {
	local start
	start=$(date +%s.%N)
	tc_exec "$@" >>"$TC_DIR/bench.log" 2>&1 || return 1
	awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }'
}

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# time_reruns CMD...: the first run, then RUNS timed re-runs; prints the median.
time_reruns() {
	local i t times=()
	seconds "$@" >/dev/null || die "the first run failed; see $TC_DIR/bench.log"
	for ((i = 0; i < runs; i++)); do
		t=$(seconds "$@") || die "re-run $((i + 1)) failed; see $TC_DIR/bench.log"
		times+=("$t")
	done
	printf '%s\n' "${times[@]}" | median
}

[ -x "$TL_ROOT/provision/provision.sh" ] || die "provision/provision.sh is missing: nothing to compare with"

# Ansible, as tests/t6500 runs it: local connection, the repository's copy
# in the container, apt from the warm cache only.
boot_host bench-ansible
# What the base root's apt cache lacks (python3-apt), tests/t6500 keeps here.
if compgen -G "$TC_CACHE_DIR/t6500-debs/*.deb" >/dev/null; then
	cp "$TC_CACHE_DIR"/t6500-debs/*.deb "$TC_ROOT/var/cache/apt/archives/"
fi
tc_exec env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	ansible sudo python3-apt >>"$TC_DIR/bench.log" 2>&1 ||
	die "installing ansible failed; see $TC_DIR/bench.log (tests/t6500 adds python3-apt to the apt cache when it is missing: run it once first)"
tc_exec mkdir -p /root/bench
cat >"$TC_ROOT/root/bench/inventory.yml" <<'EOF'
all:
  children:
    checkpoint_db_servers:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: /usr/bin/python3
EOF
ansible_s=$(time_reruns env ANSIBLE_CONFIG=/opt/checkpoint-agent/ansible/ansible.cfg ansible-playbook \
	-i /root/bench/inventory.yml /opt/checkpoint-agent/ansible/site.yml \
	-e checkpoint_agent_copy_source=false -e checkpoint_agent_source_dir=/opt/checkpoint-agent \
	-e postgresql_apt_cache_valid_time=315360000 -e checkpoint_agent_apt_cache_valid_time=315360000)
tc_cleanup

boot_host bench-provision
provision_s=$(time_reruns /opt/checkpoint-agent/provision/provision.sh)

printf 'no-change re-run, median of %s: ansible-playbook %ss, provision.sh %ss\n' "$runs" "$ansible_s" "$provision_s"
awk -v a="$ansible_s" -v p="$provision_s" 'BEGIN { printf "ansible=%.2fs provision=%.2fs ratio=%.2f\n", a, p, a / p }'
