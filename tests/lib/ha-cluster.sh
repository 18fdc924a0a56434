# shellcheck shell=bash
# shellcheck disable=SC2034 # the FO_, SW_ and TC_ variables are read by the suites and container.sh
# shellcheck disable=SC2153 # TL_ROOT comes from test-lib.sh
# ha-cluster.sh: a three-node Patroni cluster in booted containers, for
# tests/t6600-patroni-cluster.sh and bench/ha-failover.sh. Source it after
# tests/lib/test-lib.sh and tests/lib/container.sh.
#
# The nodes a, b, c (indexes 0-2) are three containers sharing this machine's
# loopback, each on its own ports (sshd, PostgreSQL, Patroni's REST API, etcd
# client and peer, the agent's HTTP listener); ansible/site.yml provisions
# them from this host over ssh, as a controller does a fleet.
#
#   ha_boot_cluster           boots the nodes, starts sshd on each, writes
#                             $WORK/inventory.yml (call it directly, not in $(...))
#   run_playbook              site.yml once; PB_RC, PB_CHANGED, PB_SECONDS, PB_LOG
#   members, leader_index     patronictl's view: "name role state" lines; the leader's index
#   failover_under_load LABEL the leader's container killed while the LangGraph
#                             JS writer writes; FO_* figures (below)
#   switchover_under_load LABEL  patronictl switchover under the writer; SW_* figures
#   on I CMD..., psql_on I SQL, http I PATH, patroni_http I PATH
#
# The nodes boot from a root derived once from the cached base (container.sh)
# with what the playbook installs already installed (HA_PACKAGES), so a run
# measures provisioning rather than dpkg. HA_FRESH=1: from the bare base, the
# playbook installs everything itself (from the base's warm apt cache).

NODES=(a b c)
WORK=
# Per node: container state, and its ports.
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
JS_NODE=
HA_NAME=${HA_NAME:-ha}

# What the playbook installs on a node (roles patroni and checkpoint_agent:
# the agent from its package, so its libraries but no compiler), and sshd
# and python3 for Ansible.
HA_PACKAGES=(
	openssh-server python3 python3-apt
	postgresql-15 postgresql-client-15 postgresql-contrib patroni python3-etcd python3-psycopg2 acl sudo
	etcd-server etcd-client
	libpq5 libconfig9 libsystemd0 libmicrohttpd12 libjson-c5
)
# The agent on the nodes: installed from the package ha_agent_deb builds.
AGENT=/usr/bin/checkpoint-agent
AGENT_DEB=
# Run in the root before the install, as the patroni role does on a fresh
# host: no Debian cluster, etcd not started with its single-member default.
# sshd is masked too: each node gets its own port before it starts.
HA_DERIVE_SCRIPT='mkdir -p /etc/postgresql-common/createcluster.d
printf "create_main_cluster = false\n" >/etc/postgresql-common/createcluster.d/00-ha-root.conf
ln -sf /dev/null /etc/systemd/system/etcd.service
ln -sf /dev/null /etc/systemd/system/ssh.service'
# Overlays of the cached root rather than three copies of it (container.sh).
TC_OVERLAY=1
if [ -z "${HA_FRESH:-}" ]; then
	TC_DERIVE_NAME=ha-node
	TC_DERIVE_SCRIPT=$HA_DERIVE_SCRIPT
	TC_DERIVE_PACKAGES=("${HA_PACKAGES[@]}")
fi

TL_CLEANUP_HOOKS=(stop_writer "${TL_CLEANUP_HOOKS[@]}")

# ha_boot_cluster: the three nodes, sshd on each, the inventory.
ha_boot_cluster() {
	local i start pids=()
	start=$(date +%s)
	WORK=$(tl_tmpdir) || return 1
	NODE_PATH=$("$TL_ROOT/tests/js/install.sh") || return 1
	JS_NODE=$("$TL_ROOT/tests/js/install.sh" --node) || return 1
	export NODE_PATH
	pick_ports || return 1
	ha_agent_deb || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$WORK/id" -C "$HA_NAME" || return 1
	for i in 0 1 2; do
		tc_boot "$HA_NAME-${NODES[$i]}" || return 1
		save_node "$i"
	done
	for i in 0 1 2; do
		prepare_ssh "$i" &
		pids+=("$!")
	done
	for i in 0 1 2; do
		wait "${pids[$i]}" || return 1
	done
	write_inventory || return 1
	tl_log "three nodes booted, sshd up, in $(($(date +%s) - start))s"
}

# ha_agent_deb: the agent's Debian package (dpkg-buildpackage, as t4300
# builds it), built once on this host for the three nodes (the role's
# checkpoint_agent_deb) instead of three builds in the containers. Cached
# under $TC_CACHE_DIR/agent-deb by a digest of the files the package is built
# from (git's view of agent/, sql/, debian/, systemd/, man/, completion/,
# tests/unit/, Makefile, VERSION, uncommitted edits included; the documents
# it ships do not count), so an unchanged tree reuses it. Sets AGENT_DEB.
ha_agent_deb() {
	local key dir build start deb
	key=$(cd "$TL_ROOT" && git ls-files -- agent sql debian systemd man completion tests/unit Makefile VERSION 2>/dev/null |
		xargs -r sha256sum | sha256sum | cut -c1-16) || key=''
	# No digest (not a git checkout): built each time, into this run's folder.
	dir=$TC_CACHE_DIR/agent-deb/$key
	[ -n "$key" ] || dir=$(tl_tmpdir) || return 1
	AGENT_DEB=$dir/checkpoint-agent_$(cat "$TL_ROOT/VERSION")_$(dpkg --print-architecture).deb
	if [ -f "$AGENT_DEB" ]; then
		tl_log "the agent's package from the cache: $AGENT_DEB"
		return 0
	fi
	build=$(tl_tmpdir) || return 1
	mkdir "$build/src" || return 1
	tar -C "$TL_ROOT" --exclude-vcs --exclude='./agent/checkpoint-agent*' --exclude='./agent/sql_embed.c*' \
		--exclude='./tests/unit/run-unit*' --exclude='./tests/tools/notify-listen' --exclude=node_modules \
		--exclude='./debian/checkpoint-agent' --exclude='./debian/.debhelper' -cf - . |
		tar -C "$build/src" -xf - || return 1
	start=$SECONDS
	# nocheck: the unit tests are the suite "unit"'s job
	if ! (cd "$build/src" && DEB_BUILD_OPTIONS='nocheck parallel=2' dpkg-buildpackage -us -uc -b) >"$build/build.log" 2>&1; then
		tl_log "dpkg-buildpackage failed; its last lines:"
		tail -n 30 "$build/build.log" >&2
		return 1
	fi
	tl_log "dpkg-buildpackage took $((SECONDS - start))s"
	deb=$build/$(basename "$AGENT_DEB")
	mkdir -p "$dir" && mv "$deb" "$AGENT_DEB.tmp" && mv "$AGENT_DEB.tmp" "$AGENT_DEB"
}

# pick_ports: 18 distinct free loopback ports, below the kernel's ephemeral
# range (ip_local_port_range starts at 32768): the listeners bind minutes
# after the pick, and on a busy machine an outgoing connection's local port
# in that range can take one in between.
pick_ports() {
	local used=" " p i k
	for i in 0 1 2; do
		for k in SSH_PORT PG_PORT REST_PORT ETCD_PORT PEER_PORT HTTP_PORT; do
			p=$(tl_free_port) || return 1
			while [[ "$used" == *" $p "* ]] || [ "$p" -ge 32768 ]; do p=$(tl_free_port) || return 1; done
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
# installed or unmasked, so it never listens on 22), root's key, python3 for
# Ansible.
prepare_ssh() {
	local i=$1 root=${N_ROOT[$1]}
	mkdir -p "$root/etc/ssh/sshd_config.d" "$root/root/.ssh" || return 1
	printf 'Port %s\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n' \
		"${SSH_PORT[$i]}" >"$root/etc/ssh/sshd_config.d/ha-cluster.conf"
	install -m 0600 "$WORK/id.pub" "$root/root/.ssh/authorized_keys" || return 1
	if [ -e "$root/usr/sbin/sshd" ]; then
		# the derived root: installed, masked
		on "$i" systemctl unmask ssh.service >"$WORK/apt-$i.log" 2>&1 &&
			on "$i" systemctl enable --now ssh.service >>"$WORK/apt-$i.log" 2>&1 && return 0
		tl_log "starting sshd in node ${NODES[$i]} failed: $(tail -n 5 "$WORK/apt-$i.log")"
		return 1
	fi
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
			        # Ansible's ssh_args without -C: compressing loopback traffic only costs CPU.
			        ansible_ssh_args: -o ControlMaster=auto -o ControlPersist=600s
			        ansible_python_interpreter: /usr/bin/python3
			        # The agent's package, built once on this host (ha_agent_deb).
			        checkpoint_agent_deb: $AGENT_DEB
			        # No network beyond the warm apt cache.
			        # Another network, for its pg_hba line (hostssl); nothing connects from it.
			        cpa_allowed_cidrs: [10.99.0.0/24]
			        patroni_apt_cache_valid_time: 315360000
			        checkpoint_agent_apt_cache_valid_time: 315360000
		EOF
	} >"$WORK/inventory.yml"
}

# run_playbook [ARGS]: site.yml from this host (ARGS to ansible-playbook);
# output in $WORK/playbook-N.log.
run_playbook() {
	local start recap
	RUN_NO=$((RUN_NO + 1))
	PB_LOG=$WORK/playbook-$RUN_NO.log
	start=$(date +%s.%N)
	ANSIBLE_CONFIG=$TL_ROOT/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=default \
		ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_FORKS=3 ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks \
		ansible-playbook -i "$WORK/inventory.yml" "$@" "$TL_ROOT/ansible/site.yml" >"$PB_LOG" 2>&1
	PB_RC=$?
	PB_SECONDS=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	recap=$(grep -E '^node-[abc] +: ok=' "$PB_LOG")
	PB_CHANGED=$(sed -n 's/.* changed=\([0-9]*\).*/\1/p' <<<"$recap" | awk '{ s += $1 } END { print s + 0 }')
	tl_log "playbook run $RUN_NO: exit $PB_RC in ${PB_SECONDS}s; changed $PB_CHANGED; slowest tasks: $(slowest_tasks)"
	if [ "$PB_RC" -ne 0 ] && [ -z "${PB_EXPECT_FAILURE:-}" ]; then
		grep -E '^(fatal|failed):' -A3 "$PB_LOG" | cut -c1-400 | head -n 30 >&2
		journals_of_failed_units >&2
	fi
}

# journals_of_failed_units: the last lines of the agent's and Patroni's
# journals on every live node (a failed run is otherwise gone with its containers).
journals_of_failed_units() {
	local i
	for i in 0 1 2; do
		[ -d "/proc/${N_PID[$i]}" ] || continue
		printf '# node-%s: the agent and Patroni, last lines of the journal:\n' "${NODES[$i]}"
		on "$i" journalctl -u checkpoint-agent.service -u patroni.service --no-pager -q -n 25 -o short-monotonic |
			cut -c1-300
	done
}

# slowest_tasks: the three slowest tasks of the last run (profile_tasks' summary).
slowest_tasks() {
	grep -E ' -+ [0-9.]+s$' "$PB_LOG" | head -n 3 | sed -E 's/ -+ / /' | tr '\n' ';'
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
	# grep -c, not -q: grep -q stops reading, and patronictl's reader then dies of EPIPE, loudly
	[ "$(members | grep -Ec "^node-${NODES[$1]} (Replica|Sync Standby) (running|streaming)$")" -gt 0 ]
}

check_ok() {
	on "$1" "$AGENT" -c /etc/checkpoint-agent/agent.conf check >/dev/null 2>&1
}

no_sync_standby() { [ "$(members | grep -c ' Sync Standby ')" -eq 0 ]; }

# write_pause MS_EVENT: seconds from the event to the first acknowledgement after it.
# The first acknowledgement after the first error that follows the event: a
# put already in flight may still be acknowledged just after it.
write_pause() {
	awk -v t="$1" '$1 > t && $2 == "ERROR" { e = 1 }
		e && $2 != "ERROR" { printf "%.1f", ($1 - t) / 1000; exit }' "$WRITER_LOG"
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

# patroni_http I PATH: the status code of Patroni's own REST endpoint on node I.
patroni_http() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:${REST_PORT[$1]}$2"
}

# since_ms MS: seconds since the Unix time MS (milliseconds), one decimal.
since_ms() {
	awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'
}

# ready_everywhere_but I: the agent's /ready is 200 on every live node but I.
ready_everywhere_but() {
	local i
	for i in 0 1 2; do
		[ "$i" = "$1" ] && continue
		http_is "$i" /ready 200 || return 1
	done
}

# failover_under_load LABEL: kill the leader's container while the writer
# writes. Sets FO_OLD and FO_NEW (node indexes), and in seconds after the
# kill: FO_PATRONI (Patroni's GET /primary 200 on the new leader),
# FO_PRIMARY (the agent's /primary 200 there), FO_READY (the agent's /ready
# 200 on both live nodes), FO_PAUSE (the first acknowledged write); FO_ACKED
# and FO_MISSING (acknowledged checkpoints, and those not on the new leader).
# Returns 1 with FO_ERROR set when a step does not happen in time.
failover_under_load() {
	local label=$1 t_kill i deadline
	FO_ERROR='' FO_NEW='' FO_PATRONI='' FO_PRIMARY='' FO_READY='' FO_PAUSE='' FO_ACKED='' FO_MISSING=''
	FO_OLD=$(leader_index) || { FO_ERROR="no leader before the kill"; return 1; }
	start_writer "$label"
	if ! wait_acks 50; then
		FO_ERROR="the writer did not write: $(tail -n 3 "$WORK/writer-$label.err" "$WRITER_LOG")"
		stop_writer
		return 1
	fi
	PID_BEFORE=()
	for i in 0 1 2; do PID_BEFORE+=("$(agent_pid "$i")"); done
	t_kill=$(now_ms)
	kill_node "$FO_OLD"
	# Patroni's endpoint and the agent's, side by side, every 0.2 s.
	deadline=$((SECONDS + 180))
	while [ "$SECONDS" -lt "$deadline" ] && { [ -z "$FO_PRIMARY" ] || [ -z "$FO_READY" ]; }; do
		for i in 0 1 2; do
			[ "$i" = "$FO_OLD" ] && continue
			if [ -z "$FO_PATRONI" ] && [ "$(patroni_http "$i" /primary)" = 200 ]; then
				FO_NEW=$i
				FO_PATRONI=$(since_ms "$t_kill")
			fi
		done
		if [ -n "$FO_NEW" ] && [ -z "$FO_PRIMARY" ] && http_is "$FO_NEW" /primary 200; then
			FO_PRIMARY=$(since_ms "$t_kill")
		fi
		if [ -z "$FO_READY" ] && ready_everywhere_but "$FO_OLD"; then
			FO_READY=$(since_ms "$t_kill")
		fi
		sleep 0.2
	done
	if [ -z "$FO_NEW" ] || [ -z "$FO_PRIMARY" ] || [ -z "$FO_READY" ]; then
		FO_ERROR="within 180 s: new leader '${FO_NEW}' (Patroni ${FO_PATRONI:-never}), agent /primary ${FO_PRIMARY:-never}, /ready ${FO_READY:-never}"
		stop_writer
		return 1
	fi
	if ! wait_acks 50 120; then
		FO_ERROR="writes did not resume: $(tail -n 3 "$WRITER_LOG")"
		stop_writer
		return 1
	fi
	FO_PAUSE=$(write_pause "$t_kill")
	stop_writer
	FO_ACKED=$(acked)
	FO_MISSING=$(missing_on "$FO_NEW" "$label")
}

# switchover_under_load LABEL: patronictl switchover to the synchronous
# standby (or a replica) while the writer writes. Sets SW_OLD, SW_NEW,
# SW_CANDIDATE, SW_PAUSE (seconds from the command to the first
# acknowledged write after the longest gap), SW_ACKED, SW_MISSING; 1 with
# SW_ERROR set on failure.
switchover_under_load() {
	local label=$1 t0
	SW_ERROR='' SW_NEW='' SW_PAUSE='' SW_ACKED='' SW_MISSING=''
	SW_OLD=$(leader_index) || { SW_ERROR="no leader"; return 1; }
	SW_CANDIDATE=$(members | awk '$2 == "Sync" { print $1 }' | head -n 1)
	[ -n "$SW_CANDIDATE" ] || SW_CANDIDATE=$(members | awk '$2 == "Replica" { print $1 }' | head -n 1)
	start_writer "$label"
	if ! wait_acks 50; then
		SW_ERROR="the writer did not write"
		stop_writer
		return 1
	fi
	t0=$(now_ms)
	if ! on "$SW_OLD" patronictl -c /etc/patroni/config.yml switchover --leader "node-${NODES[$SW_OLD]}" \
		--candidate "$SW_CANDIDATE" --force >"$WORK/switchover-$label.log" 2>&1; then
		SW_ERROR="switchover: $(tail -n 5 "$WORK/switchover-$label.log")"
		stop_writer
		return 1
	fi
	if ! wait_for 120 leader_is_not "$SW_OLD"; then
		SW_ERROR="no new leader within 120 s"
		stop_writer
		return 1
	fi
	SW_NEW=$(leader_index)
	if ! wait_acks 50 120; then
		SW_ERROR="writes did not resume: $(tail -n 3 "$WRITER_LOG")"
		stop_writer
		return 1
	fi
	SW_PAUSE=$(longest_gap_after "$t0")
	stop_writer
	SW_ACKED=$(acked)
	SW_MISSING=$(missing_on "$SW_NEW" "$label")
}

# longest_gap_after MS: the longest time between two acknowledged writes after MS (seconds).
longest_gap_after() {
	awk -v t="$1" '$2 != "ERROR" { if (p != "" && $1 > t && $1 - p > g) g = $1 - p; p = $1 }
		END { printf "%.1f", g / 1000 }' "$WRITER_LOG"
}
