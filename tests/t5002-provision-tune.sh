#!/bin/bash
# t5002-provision-tune: the tuning rules (provision/tune-values.sh) and the
# conf.d template they fill, which provision/ and ansible/ share. Values are
# checked against the rules worked out by hand, and the rendered file is
# loaded by a real (throwaway) PostgreSQL, which must accept every setting.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=provision/lib/common.sh
. "$TL_ROOT/provision/lib/common.sh"

TV=$TL_ROOT/provision/tune-values.sh
TEMPLATE=$TL_ROOT/provision/templates/postgresql-tuning.conf.j2

value() { sed -n "s/^$1=//p"; }

test_01_a_4_gb_2_core_server_with_one_pool_of_20() {
	local out
	out=$("$TV" --mem-kb 4194304 --cores 2 --pool-size 20 --instances 1) || fail "tune-values failed"
	assertEquals "35 = 20 + the minimum headroom of 15" 35 "$(value max_connections <<<"$out")"
	assertEquals "a quarter of 4096 MB" 1024MB "$(value shared_buffers <<<"$out")"
	assertEquals "three quarters" 3072MB "$(value effective_cache_size <<<"$out")"
	assertEquals "1/16" 256MB "$(value maintenance_work_mem <<<"$out")"
	assertEquals "(4096-1024)/(35*4) = 21" 21MB "$(value work_mem <<<"$out")"
	assertEquals "1280 kB/s per core: 2560 kB/s x 900 s x 1.9 / 0.8 = 5343.75 MB" 5344MB "$(value max_wal_size <<<"$out")"
	assertEquals 1336MB "$(value min_wal_size <<<"$out")"
	assertEquals 1 "$(value max_parallel_workers_per_gather <<<"$out")"
	assertEquals 3 "$(value autovacuum_max_workers <<<"$out")"
	assertEquals lz4 "$(value default_toast_compression <<<"$out")"
	assertEquals lz4 "$(value wal_compression <<<"$out")"
}

test_02_connections_follow_the_pools_with_a_quarter_headroom() {
	local out
	out=$("$TV" --mem-kb 8388608 --cores 4 --pool-size 100 --instances 3)
	assertEquals 300 "$(value pool_total <<<"$out")"
	assertEquals 75 "$(value connection_headroom <<<"$out")"
	assertEquals 375 "$(value max_connections <<<"$out")"
	out=$("$TV" --mem-kb 8388608 --cores 4 --pool-size 10 --instances 2)
	assertEquals "small pools keep 15 spare" 35 "$(value max_connections <<<"$out")"
}

test_03_large_machines_hit_the_caps() {
	local out
	out=$("$TV" --mem-kb $((256 * 1024 * 1024)) --cores 64 --pool-size 20 --instances 1)
	assertEquals 16384MB "$(value shared_buffers <<<"$out")"
	assertEquals 2048MB "$(value maintenance_work_mem <<<"$out")"
	assertEquals 64MB "$(value work_mem <<<"$out")"
	assertEquals "64 cores x 1280 kB/s would need 171000 MB: capped at 64 GB" 65536MB "$(value max_wal_size <<<"$out")"
	assertEquals 6 "$(value autovacuum_max_workers <<<"$out")"
	assertEquals 4 "$(value max_parallel_workers_per_gather <<<"$out")"
}

test_03b_max_wal_size_follows_the_wal_rate_not_the_memory() {
	local out small big
	out=$("$TV" --mem-kb 4194304 --cores 2 --pool-size 20 --instances 1 --wal-rate-kb 4096)
	assertEquals "4096 kB/s x 2137.5 s = 8550 MB" 8550MB "$(value max_wal_size <<<"$out")"
	assertEquals 4096 "$(value wal_rate_kb <<<"$out")"
	out=$("$TV" --mem-kb 4194304 --cores 2 --pool-size 20 --instances 1 --wal-rate-kb 100)
	assertEquals "a slow workload keeps the 1 GB floor" 1024MB "$(value max_wal_size <<<"$out")"
	small=$("$TV" --mem-kb 1048576 --cores 2 --pool-size 20 --instances 1 | value max_wal_size)
	big=$("$TV" --mem-kb $((64 * 1024 * 1024)) --cores 2 --pool-size 20 --instances 1 | value max_wal_size)
	assertEquals "the memory does not change it" "$small" "$big"
	out=$(CPA_WAL_RATE_KB=3072 "$TV" --mem-kb 4194304 --cores 2 --pool-size 20 --instances 1)
	assertEquals "CPA_WAL_RATE_KB" 6413MB "$(value max_wal_size <<<"$out")"
}

test_04_without_options_it_reads_the_machine() {
	local out
	out=$(env -u CPA_POOL_SIZE -u CPA_POOL_INSTANCES "$TV")
	assertEquals "$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)" "$(value mem_mb <<<"$out")"
	assertEquals "$(nproc)" "$(value cores <<<"$out")"
	assertEquals "pool size from defaults.env" "$(sed -n 's/^CPA_POOL_SIZE=//p' "$TL_ROOT/provision/defaults.env")" \
		"$(value pool_size <<<"$out")"
}

test_05_bad_input_exits_64() {
	local args rc
	for args in "--cores 0" "--mem-kb abc" "--mem-kb 1000" "--pool-size" "--bogus 1" "--wal-rate-kb -5" "--wal-rate-kb"; do
		rc=0
		# shellcheck disable=SC2086
		"$TV" $args >/dev/null 2>&1 || rc=$?
		assertEquals "$args" 64 "$rc"
	done
}

test_06_the_template_uses_every_value_and_explains_every_setting() {
	local out rendered line prev=""
	out=$("$TV" --mem-kb 4194304 --cores 2 --pool-size 20 --instances 1)
	rendered=$(mapfile -t v <<<"$out"; cpa_render "$TEMPLATE" "${v[@]}") || fail "rendering failed"
	assertNotContains "no placeholder is left" "$rendered" "{{"
	assertContains "$rendered" "max_connections = 35"
	assertContains "$rendered" "default_toast_compression = lz4"
	# Every setting line follows a comment line (its explanation) or another
	# setting of the same paragraph.
	while IFS= read -r line; do
		if [[ "$line" =~ ^[a-z_]+\ = ]]; then
			case "$prev" in
			'#'* | [a-z]*) ;;
			*) fail "no explanation above: $line" ;;
			esac
		fi
		prev=$line
	done <<<"$rendered"
	# Every GUC that tune-values prints is set by the template.
	while read -r line; do
		case "$line" in mem_mb | cores | pool_size | pool_instances | pool_total | connection_headroom | wal_rate_kb) continue ;; esac
		assertContains "template sets $line" "$rendered" "$line = "
	done < <(grep -E '^[a-z_]+=' <<<"$out" | cut -d= -f1)
}

test_07_postgresql_accepts_and_applies_the_rendered_file() {
	local out file
	tl_pg_start || fail "no throwaway cluster"
	out=$("$TV" --mem-kb 1048576 --cores 2 --pool-size 20 --instances 1)
	file=$TL_PGDIR/50-checkpoint-tuning.conf
	(mapfile -t v <<<"$out"; cpa_render "$TEMPLATE" "${v[@]}") >"$file" || fail "rendering failed"
	chmod 0644 "$file"
	printf "include '%s'\n" "$file" >>"$TL_PGDATA/postgresql.conf"
	# Before the restart, postmaster settings only wait to be applied.
	assertEquals "no setting is rejected" "" \
		"$(tl_psql_super -c "SELECT name || ': ' || error FROM pg_file_settings
			WHERE error IS NOT NULL AND error <> 'setting could not be applied'")"
	tl_pg_stop
	tl_pg_restart || fail "PostgreSQL did not restart with the tuning file"
	assertEquals 256MB "$(tl_sql 'SHOW shared_buffers')"
	assertEquals 35 "$(tl_sql 'SHOW max_connections')"
	assertEquals lz4 "$(tl_sql 'SHOW default_toast_compression')"
	assertEquals lz4 "$(tl_sql 'SHOW wal_compression')"
	assertEquals off "$(tl_sql 'SHOW jit')"
	assertEquals "nothing waits for a restart" 0 "$(tl_sql 'SELECT count(*) FROM pg_settings WHERE pending_restart')"
}

# in_memory_cgroup LIMIT CMD...: run CMD in a new cgroup whose memory limit is
# LIMIT bytes (cgroup v2 memory.max, or the v1 memory controller); prints
# CMD's output. The cgroup is removed afterwards.
in_memory_cgroup() {
	local limit=$1 dir file
	shift
	if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
		dir=/sys/fs/cgroup/cpa-t5002-$$
		file=memory.max
	elif [ -d /sys/fs/cgroup/memory ]; then
		dir=/sys/fs/cgroup/memory/cpa-t5002-$$
		file=memory.limit_in_bytes
	else
		echo "no memory cgroup controller here"
		return 1
	fi
	mkdir "$dir" || return 1
	echo "$limit" >"$dir/$file" || { rmdir "$dir"; return 1; }
	# shellcheck disable=SC2016 # expanded by the inner shell
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$dir" "$@"
	rmdir "$dir"
}

test_07_memory_comes_from_the_cgroup_limit_when_there_is_one() {
	local out host_mb
	host_mb=$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024))
	out=$(in_memory_cgroup $((1024 * 1024 * 1024)) "$TV" --pool-size 20 --instances 1) || fail "no cgroup: $out"
	assertEquals "the cgroup's 1 GB, not the host's $host_mb MB" 1024 "$(value mem_mb <<<"$out")"
	assertEquals "shared_buffers from the limit" 256MB "$(value shared_buffers <<<"$out")"
	assertEquals 768MB "$(value effective_cache_size <<<"$out")"
	# A limit above the host's memory changes nothing; no limit neither.
	out=$(in_memory_cgroup $(((host_mb + 4096) * 1024 * 1024)) "$TV" --pool-size 20 --instances 1) || fail "no cgroup"
	assertEquals "$host_mb" "$(value mem_mb <<<"$out")"
	assertEquals "$host_mb" "$("$TV" --pool-size 20 --instances 1 | value mem_mb)"
}

tl_run
