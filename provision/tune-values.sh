#!/bin/bash
# tune-values.sh: the tuning rules, in one place for provision/ and ansible/.
# Prints KEY=VALUE lines: the inputs it used, then one line per setting of
# templates/postgresql-tuning.conf.j2 (the keys are that template's
# placeholders). The shell scripts and the Ansible role both run this script
# and render the same template with its output, so the rules cannot drift.
#
#   tune-values.sh [--mem-kb N] [--cores N] [--pool-size N] [--instances N]
#                  [--wal-rate-kb N]
#
# Without options it reads the machine and the pool settings of defaults.env
# (or CPA_POOL_SIZE / CPA_POOL_INSTANCES). --wal-rate-kb is the peak rate of
# WAL the workload writes, in kB per second (CPA_WAL_RATE_KB; 0 or unset: 1280
# per core); max_wal_size is sized from it, not from the memory. The memory is the smaller of
# /proc/meminfo's MemTotal and the memory limit of this process's cgroup
# (cgroup v2 memory.max, or v1 memory.limit_in_bytes, up the hierarchy): in
# a container or a systemd slice with a limit, sizing for the host's memory
# would have PostgreSQL killed by the OOM killer. The cores are nproc's
# (which honours the CPU affinity a cgroup's cpuset gives).
# Exit codes: 0 ok, 64 usage.
set -euo pipefail

usage() {
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

usage_error() {
	printf 'tune-values.sh: %s\nTry: tune-values.sh --help\n' "$1" >&2
	exit 64
}

default_from_defaults_env() {
	local key=$1 file
	file=$(dirname "$0")/defaults.env
	if [ -n "${!key:-}" ]; then
		printf '%s\n' "${!key}"
	elif [ -r "$file" ]; then
		sed -n "s/^$key=//p" "$file" | head -n 1
	fi
}

# cgroup_limit_kb: the tightest memory limit of this process's cgroup and its
# ancestors, in kB, or nothing when there is none. CPA_CGROUP_ROOT (default
# /sys/fs/cgroup) is where the hierarchy is mounted.
cgroup_limit_kb() {
	local root=${CPA_CGROUP_ROOT:-/sys/fs/cgroup} line path dir f limit best=""
	while IFS= read -r line; do
		case "$line" in
		0::*) path=${line#0::} f=memory.max dir=$root ;;                  # cgroup v2
		*:memory:*) path=${line#*:memory:} f=memory.limit_in_bytes dir=$root/memory ;; # v1
		*) continue ;;
		esac
		while :; do
			if [ -r "$dir$path/$f" ]; then
				limit=$(cat "$dir$path/$f")
				# v1 says "no limit" with a huge number, v2 with "max"
				if [[ "$limit" =~ ^[0-9]+$ ]] && [ "$limit" -lt 4611686018427387904 ]; then
					limit=$((limit / 1024))
					if [ -z "$best" ] || [ "$limit" -lt "$best" ]; then best=$limit; fi
				fi
			fi
			if [ -z "$path" ] || [ "$path" = / ]; then
				break
			fi
			path=${path%/*}
		done
	done </proc/self/cgroup
	[ -z "$best" ] || printf '%s\n' "$best"
}

machine_mem_kb() {
	local total limit
	total=$(awk '/^MemTotal:/ { print $2; exit }' /proc/meminfo)
	limit=$(cgroup_limit_kb)
	if [ -n "$limit" ] && [ "$limit" -lt "$total" ]; then
		printf '%s\n' "$limit"
	else
		printf '%s\n' "$total"
	fi
}

mem_kb=
cores=
pool_size=
instances=
wal_rate_kb=
while [ "$#" -gt 0 ]; do
	case "$1" in
	--wal-rate-kb)
		[ "$#" -ge 2 ] || usage_error "$1 needs a value"
		[[ "$2" =~ ^[0-9]{1,9}$ ]] || usage_error "$1 must be a whole number of kB per second: $2"
		wal_rate_kb=$2
		shift 2
		;;
	--mem-kb | --cores | --pool-size | --instances)
		[ "$#" -ge 2 ] || usage_error "$1 needs a value"
		[[ "$2" =~ ^[0-9]{1,12}$ ]] || usage_error "$1 must be a positive whole number: $2"
		[ "$2" -gt 0 ] || usage_error "$1 must be a positive whole number: $2"
		case "$1" in
		--mem-kb) mem_kb=$2 ;;
		--cores) cores=$2 ;;
		--pool-size) pool_size=$2 ;;
		--instances) instances=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown argument: $1" ;;
	esac
done
mem_kb=${mem_kb:-$(machine_mem_kb)}
cores=${cores:-$(nproc)}
pool_size=${pool_size:-$(default_from_defaults_env CPA_POOL_SIZE)}
instances=${instances:-$(default_from_defaults_env CPA_POOL_INSTANCES)}
wal_rate_kb=${wal_rate_kb:-$(default_from_defaults_env CPA_WAL_RATE_KB)}
[[ "${wal_rate_kb:-0}" =~ ^[0-9]{1,9}$ ]] || usage_error "CPA_WAL_RATE_KB must be a whole number of kB per second: $wal_rate_kb"
[[ "$pool_size" =~ ^[1-9][0-9]*$ ]] || usage_error "no pool size (give --pool-size N)"
[[ "$instances" =~ ^[1-9][0-9]*$ ]] || usage_error "no instance count (give --instances N)"
[ "$mem_kb" -ge 262144 ] || usage_error "at least 256 MB of memory is needed (--mem-kb $mem_kb)"

# clamp VALUE MIN MAX
clamp() {
	local v=$1 lo=$2 hi=$3
	((v < lo)) && v=$lo
	((v > hi)) && v=$hi
	printf '%s\n' "$v"
}

mem_mb=$((mem_kb / 1024))
pool_total=$((pool_size * instances))

# Connections: the pools, plus headroom for the agent (a service connection and
# a CLI one), psql sessions, backups and monitoring: a quarter of the pools,
# at least 15. The 3 superuser-reserved slots come out of this headroom.
headroom=$(((pool_total + 3) / 4))
((headroom < 15)) && headroom=15
max_connections=$((pool_total + headroom))

# Memory: a quarter of RAM for shared_buffers (capped at 16 GB, where larger
# buffers stop paying off and double-buffer with the page cache), three
# quarters as the planner's estimate of the cache.
shared_buffers_mb=$(clamp $((mem_mb / 4)) 128 16384)
effective_cache_size_mb=$(clamp $((mem_mb * 3 / 4)) 256 $((1024 * 1024)))
maintenance_work_mem_mb=$(clamp $((mem_mb / 16)) 64 2048)
# work_mem: what is left after shared_buffers, shared by every connection
# running up to 4 sort/hash nodes at once; checkpoint queries are key
# lookups, so 4-64 MB.
work_mem_mb=$(clamp $(((mem_mb - shared_buffers_mb) / (max_connections * 4))) 4 64)
# WAL: PostgreSQL starts a checkpoint early once the WAL since the last one
# passes max_wal_size / (1 + checkpoint_completion_target). So that the peak
# rate of WAL never does, a cycle of checkpoint_timeout (900 s) x 1.9 at that
# rate fills 80% of max_wal_size (the agent's `wal` check warns above that).
# The rate: --wal-rate-kb, else 1280 kB/s per core: the LangGraph workload
# with 1 KB payloads (bench/workload-bench.sh, 20 writers), which keeps a
# 2-core server's CPU busy, wrote up to 2224 kB/s there, 1112 kB/s per core;
# 15% more, so that this peak fills 70% of max_wal_size, under the `wal`
# check's 80%. 1-64 GB; min_wal_size keeps a quarter recycled.
checkpoint_timeout_s=900
[ "${wal_rate_kb:-0}" -gt 0 ] || wal_rate_kb=$((1280 * cores))
# x 1.9 / 0.8 = x 19 / 8, in kB, rounded up to MB
max_wal_size_mb=$(clamp $(((wal_rate_kb * checkpoint_timeout_s * 19 / 8 + 1023) / 1024)) 1024 65536)
min_wal_size_mb=$((max_wal_size_mb / 4))
# Workers: one process per core for parallel queries; autovacuum gets at least
# the default 3 workers, up to one per core (6 at most).
max_worker_processes=$(clamp "$cores" 8 64)
max_parallel_workers=$(clamp "$cores" 1 64)
max_parallel_workers_per_gather=$(clamp $((cores / 2)) 1 4)
max_parallel_maintenance_workers=$(clamp $((cores / 2)) 1 4)
autovacuum_max_workers=$(clamp "$cores" 3 6)

cat <<EOF
mem_mb=$mem_mb
cores=$cores
pool_size=$pool_size
pool_instances=$instances
pool_total=$pool_total
wal_rate_kb=$wal_rate_kb
connection_headroom=$headroom
max_connections=$max_connections
shared_buffers=${shared_buffers_mb}MB
effective_cache_size=${effective_cache_size_mb}MB
maintenance_work_mem=${maintenance_work_mem_mb}MB
work_mem=${work_mem_mb}MB
max_wal_size=${max_wal_size_mb}MB
min_wal_size=${min_wal_size_mb}MB
checkpoint_timeout=$((checkpoint_timeout_s / 60))min
checkpoint_completion_target=0.9
wal_compression=lz4
default_toast_compression=lz4
random_page_cost=1.1
effective_io_concurrency=200
max_worker_processes=$max_worker_processes
max_parallel_workers=$max_parallel_workers
max_parallel_workers_per_gather=$max_parallel_workers_per_gather
max_parallel_maintenance_workers=$max_parallel_maintenance_workers
autovacuum_max_workers=$autovacuum_max_workers
autovacuum_naptime=15s
autovacuum_vacuum_cost_limit=1000
jit=off
idle_in_transaction_session_timeout=10min
EOF
