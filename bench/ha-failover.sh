#!/bin/bash
# ha-failover.sh: failover and switchover figures of the Patroni cluster that
# ansible/site.yml provisions (three booted containers on this machine's
# loopback, tests/lib/ha-cluster.sh), under the real LangGraph JS
# checkpointer writing without pause, one put at a time, every acknowledged
# checkpoint logged and looked for on the new leader afterwards:
#
#   1. TRIALS failovers with synchronous_mode on (the default): the leader's
#      container killed (SIGKILL to its PID 1). Seconds after the kill until
#      Patroni's own GET /primary says 200 on the new leader, the agent's
#      /primary there, the agent's /ready on both live nodes, and the
#      writer's first acknowledged write; acknowledged checkpoints missing.
#      The killed node is booted again and rejoins (pg_rewind) before the
#      next trial: seconds until it is a streaming replica.
#   2. TRIALS switchovers (patronictl switchover to the synchronous standby):
#      the longest pause between two acknowledged writes; missing.
#   3. synchronous_mode off (patronictl edit-config), TRIALS failovers as in
#      1: asynchronous replication may lose the last acknowledged
#      checkpoints; the count is reported, not asserted.
#
#   bench/ha-failover.sh [--trials N]
#
# Needs root, systemd-nspawn, debootstrap, ansible, node and npm
# (tests/install-deps.sh), and about 3 GB free under /var/cache. Environment:
# BENCH_TRIALS (3); HA_FRESH=1 (nodes from the bare base: the playbook
# installs every package). The machine may be shared: the load is printed;
# nothing is asserted.
# Exit codes: 0 measured, 1 the cluster or a step failed, 64 usage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
trials=${BENCH_TRIALS:-3}

usage() {
	sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
}

while [ "$#" -gt 0 ]; do
	case "$1" in
	--trials) trials=${2:-}; shift 2 || { usage >&2; exit 64; } ;;
	-h | --help) usage; exit 0 ;;
	*) echo "ha-failover: unknown argument '$1'; see --help" >&2; exit 64 ;;
	esac
done
case "$trials" in
'' | *[!0-9]* | 0) echo "ha-failover: --trials must be a positive number" >&2; exit 64 ;;
esac

die() {
	echo "ha-failover: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: the nodes are systemd-nspawn containers"
for tool in systemd-nspawn ansible-playbook curl node; do
	command -v "$tool" >/dev/null || die "$tool is missing (tests/install-deps.sh installs it)"
done

# shellcheck source=../tests/lib/test-lib.sh
. "$root/tests/lib/test-lib.sh"
# shellcheck source=../tests/lib/container.sh
. "$root/tests/lib/container.sh"
HA_NAME=bench-ha
# shellcheck source=../tests/lib/ha-cluster.sh
. "$root/tests/lib/ha-cluster.sh"
trap tl_cleanup EXIT

rows=()

# row KIND TRIAL FIGURES...: one line of the results table.
row() {
	local line='|' f
	for f in "$@"; do line+=" $f |"; done
	rows+=("$line")
	printf '%s\n' "$line"
}

# median_max COLUMN KIND: "median / max" of a column of the rows of KIND.
median_max() {
	printf '%s\n' "${rows[@]}" | awk -F'|' -v c="$1" -v k=" $2 " '$2 == k && $c ~ /[0-9]/ { print $c + 0 }' |
		sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.1f / %.1f", v[int((NR + 1) / 2)], v[NR]; else printf "-" }'
}

sum_of() {
	printf '%s\n' "${rows[@]}" | awk -F'|' -v c="$1" -v k=" $2 " '$2 == k { s += $c } END { print s + 0 }'
}

# failover_trial KIND N: one failover, then the killed node back.
failover_trial() {
	local kind=$1 n=$2 t0 rejoin
	failover_under_load "$kind-$n" || die "$kind failover $n: $FO_ERROR"
	t0=$SECONDS
	restart_node "$FO_OLD" || die "the killed node did not boot again"
	wait_for 300 rejoined "$FO_OLD" || die "node-${NODES[$FO_OLD]} did not rejoin within 300 s"
	rejoin=$((SECONDS - t0))
	row "$kind" "$n" "$FO_PATRONI" "$FO_PRIMARY" "$FO_READY" "$FO_PAUSE" "$FO_ACKED" "$FO_MISSING" "$rejoin"
}

echo "ha-failover: $trials trials each; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
start=$SECONDS
ha_boot_cluster || die "the nodes did not boot"
# shellcheck disable=SC2119 # no extra ansible-playbook arguments
run_playbook || true
[ "$PB_RC" = 0 ] || die "the playbook failed (exit $PB_RC); see $PB_LOG"
echo "first run of the playbook: ${PB_SECONDS}s; cluster: $(members | tr '\n' ';')"
on 0 sed -n 's/^password=//p' /etc/checkpoint-agent/credentials >"$WORK/app-password"
chmod 0600 "$WORK/app-password"
wait_for 120 http_is 0 /ready 200 || die "the agent on node-a is not ready"

echo
echo "| kind | trial | Patroni /primary s | agent /primary s | agent /ready s | first write s | acknowledged | missing | rejoined s |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in $(seq 1 "$trials"); do
	failover_trial failover-sync "$n"
done
echo
echo "| kind | trial | longest write pause s | acknowledged | missing |"
echo "|---|---|---|---|---|"
for n in $(seq 1 "$trials"); do
	switchover_under_load "switchover-$n" || die "switchover $n: $SW_ERROR"
	row switchover "$n" "$SW_PAUSE" "$SW_ACKED" "$SW_MISSING"
	wait_for 120 rejoined "$SW_OLD" || die "the old leader did not come back as a replica"
done
leader=$(leader_index) || die "no leader"
on "$leader" patronictl -c /etc/patroni/config.yml edit-config --force -s synchronous_mode=false \
	>"$WORK/edit-config.log" 2>&1 || die "patronictl edit-config: $(tail -n 3 "$WORK/edit-config.log")"
wait_for 60 no_sync_standby || die "a synchronous standby is still listed"
echo
echo "| kind | trial | Patroni /primary s | agent /primary s | agent /ready s | first write s | acknowledged | missing | rejoined s |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in $(seq 1 "$trials"); do
	failover_trial failover-async "$n"
done

echo
echo "Summary (median / max of $trials trials; seconds after the kill or the command; load $(cut -d' ' -f1-3 /proc/loadavg)):"
echo
echo "| | synchronous_mode on | synchronous_mode off |"
echo "|---|---|---|"
echo "| failover: Patroni's /primary 200 on the new leader | $(median_max 4 failover-sync) | $(median_max 4 failover-async) |"
echo "| failover: the agent's /primary 200 there | $(median_max 5 failover-sync) | $(median_max 5 failover-async) |"
echo "| failover: the agent's /ready 200 on both live nodes | $(median_max 6 failover-sync) | $(median_max 6 failover-async) |"
echo "| failover: the writer's first acknowledged write | $(median_max 7 failover-sync) | $(median_max 7 failover-async) |"
echo "| failover: acknowledged checkpoints missing (of all acknowledged) | $(sum_of 9 failover-sync) of $(sum_of 8 failover-sync) | $(sum_of 9 failover-async) of $(sum_of 8 failover-async) |"
echo "| the killed node a streaming replica again after its boot | $(median_max 10 failover-sync) | $(median_max 10 failover-async) |"
echo "| switchover: longest write pause | $(median_max 4 switchover) | |"
echo "| switchover: acknowledged checkpoints missing | $(sum_of 6 switchover) of $(sum_of 5 switchover) | |"
echo
echo "ha-failover: done in $((SECONDS - start))s"
