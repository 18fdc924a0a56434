#!/bin/bash
# t6600-patroni-cluster: the highly available path end to end. Three booted
# Debian 12 containers (tests/lib/container.sh) share this machine's
# loopback, each node on its own ports (sshd, PostgreSQL, Patroni's REST API,
# etcd client and peer, the agent's HTTP listener); ansible/site.yml
# provisions them from this host over ssh, as a controller does a fleet.
#
# The tests build on each other, in order: the first run (etcd, Patroni, one
# leader and two replicas, one of them synchronous, the agent ready on every
# node) and a second run that changes nothing; a failover under write load
# (the real LangGraph JS checkpointer through the multi-host URI, logging
# every acknowledged checkpoint; the leader's container killed): seconds until
# writes succeed again, acknowledged checkpoints missing (0 with
# synchronous_mode), the agents following without a restart; the old leader
# back as a replica through pg_rewind, `check` healthy there; a switchover
# (patronictl) under the same writer; the endpoints on a leader, a replica, a
# lagging replica and a node whose PostgreSQL is down; last, a failover with
# synchronous_mode off, its loss reported, not asserted.
#
# Figures are printed as "# FIGURE ..." lines.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$(dirname "$0")/lib/container.sh"

NODES=(a b c)
SUITE_START=
WORK=
# Per node (index 0-2): container state, and its ports.
N_PID=() N_DIR=() N_ROOT=() N_CONSOLE=() N_MACHINE=() N_NSPAWN=()
SSH_PORT=() PG_PORT=() REST_PORT=() ETCD_PORT=() PEER_PORT=() HTTP_PORT=()
PID_BEFORE=()
PB_LOG=''
PB_RC=''
PB_CHANGED=''
PB_SECONDS=''
RUN_NO=0
WRITER_PID=
WRITER_LOG=
CLUSTER_UP=
SETUP_PIDS=()

suite_setup() {
	local i
	SUITE_START=$(date +%s)
	WORK=$(tl_tmpdir) || return 1
	NODE_PATH=$("$TL_ROOT/tests/js/install.sh") || return 1
	JS_NODE=$("$TL_ROOT/tests/js/install.sh" --node) || return 1
	export NODE_PATH
	pick_ports || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$WORK/id" -C t6600 || return 1
	for i in 0 1 2; do
		tc_boot "t6600-${NODES[$i]}" || return 1
		save_node "$i"
	done
	# The three installs at once: each waits mostly on dpkg.
	for i in 0 1 2; do
		prepare_ssh "$i" &
		SETUP_PIDS+=("$!")
	done
	for i in 0 1 2; do
		wait "${SETUP_PIDS[$i]}" || return 1
	done
	write_inventory || return 1
	tl_log "suite set-up took $(($(date +%s) - SUITE_START))s"
}

suite_teardown() {
	stop_writer
	[ -n "$SUITE_START" ] && tl_log "suite wall time: $(($(date +%s) - SUITE_START))s"
	return 0
}

# pick_ports: 18 distinct free loopback ports.
pick_ports() {
	local used=" " p i k
	for i in 0 1 2; do
		for k in SSH_PORT PG_PORT REST_PORT ETCD_PORT PEER_PORT HTTP_PORT; do
			p=$(tl_free_port) || return 1
			while [[ "$used" == *" $p "* ]]; do p=$(tl_free_port) || return 1; done
			used+="$p "
			eval "${k}[$i]=$p"
		done
	done
}

save_node() {
	N_PID[$1]=$TC_PID N_DIR[$1]=$TC_DIR N_ROOT[$1]=$TC_ROOT N_CONSOLE[$1]=$TC_CONSOLE
	N_MACHINE[$1]=$TC_MACHINE N_NSPAWN[$1]=$TC_NSPAWN_PID
}

# use_node I: make node I the current container of container.sh.
use_node() {
	TC_PID=${N_PID[$1]} TC_DIR=${N_DIR[$1]} TC_ROOT=${N_ROOT[$1]} TC_CONSOLE=${N_CONSOLE[$1]}
	TC_MACHINE=${N_MACHINE[$1]} TC_NSPAWN_PID=${N_NSPAWN[$1]}
	TC_ARGS=()
}

# on I CMD...: run CMD in node I.
on() {
	local i=$1
	shift
	use_node "$i"
	tc_exec "$@"
}

# prepare_ssh I: sshd on its own loopback port (configured before it is
# installed, so it never listens on 22), root's key, python3 for Ansible.
prepare_ssh() {
	local i=$1 root=${N_ROOT[$1]}
	mkdir -p "$root/etc/ssh/sshd_config.d" "$root/root/.ssh" || return 1
	printf 'Port %s\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n' \
		"${SSH_PORT[$i]}" >"$root/etc/ssh/sshd_config.d/t6600.conf"
	install -m 0600 "$WORK/id.pub" "$root/root/.ssh/authorized_keys" || return 1
	if ! on "$i" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		openssh-server python3 python3-apt >"$WORK/apt-$i.log" 2>&1; then
		tl_log "installing sshd in node ${NODES[$i]} failed: $(tail -n 5 "$WORK/apt-$i.log")"
		return 1
	fi
}

write_inventory() {
	local i
	{
		printf -- '---\nall:\n  children:\n    checkpoint_db_cluster:\n      hosts:\n'
		for i in 0 1 2; do
			cat <<-EOF
				        node-${NODES[$i]}:
				          ansible_host: 127.0.0.1
				          ansible_port: ${SSH_PORT[$i]}
				          patroni_address: 127.0.0.1
				          cpa_pg_port: "${PG_PORT[$i]}"
				          patroni_restapi_port: "${REST_PORT[$i]}"
				          patroni_etcd_client_port: "${ETCD_PORT[$i]}"
				          patroni_etcd_peer_port: "${PEER_PORT[$i]}"
				          patroni_agent_http_port: "${HTTP_PORT[$i]}"
			EOF
		done
		cat <<-EOF
			      vars:
			        ansible_user: root
			        ansible_ssh_private_key_file: $WORK/id
			        ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
			        ansible_python_interpreter: /usr/bin/python3
			        # The repository is on each node already (tc_boot copies it).
			        checkpoint_agent_copy_source: false
			        checkpoint_agent_source_dir: /opt/checkpoint-agent
			        # No network beyond the warm apt cache.
			        patroni_apt_cache_valid_time: 315360000
			        checkpoint_agent_apt_cache_valid_time: 315360000
		EOF
	} >"$WORK/inventory.yml"
}

# run_playbook: site.yml from this host; output in $WORK/playbook-N.log.
run_playbook() {
	local start recap
	RUN_NO=$((RUN_NO + 1))
	PB_LOG=$WORK/playbook-$RUN_NO.log
	start=$(date +%s.%N)
	ANSIBLE_CONFIG=$TL_ROOT/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=default \
		ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_FORKS=3 \
		ansible-playbook -i "$WORK/inventory.yml" "$TL_ROOT/ansible/site.yml" >"$PB_LOG" 2>&1
	PB_RC=$?
	PB_SECONDS=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	recap=$(grep -E '^node-[abc] +: ok=' "$PB_LOG")
	PB_CHANGED=$(sed -n 's/.* changed=\([0-9]*\).*/\1/p' <<<"$recap" | awk '{ s += $1 } END { print s + 0 }')
	tl_log "playbook run $RUN_NO: exit $PB_RC in ${PB_SECONDS}s; changed $PB_CHANGED"
	if [ "$PB_RC" -ne 0 ]; then
		grep -E '^(fatal|failed):' -A3 "$PB_LOG" | cut -c1-400 | head -n 30 >&2
	fi
}

changed_tasks() {
	awk '/^(TASK|RUNNING HANDLER) \[/ { t = $0; sub(/^[A-Z ]+\[/, "", t); sub(/\] \**$/, "", t) }
		/^changed: / { print t }' "$PB_LOG" | sort -u
}

# members: "name role state" of each member, from the first live node's patronictl.
members() {
	local i
	for i in 0 1 2; do
		[ -d "/proc/${N_PID[$i]}" ] || continue
		on "$i" patronictl -c /etc/patroni/config.yml list -f json 2>/dev/null |
			python3 -c 'import json, sys; [print(m["Member"], m["Role"], m["State"]) for m in json.load(sys.stdin)]' &&
			return 0
	done
	return 1
}

# leader_index: the node index of the current leader (empty when none).
leader_index() {
	local name
	name=$(members | awk '$2 == "Leader" { print $1 }')
	for i in 0 1 2; do
		[ "node-${NODES[$i]}" = "$name" ] && { printf '%s\n' "$i"; return 0; }
	done
	return 1
}

# psql_on I SQL: one value, as postgres on node I's own server.
psql_on() {
	on "$1" runuser -u postgres -- psql -X -q -At -h /var/run/postgresql -p "${PG_PORT[$1]}" \
		-d langgraph_checkpoints -c "$2"
}

# http I PATH: the status code of the agent's endpoint on node I.
http() {
	curl -s -o "$WORK/body" -w '%{http_code}' --max-time 10 "http://127.0.0.1:${HTTP_PORT[$1]}$2"
}

wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while [ "$SECONDS" -lt "$deadline" ]; do
		"$@" && return 0
		sleep 0.5
	done
	return 1
}

http_is() { [ "$(http "$1" "$2")" = "$3" ]; }

cluster_uri() {
	printf 'postgresql://ai_agent@127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s/langgraph_checkpoints?target_session_attrs=read-write\n' \
		"${PG_PORT[0]}" "${PG_PORT[1]}" "${PG_PORT[2]}"
}

# start_writer LABEL: the LangGraph JS writer, in the background.
start_writer() {
	WRITER_LOG=$WORK/writer-$1.log
	: >"$WRITER_LOG"
	"$JS_NODE" "$TL_ROOT/tests/js/ha-writer.cjs" --uri "$(cluster_uri)" --password-file "$WORK/app-password" \
		--log "$WRITER_LOG" --label "$1" >"$WORK/writer-$1.json" 2>"$WORK/writer-$1.err" &
	WRITER_PID=$!
}

stop_writer() {
	[ -n "$WRITER_PID" ] || return 0
	kill -TERM "$WRITER_PID" 2>/dev/null
	wait "$WRITER_PID" 2>/dev/null
	WRITER_PID=
}

acked() { grep -vc ' ERROR ' "$WRITER_LOG"; }

acks_at_least() { [ "$(acked)" -ge "$1" ]; }

# wait_acks N [SECONDS]: until the writer has N more acknowledged checkpoints.
wait_acks() {
	wait_for "${2:-60}" acks_at_least $(($(acked) + $1))
}

# leader_is_not I: there is a leader, and it is not node I.
leader_is_not() {
	local l
	l=$(leader_index) && [ "$l" != "$1" ]
}

node_gone() { ! [ -d "/proc/${N_PID[$1]}" ]; }

# rejoined I: node I is a running replica again.
rejoined() {
	members | grep -Eq "^node-${NODES[$1]} (Replica|Sync Standby) (running|streaming)$"
}

check_ok() {
	on "$1" /usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf check >/dev/null 2>&1
}

no_sync_standby() { ! members | grep -q ' Sync Standby '; }

# write_pause MS_EVENT: seconds from the event to the first acknowledgement after it.
write_pause() {
	awk -v t="$1" '$2 != "ERROR" && $1 > t { printf "%.1f", ($1 - t) / 1000; exit }' "$WRITER_LOG"
}

# missing_on I LABEL: acknowledged checkpoints of LABEL's writer not in node I's database.
missing_on() {
	psql_on "$1" "SELECT thread_id || ' ' || checkpoint_id FROM public.checkpoints WHERE thread_id LIKE '$2-%'" |
		sort >"$WORK/present-$2"
	awk '$2 != "ERROR" { print $2, $3 }' "$WRITER_LOG" | sort | comm -23 - "$WORK/present-$2" | wc -l
}

now_ms() { date +%s%3N; }

# agent_pid I: the agent's main PID on node I.
agent_pid() {
	on "$1" systemctl show -p MainPID --value checkpoint-agent.service
}

# kill_node I: the node's container killed at once (SIGKILL to its PID 1 ends every process in it).
kill_node() {
	kill -KILL "${N_PID[$1]}"
	wait_for 30 node_gone "$1"
}

# restart_node I: boot the killed node's root again.
restart_node() {
	use_node "$1"
	tc_reboot || return 1
	save_node "$1"
}

# need_cluster: the later tests build on the first; without a cluster they are skipped, not waited out.
need_cluster() {
	[ -n "$CLUSTER_UP" ] && return 0
	fail "no cluster: the first run failed"
	startSkipping
	return 1
}

test_01_first_run_builds_the_cluster() {
	local m i leader
	run_playbook
	assertEquals "first run exit code (see $PB_LOG)" 0 "$PB_RC" || return
	CLUSTER_UP=1
	m=$(members)
	tl_log "members after the first run: $(tr '\n' ';' <<<"$m")"
	assertEquals "one leader" 1 "$(grep -c ' Leader ' <<<"$m")"
	assertEquals "one synchronous standby (synchronous_mode)" 1 "$(grep -c ' Sync Standby ' <<<"$m")"
	assertEquals "three members running" 3 "$(grep -Ec ' (running|streaming)$' <<<"$m")"
	leader=$(leader_index)
	assertEquals "schema at v9 on the leader" 9 "$(psql_on "$leader" 'SELECT max(v) FROM public.checkpoint_migrations')"
	for i in 0 1 2; do
		assertEquals "agent on node ${NODES[$i]}" active "$(on "$i" systemctl is-active checkpoint-agent.service)"
		assertEquals "Debian's cluster unit is masked on ${NODES[$i]}" masked \
			"$(on "$i" systemctl is-enabled postgresql@15-main.service 2>/dev/null)"
		assertEquals "/ready on ${NODES[$i]}" 200 "$(http "$i" /ready)"
		assertEquals "no trust in pg_hba on ${NODES[$i]}" 0 \
			"$(on "$i" bash -c "grep -Ev '^[[:space:]]*(#|$)' /mnt/data/postgresql/15/main/pg_hba.conf | grep -vc 'scram-sha-256\|peer'")"
	done
	assertEquals "/primary on the leader's node" 200 "$(http "$leader" /primary)"
	assertEquals "Patroni's unsafe endpoints need the password" 401 \
		"$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:${REST_PORT[$leader]}/restart")"
	assertEquals "the app env file names every node, read-write" 1 \
		"$(on 0 grep -c "@127.0.0.1:${PG_PORT[0]},127.0.0.1:${PG_PORT[1]},127.0.0.1:${PG_PORT[2]}/langgraph_checkpoints?target_session_attrs=read-write" /etc/checkpoint-agent/app.env)"
	assertEquals "the same application password on every node" 1 \
		"$(for i in 0 1 2; do on "$i" sed -n 's/^password=//p' /etc/checkpoint-agent/credentials | sha256sum; done | sort -u | wc -l)"
	on 0 sed -n 's/^password=//p' /etc/checkpoint-agent/credentials >"$WORK/app-password"
	chmod 0600 "$WORK/app-password"
}

test_02_second_run_changes_nothing() {
	need_cluster || return
	run_playbook
	assertEquals "second run exit code (see $PB_LOG)" 0 "$PB_RC"
	assertEquals "second run: changed (tasks: $(changed_tasks | tr '\n' ';'))" 0 "$PB_CHANGED"
	tl_log "FIGURE no-change re-run of the three nodes: ${PB_SECONDS}s"
}

# failover_under_load LABEL: kill the leader's container while the writer
# writes; sets FO_OLD, FO_NEW, FO_PAUSE, FO_MISSING, FO_ACKED, FO_READY.
failover_under_load() {
	local label=$1 t_kill i
	FO_OLD=$(leader_index)
	start_writer "$label"
	wait_acks 50 || fail "the writer did not write: $(tail -n 3 "$WORK/writer-$label.err" "$WRITER_LOG")"
	PID_BEFORE=()
	for i in 0 1 2; do PID_BEFORE+=("$(agent_pid "$i")"); done
	t_kill=$(now_ms)
	kill_node "$FO_OLD"
	wait_for 180 leader_is_not "$FO_OLD" || fail "no new leader"
	FO_NEW=$(leader_index)
	wait_acks 50 120 || fail "writes did not resume: $(tail -n 3 "$WRITER_LOG")"
	FO_PAUSE=$(write_pause "$t_kill")
	wait_for 120 http_is "$FO_NEW" /ready 200
	FO_READY=$(awk -v a="$t_kill" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
	stop_writer
	FO_ACKED=$(acked)
	FO_MISSING=$(missing_on "$FO_NEW" "$label")
}

test_03_failover_under_write_load_loses_nothing_with_synchronous_mode() {
	local i
	need_cluster || return
	failover_under_load sync
	tl_log "FIGURE failover (synchronous_mode on, leader node-${NODES[$FO_OLD]} killed): writes again after ${FO_PAUSE}s; $FO_ACKED checkpoints acknowledged, $FO_MISSING missing; the agent on the new leader node-${NODES[$FO_NEW]} ready ${FO_READY}s after the kill"
	assertEquals "acknowledged checkpoints missing on the new leader" 0 "$FO_MISSING"
	assertNotNull "writes resumed" "$FO_PAUSE"
	for i in 0 1 2; do
		[ "$i" = "$FO_OLD" ] && continue
		assertEquals "the agent on node-${NODES[$i]} was not restarted (same PID)" "${PID_BEFORE[$i]}" "$(agent_pid "$i")"
		assertEquals "and is ready" 200 "$(http "$i" /ready)"
		assertContains "its journal says the leader moved" \
			"$(on "$i" journalctl -u checkpoint-agent.service --no-pager -q)" "the leader moved: from 127.0.0.1:${PG_PORT[$FO_OLD]}"
		assertEquals "its watchdog never fired (NRestarts)" 0 "$(on "$i" systemctl show -p NRestarts --value checkpoint-agent.service)"
	done
	assertEquals "/primary on the new leader's node" 200 "$(http "$FO_NEW" /primary)"
}

test_04_the_old_leader_rejoins_as_a_replica() {
	local t0 role out
	need_cluster || return
	t0=$SECONDS
	restart_node "$FO_OLD" || fail "the old leader's container did not boot"
	wait_for 180 rejoined "$FO_OLD"
	role=$(members | awk -v n="node-${NODES[$FO_OLD]}" '$1 == n { print $2, $3, $4 }')
	tl_log "FIGURE the old leader back as '$role' $((SECONDS - t0))s after its container started again"
	assertContains "the old leader is a replica" "$role" "running"
	assertNotContains "and not the leader" "$role" "Leader"
	assertTrue "Patroni rewound it (pg_rewind)" \
		"on $FO_OLD journalctl -u patroni.service --no-pager -q | grep -q 'pg_rewind\|rewind'"
	wait_for 120 check_ok "$FO_OLD"
	out=$(on "$FO_OLD" /usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf check 2>&1)
	assertEquals "check on the rejoined node: $out" 0 "$(on "$FO_OLD" /usr/local/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf check >/dev/null 2>&1; echo $?)"
	assertContains "it is a streaming standby" "$out" "replication: standby streaming from"
	assertEquals "/replica on the rejoined node" 200 "$(http "$FO_OLD" /replica)"
}

test_05_switchover_under_write_load_loses_nothing() {
	local old new cand t0 missing pause
	need_cluster || return
	old=$(leader_index)
	cand=$(members | awk '$2 == "Sync" { print $1 }' | head -n 1)
	start_writer switchover
	wait_acks 50 || fail "the writer did not write"
	t0=$(now_ms)
	on "$old" patronictl -c /etc/patroni/config.yml switchover --leader "node-${NODES[$old]}" \
		--candidate "$cand" --force >"$WORK/switchover.log" 2>&1 || fail "switchover: $(cat "$WORK/switchover.log")"
	wait_for 120 leader_is_not "$old" || fail "no new leader"
	new=$(leader_index)
	wait_acks 50 120 || fail "writes did not resume"
	pause=$(write_pause "$t0")
	stop_writer
	missing=$(missing_on "$new" switchover)
	tl_log "FIGURE switchover node-${NODES[$old]} -> node-${NODES[$new]}: writes paused ${pause}s; $(acked) acknowledged, $missing missing"
	assertEquals "acknowledged checkpoints missing after the switchover" 0 "$missing"
	assertEquals "the new leader is the candidate" "$cand" "node-${NODES[$new]}"
	wait_for 60 http_is "$old" /replica 200
	assertEquals "/replica on the old leader" 200 "$(http "$old" /replica)"
}

test_06_endpoints_on_leader_replica_lagging_replica_and_down_node() {
	local l r1 r2
	need_cluster || return
	l=$(leader_index)
	r1=$(( (l + 1) % 3 )) r2=$(( (l + 2) % 3 ))
	assertEquals "leader /primary" 200 "$(http "$l" /primary)"
	assertEquals "leader /replica" 503 "$(http "$l" /replica)"
	assertEquals "replica /primary" 503 "$(http "$r1" /primary)"
	assertEquals "replica /replica" 200 "$(http "$r1" /replica)"
	assertEquals "replica /health" 200 "$(http "$r1" /health)"
	on "$r1" runuser -u postgres -- psql -X -q -h /var/run/postgresql -p "${PG_PORT[$r1]}" -d postgres \
		-c 'SELECT pg_wal_replay_pause()' >/dev/null
	psql_on "$l" "CREATE TABLE t6600_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) AS g" >/dev/null
	wait_for 30 http_is "$r1" '/replica?lag=1MB' 503
	assertEquals "lagging replica /replica?lag=1MB" 503 "$(http "$r1" '/replica?lag=1MB')"
	assertEquals "lagging replica /replica?lag=1GB" 200 "$(http "$r1" '/replica?lag=1GB')"
	on "$r1" runuser -u postgres -- psql -X -q -h /var/run/postgresql -p "${PG_PORT[$r1]}" -d postgres \
		-c 'SELECT pg_wal_replay_resume()' >/dev/null
	psql_on "$l" "DROP TABLE t6600_filler" >/dev/null
	on "$r2" systemctl stop patroni.service
	wait_for 30 http_is "$r2" /health 503
	assertEquals "PostgreSQL down: /health" 503 "$(http "$r2" /health)"
	assertEquals "PostgreSQL down: /replica" 503 "$(http "$r2" /replica)"
	assertEquals "PostgreSQL down: /ready (the database is the leader, still writable)" 200 "$(http "$r2" /ready)"
	on "$r2" systemctl start patroni.service
	wait_for 120 http_is "$r2" /replica 200
	assertEquals "back: /replica" 200 "$(http "$r2" /replica)"
}

test_07_failover_without_synchronous_mode_reports_its_loss() {
	need_cluster || return
	on "$(leader_index)" patronictl -c /etc/patroni/config.yml edit-config --force \
		-s synchronous_mode=false >/dev/null 2>&1 || fail "edit-config"
	wait_for 60 no_sync_standby
	failover_under_load async
	tl_log "FIGURE failover (synchronous_mode off, leader node-${NODES[$FO_OLD]} killed): writes again after ${FO_PAUSE}s; $FO_ACKED checkpoints acknowledged, $FO_MISSING missing (asynchronous replication: not asserted)"
	assertNotNull "writes resumed" "$FO_PAUSE"
	assertEquals "the agent on the new leader is ready" 200 "$(http "$FO_NEW" /ready)"
}

tl_run
