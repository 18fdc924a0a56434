# shellcheck shell=bash
# container.sh: booted Debian 12 containers (systemd-nspawn) for the suites
# that need a real systemd as PID 1. Source it after test-lib.sh.
#
#   tc_base_rootfs        prints the path of the cached base root: a
#                         debootstrapped Debian 12 (minbase + systemd,
#                         systemd-sysv, dbus, ca-certificates, procps) whose
#                         apt cache already holds, downloaded but NOT
#                         installed, the .debs of TC_DOWNLOAD_PACKAGES, with
#                         apt lists to match, so `apt-get install` inside a
#                         container needs neither `apt-get update` nor the
#                         network. Built once under TC_CACHE_DIR.
#   tc_derived_rootfs     prints the path of a cached root derived from the
#                         base for one suite: TC_DERIVE_SCRIPT (shell text)
#                         run in a copy of the base, then TC_DERIVE_PACKAGES
#                         installed from its warm apt cache (no network,
#                         --no-install-recommends), in a throwaway nspawn
#                         that is not booted, so no maintainer script starts a
#                         service. Built once per base, TC_DERIVE_NAME, script
#                         and package list; rebuilt with the base.
#   tc_boot NAME [ARGS]   copies the base root (the derived one when
#                         TC_DERIVE_NAME is set) to a fresh folder, copies the
#                         repository into it at /opt/checkpoint-agent (without
#                         build output or .git), boots it in the background
#                         and waits until `systemctl is-system-running` says
#                         running or degraded. Sets TC_PID (the container's
#                         systemd, as seen from the host), TC_ROOT (its root
#                         folder) and TC_CONSOLE (its console log). ARGS go to
#                         systemd-nspawn, e.g. --bind="$dir:/mnt/data" or
#                         --private-network (own loopback only: no port
#                         clashes with the host or other containers, but no
#                         apt downloads beyond the warm cache).
#   tc_exec CMD...        runs CMD inside the container (all its namespaces,
#                         a clean environment: PATH, HOME=/root, LANG=C.UTF-8)
#                         and returns its exit code; stdin, stdout and stderr
#                         pass through. Add variables with `tc_exec env X=Y CMD`.
#   tc_reboot             powers the container off and boots the same root
#                         again, with the same ARGS; updates TC_PID.
#   tc_stop               powers it off; killed after TC_STOP_TIMEOUT.
#   tc_journal [ARGS]     the container's journal (journalctl --no-pager ARGS).
#
# One container is current at a time (the last booted). Every container a
# suite boots is stopped and its folder removed by tl_cleanup (through
# TL_CLEANUP_HOOKS), which shunit2 runs even when the suite fails or is
# interrupted; containers left behind by a killed suite are swept by the next
# tc_boot.
#
# Settings (environment): TC_DERIVE_NAME, TC_DERIVE_SCRIPT and the array
# TC_DERIVE_PACKAGES (a suite's derived root, above; unset: the base),
# TC_CACHE_DIR (/var/cache/checkpoint-agent-tests),
# TC_MIRROR (http://deb.debian.org/debian), TC_BOOT_TIMEOUT (90 s),
# TC_STOP_TIMEOUT (30 s), TC_BASE_MAX_AGE_DAYS (30: older bases are rebuilt so
# the cached packages do not fall far behind the mirror), TC_OVERLAY (set:
# the container's root is an overlay mount of the cached root and a folder of
# its own instead of a copy: no copy at boot, a small removal at clean-up; the
# cached root is shared-locked until tc_cleanup; a kept one stays mounted,
# umount DIR/root before removing it), TC_KEEP (set: keep
# the stopped containers' folders, with console.log, for diagnosis).
#
# Measured on 2 cores (ext4, so cp --reflink=auto falls back to a copy):
# building the base 72-88 s (debootstrap ~60-70 s, downloads ~15 s, 520 MB);
# tc_boot 2-8 s (copy 1-7 s, boot to "running" 0.5-1.2 s); tc_reboot 1.5-4 s;
# tc_stop 0.3 s; installing PostgreSQL and the build tools from the warm
# cache inside a container 50-85 s.

: "${TL_ROOT:?container.sh: source tests/lib/test-lib.sh first}"
if ! declare -f tl_cleanup | grep -q TL_CLEANUP_HOOKS; then
	tl_log "container.sh: tl_cleanup does not run TL_CLEANUP_HOOKS; containers would outlive the suite"
	return 1
fi

TC_CACHE_DIR="${TC_CACHE_DIR:-/var/cache/checkpoint-agent-tests}"
TC_ROOTFS_DIR=$TC_CACHE_DIR/rootfs
TC_RUN_DIR=$TC_CACHE_DIR/containers
TC_SUITE=bookworm
TC_MIRROR="${TC_MIRROR:-http://deb.debian.org/debian}"
TC_BOOT_TIMEOUT="${TC_BOOT_TIMEOUT:-90}"
TC_STOP_TIMEOUT="${TC_STOP_TIMEOUT:-30}"
TC_BASE_MAX_AGE_DAYS="${TC_BASE_MAX_AGE_DAYS:-30}"
TC_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Bump when the way the base is made changes; it is part of the stamp.
TC_FORMAT=2
# Installed in the base. procps is there because every real Debian server has
# it (priority important) and the agent's unit reloads with /bin/kill.
TC_BASE_PACKAGES=(systemd systemd-sysv dbus ca-certificates procps)
# Downloaded into the base's apt cache, not installed: what provisioning,
# the agent's build and the Ansible suite install. Recommends included, so an
# install with or without --no-install-recommends finds everything cached.
TC_DOWNLOAD_PACKAGES=(
	postgresql postgresql-contrib
	build-essential pkg-config libpq-dev libconfig-dev libsystemd-dev libjson-c-dev
	ca-certificates sudo
	# backups (provision/steps/55-backup.sh)
	pgbackrest
	# Ansible inside the container: its apt module needs python3-apt, the
	# postgresql modules psycopg2, become_user to postgres needs setfacl.
	ansible python3-apt python3-psycopg2 acl
	# The Patroni cluster suite (t6600): Patroni, etcd, the agent's HTTP
	# listener, and sshd (the playbook reaches the three nodes over ssh).
	patroni etcd-server etcd-client libmicrohttpd-dev openssh-server
)

TC_PID=
TC_ROOT=
TC_CONSOLE=
TC_NSPAWN_PID=
TC_DIR=
TC_MACHINE=
TC_ARGS=()
TC_DERIVE_NAME=
TC_DERIVE_SCRIPT=
TC_DERIVE_PACKAGES=()
TC_DIRS=()
TC_OVERLAY_LOCK_FDS=()
TC_BOOT_SECONDS=
TC_LOCK_FD=

TL_CLEANUP_HOOKS+=(tc_cleanup)

tc__now() { date +%s.%N; }
tc__elapsed() { awk -v a="$1" -v b="$(tc__now)" 'BEGIN { printf "%.1f", b - a }'; }

# tc__lock shared|exclusive: the base-root lock, held until tc__unlock. Builds
# and swaps take it exclusively, copies shared, so a copy never sees a
# half-built or half-removed base.
tc__lock() {
	local mode=$1
	mkdir -p "$TC_ROOTFS_DIR" || return 1
	exec {TC_LOCK_FD}>>"$TC_ROOTFS_DIR/.lock" || return 1
	if ! flock "--$mode" -w 1800 "$TC_LOCK_FD"; then
		tl_log "container: could not lock $TC_ROOTFS_DIR/.lock within 30 min (another build hung?)"
		tc__unlock
		return 1
	fi
}

tc__unlock() {
	[ -n "$TC_LOCK_FD" ] || return 0
	exec {TC_LOCK_FD}>&-
	TC_LOCK_FD=
}

# tc__stamp: identifies the base's contents; a change makes a new base.
tc__stamp() {
	printf '%s\n' "format=$TC_FORMAT" "suite=$TC_SUITE" "mirror=$TC_MIRROR" \
		"install=${TC_BASE_PACKAGES[*]}" "download=${TC_DOWNLOAD_PACKAGES[*]}"
}

tc__base_dir() {
	printf '%s/%s-%s\n' "$TC_ROOTFS_DIR" "$TC_SUITE" "$(tc__stamp | sha256sum | cut -c1-12)"
}

tc__base_is_fresh() {
	local base=$1
	[ -f "$base/complete" ] || return 1
	[ -z "$(find "$base/complete" -mtime "+$TC_BASE_MAX_AGE_DAYS" 2>/dev/null)" ]
}

# tc__build_base BASE: debootstrap into a temporary folder next to BASE,
# warm its apt cache, then rename it into place. Called with the exclusive lock.
tc__build_base() {
	local base=$1 tmp log start packages
	start=$(tc__now)
	tmp=$(mktemp -d "$TC_ROOTFS_DIR/.build.XXXXXX") || return 1
	log=$tmp/build.log
	tl_log "container: building the base root $base (debootstrap, about 2 min; log $log)"
	packages=$(IFS=,; printf '%s' "${TC_BASE_PACKAGES[*]}")
	if ! debootstrap --variant=minbase --include="$packages" "$TC_SUITE" "$tmp/root" "$TC_MIRROR" \
		>>"$log" 2>&1; then
		tl_log "container: debootstrap of $TC_SUITE from $TC_MIRROR failed; last lines of $log:"
		tail -n 20 "$log" >&2
		tl_log "container: check the network to the mirror, or set TC_MIRROR; the failed tree stays in $tmp"
		return 1
	fi
	tl_log "container: debootstrap done in $(tc__elapsed "$start")s; downloading ${TC_DOWNLOAD_PACKAGES[*]}"
	# The root's apt runs in a throwaway nspawn (not booted): it gets /proc,
	# /dev and the host's resolv.conf, and its cache is the root's own.
	if ! systemd-nspawn --register=no --keep-unit --quiet --pipe -D "$tmp/root" \
		env -i PATH="$TC_PATH" DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
		apt-get install -y -q --download-only "${TC_DOWNLOAD_PACKAGES[@]}" \
		</dev/null >>"$log" 2>&1; then
		tl_log "container: downloading the packages into the base failed; last lines of $log:"
		tail -n 20 "$log" >&2
		return 1
	fi
	# Each container gets its own machine id at boot (tc_boot writes one).
	: >"$tmp/root/etc/machine-id"
	# minbase has no /etc/hosts, which every real server has (the installer
	# writes it); without it "localhost" does not resolve offline.
	if [ ! -e "$tmp/root/etc/hosts" ]; then
		printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/root/etc/hosts"
	fi
	tc__stamp >"$tmp/stamp"
	printf '%s\n' "$(du -sh "$tmp/root" | cut -f1) in $(tc__elapsed "$start")s" >"$tmp/complete"
	if [ -e "$base" ]; then
		mv "$base" "$tmp.old" && rm -rf --one-file-system -- "$tmp.old"
	fi
	mv "$tmp" "$base" || return 1
	tl_log "container: base root ready: $(cat "$base/complete")"
}

# tc__prune_bases KEEP: remove failed builds, and every other base that no
# suite has copied for a day (under the exclusive lock, so no build or copy
# is running). A base another checkout still uses (a different package list,
# for instance) stays.
tc__prune_bases() {
	local keep=$1 d
	for d in "$TC_ROOTFS_DIR"/"$TC_SUITE"-* "$TC_ROOTFS_DIR"/.build.*; do
		[ -d "$d" ] || continue
		[ "$d" = "$keep" ] && continue
		case "$d" in
		*/.build.*) [ -n "$(find "$d" -maxdepth 0 -mmin +180 2>/dev/null)" ] || continue ;;
		*) [ -z "$(find "$d/used" "$d/complete" -maxdepth 0 -mmin -1440 2>/dev/null)" ] || continue ;;
		esac
		rm -rf --one-file-system -- "$d"
	done
}

# tc_base_rootfs: prints the cached base root, building it first if needed.
tc_base_rootfs() {
	local base
	base=$(tc__base_dir)
	if ! tc__base_is_fresh "$base"; then
		tc__lock exclusive || return 1
		if ! tc__base_is_fresh "$base"; then
			if ! tc__build_base "$base"; then
				tc__unlock
				return 1
			fi
			tc__prune_bases "$base"
		fi
		tc__unlock
	fi
	printf '%s\n' "$base/root"
}

# tc__derived_stamp BASE: identifies a derived root's contents: the base
# (its stamp, and when it was built, as a base past its age is rebuilt in
# place), the suite's name, script and packages.
tc__derived_stamp() {
	local base=$1
	printf '%s\n' "base=$(cat "$base/stamp" "$base/complete" 2>/dev/null | tr '\n' ' ')" \
		"name=$TC_DERIVE_NAME" "packages=${TC_DERIVE_PACKAGES[*]}" "script=$TC_DERIVE_SCRIPT"
}

tc__derived_dir() {
	printf '%s/%s-%s-%s\n' "$TC_ROOTFS_DIR" "$TC_SUITE" "$TC_DERIVE_NAME" \
		"$(tc__derived_stamp "$1" | sha256sum | cut -c1-12)"
}

# tc__build_derived BASE DIR: copy BASE, run the script and install the
# packages in the copy, then rename it to DIR. Called with the exclusive lock.
tc__build_derived() {
	local base=$1 dir=$2 tmp log start
	start=$(tc__now)
	tmp=$(mktemp -d "$TC_ROOTFS_DIR/.build.XXXXXX") || return 1
	log=$tmp/build.log
	tl_log "container: deriving the root $dir from the base (${TC_DERIVE_PACKAGES[*]}; log $log)"
	if ! cp -a --reflink=auto "$base/root" "$tmp/root"; then
		tl_log "container: copying the base to $tmp failed (disk full?)"
		return 1
	fi
	if ! systemd-nspawn --register=no --keep-unit --quiet --pipe -D "$tmp/root" \
		env -i PATH="$TC_PATH" DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
		bash -euo pipefail -c "$TC_DERIVE_SCRIPT"$'\n''apt-get install -y -q --no-install-recommends "$@"' \
		derive "${TC_DERIVE_PACKAGES[@]}" </dev/null >>"$log" 2>&1; then
		tl_log "container: deriving the root failed; last lines of $log:"
		tail -n 20 "$log" >&2
		return 1
	fi
	tc__derived_stamp "$base" >"$tmp/stamp"
	printf '%s\n' "$(du -sh "$tmp/root" | cut -f1) in $(tc__elapsed "$start")s" >"$tmp/complete"
	if [ -e "$dir" ]; then
		mv "$dir" "$tmp.old" && rm -rf --one-file-system -- "$tmp.old"
	fi
	mv "$tmp" "$dir" || return 1
	tl_log "container: derived root ready: $(cat "$dir/complete")"
}

# tc_derived_rootfs: prints the suite's derived root, building it (and the
# base) first if needed.
tc_derived_rootfs() {
	local base dir
	if [ -z "${TC_DERIVE_NAME:-}" ] || [ "${#TC_DERIVE_PACKAGES[@]}" -eq 0 ]; then
		tl_log "tc_derived_rootfs: set TC_DERIVE_NAME and TC_DERIVE_PACKAGES first"
		return 1
	fi
	base=$(tc_base_rootfs) || return 1
	base=${base%/root}
	# The base counts as used while a root derived from it is (see tc__prune_bases).
	touch "$base/used"
	dir=$(tc__derived_dir "$base")
	if ! tc__base_is_fresh "$dir"; then
		tc__lock exclusive || return 1
		dir=$(tc__derived_dir "$base")
		if ! tc__base_is_fresh "$dir" && ! tc__build_derived "$base" "$dir"; then
			tc__unlock
			return 1
		fi
		tc__unlock
	fi
	printf '%s\n' "$dir/root"
}

# tc__rootfs: the root tc_boot copies: the suite's derived root, or the base.
tc__rootfs() {
	if [ -n "${TC_DERIVE_NAME:-}" ]; then
		tc_derived_rootfs
	else
		tc_base_rootfs
	fi
}

# tc__copy_repository DEST: the working tree without .git and build output.
tc__copy_repository() {
	local dest=$1
	mkdir -p "$dest" || return 1
	tar -C "$TL_ROOT" --exclude-vcs --owner=0 --group=0 \
		--exclude='./agent/checkpoint-agent*' --exclude='./agent/sql_embed.c*' \
		--exclude='./tests/unit/run-unit*' --exclude='*.o' \
		--exclude=node_modules --exclude=__pycache__ \
		-cf - . | tar -C "$dest" --no-same-owner -xf -
}

# tc__alive PID: PID runs and is not a zombie.
tc__alive() {
	[ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# tc__is_nspawn PID DIR: PID is (still) the systemd-nspawn of the container in DIR.
tc__is_nspawn() {
	local pid=$1 dir=$2 cmd
	tc__alive "$pid" || return 1
	cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")
	case "$cmd" in *systemd-nspawn*"-D $dir/root "*) return 0 ;; esac
	return 1
}

# tc__container_init NSPAWN_PID: prints the container's PID 1 (as seen from
# the host): the child of nspawn that runs systemd in its own PID namespace.
tc__container_init() {
	local nspawn=$1 pid
	for pid in $(pgrep -P "$nspawn"); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ] || continue
		[ "$(readlink "/proc/$pid/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] || continue
		printf '%s\n' "$pid"
		return 0
	done
	return 1
}

# tc__start: boot TC_DIR/root with TC_ARGS and wait until it is up.
tc__start() {
	local start deadline state="" init=""
	start=$(tc__now)
	printf '\n==== boot %s\n' "$(date -Is)" >>"$TC_CONSOLE"
	systemd-nspawn --register=no --keep-unit -D "$TC_ROOT" --machine="$TC_MACHINE" \
		--console=pipe "${TC_ARGS[@]}" --boot -- systemd.show_status=yes systemd.log_color=no \
		</dev/null >>"$TC_CONSOLE" 2>&1 &
	TC_NSPAWN_PID=$!
	printf '%s\n' "$TC_NSPAWN_PID" >"$TC_DIR/nspawn.pid"
	TC_PID=
	deadline=$(($(date +%s) + TC_BOOT_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		# Our own child, so its PID cannot be reused before we reap it (its
		# command line is still this shell's until it has exec'd nspawn).
		if ! tc__alive "$TC_NSPAWN_PID"; then
			wait "$TC_NSPAWN_PID" 2>/dev/null
			tl_log "container $TC_MACHINE: systemd-nspawn exited (status $?) while booting; console:"
			tail -n 30 "$TC_CONSOLE" >&2
			TC_NSPAWN_PID=
			return 1
		fi
		if [ -z "$init" ]; then
			init=$(tc__container_init "$TC_NSPAWN_PID") || init=
		fi
		if [ -n "$init" ]; then
			state=$(timeout 10 nsenter -t "$init" -a env -i PATH="$TC_PATH" \
				systemctl is-system-running 2>/dev/null)
			case "$state" in
			running | degraded)
				TC_PID=$init
				TC_BOOT_SECONDS=$(tc__elapsed "$start")
				tl_log "container $TC_MACHINE: $state after ${TC_BOOT_SECONDS}s (systemd PID $TC_PID)"
				[ "$state" = running ] || tc_exec systemctl --failed --no-legend >&2
				return 0
				;;
			esac
		fi
		sleep 0.2
	done
	tl_log "container $TC_MACHINE: not up after ${TC_BOOT_TIMEOUT}s (state '${state:-no systemd yet}'); jobs and console:"
	if [ -n "$init" ]; then
		timeout 10 nsenter -t "$init" -a env -i PATH="$TC_PATH" systemctl list-jobs --no-pager >&2
	fi
	tail -n 30 "$TC_CONSOLE" >&2
	TC_PID=$init
	return 1
}

# tc_boot NAME [NSPAWN ARGS...]: see the header.
tc_boot() {
	local name=$1 base start safe
	shift || true
	if [ -z "$name" ]; then
		tl_log "tc_boot: usage: tc_boot NAME [systemd-nspawn args...]"
		return 1
	fi
	tc__in_subshell tc_boot && return 1
	start=$(tc__now)
	tc__sweep_stale
	base=$(tc__rootfs) || return 1
	mkdir -p "$TC_RUN_DIR" || return 1
	safe=$(printf '%s' "$name" | tr -c 'a-zA-Z0-9-' '-' | cut -c1-40)
	TC_DIR=$(mktemp -d "$TC_RUN_DIR/$safe.XXXXXX") || return 1
	TC_DIRS+=("$TC_DIR")
	# The owner (this shell and its start time) lets a later run tell a
	# leftover of a killed suite from a container still in use.
	printf '%s %s\n' "$$" "$(tc__start_time "$$")" >"$TC_DIR/owner"
	TC_MACHINE=cpa-${TC_DIR##*/}
	TC_MACHINE=${TC_MACHINE//./-}
	TC_ROOT=$TC_DIR/root
	TC_CONSOLE=$TC_DIR/console.log
	TC_ARGS=("$@")
	# The shared lock is held from the freshness test to the end of the
	# copy, so no build elsewhere can swap or prune the base in between.
	tc__lock shared || return 1
	while ! tc__base_is_fresh "${base%/root}"; do
		tc__unlock
		base=$(tc__rootfs) || return 1
		tc__lock shared || return 1
	done
	if [ -n "${TC_OVERLAY:-}" ]; then
		if ! tc__mount_overlay "$base"; then
			tc__unlock
			return 1
		fi
	elif ! cp -a --reflink=auto "$base" "$TC_ROOT"; then
		tc__unlock
		tl_log "tc_boot: copying $base to $TC_ROOT failed (disk full?)"
		return 1
	fi
	touch "${base%/root}/used"
	tc__unlock
	systemd-id128 new >"$TC_ROOT/etc/machine-id" || return 1
	printf '%s\n' "$TC_MACHINE" >"$TC_ROOT/etc/hostname"
	tc__copy_repository "$TC_ROOT/opt/checkpoint-agent" || {
		tl_log "tc_boot: copying the repository into the container failed"
		return 1
	}
	tl_log "container $TC_MACHINE: root copied in $(tc__elapsed "$start")s"
	tc__start || return 1
	tl_log "container $TC_MACHINE: tc_boot took $(tc__elapsed "$start")s"
}

# tc__mount_overlay BASE: TC_ROOT as an overlay of BASE (read-only, shared)
# and the container's own upper folder: nothing copied at boot, only what the
# container wrote removed at clean-up. BASE must not change while it is
# mounted, so a shared lock on the base-root lock is held (its own open file)
# until tc_cleanup; a build or swap of the base elsewhere waits for it.
tc__mount_overlay() {
	local base=$1 fd
	mkdir "$TC_DIR/upper" "$TC_DIR/work" "$TC_ROOT" || return 1
	exec {fd}>>"$TC_ROOTFS_DIR/.lock" || return 1
	if ! flock --shared --nonblock "$fd"; then
		exec {fd}>&-
		tl_log "tc_boot: could not share the base-root lock for the overlay"
		return 1
	fi
	TC_OVERLAY_LOCK_FDS+=("$fd")
	if ! mount -t overlay "$TC_MACHINE" \
		-o "lowerdir=$base,upperdir=$TC_DIR/upper,workdir=$TC_DIR/work" "$TC_ROOT"; then
		tl_log "tc_boot: mounting an overlay of $base at $TC_ROOT failed"
		return 1
	fi
}

tc__start_time() {
	awk '{print $22}' "/proc/$1/stat" 2>/dev/null
}

# tc_exec CMD...: run CMD inside the current container.
tc_exec() {
	if [ -z "$TC_PID" ] || ! [ -d "/proc/$TC_PID" ]; then
		tl_log "tc_exec: no container is running (tc_boot first)"
		return 125
	fi
	nsenter -t "$TC_PID" -a -r -w env -i PATH="$TC_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

# tc_journal [journalctl args]: the container's journal, for diagnosis.
tc_journal() {
	tc_exec journalctl --no-pager --quiet "$@"
}

# tc__find_nspawn DIR: the systemd-nspawn running the container in DIR.
tc__find_nspawn() {
	local dir=$1 pid
	pid=$(cat "$dir/nspawn.pid" 2>/dev/null)
	if tc__is_nspawn "$pid" "$dir"; then
		printf '%s\n' "$pid"
		return 0
	fi
	for pid in $(pgrep -x systemd-nspawn); do
		if tc__is_nspawn "$pid" "$dir"; then
			printf '%s\n' "$pid"
			return 0
		fi
	done
	return 1
}

# tc__find_init DIR: the container's PID 1 whose root is DIR/root, found by
# the root's inode, so it is found even when its nspawn is gone.
tc__find_init() {
	local dir=$1 pid want
	want=$(stat -L -c '%d:%i' "$dir/root" 2>/dev/null) || return 1
	for pid in $(pgrep -x systemd); do
		[ "$(readlink "/proc/$pid/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] || continue
		if [ "$(stat -L -c '%d:%i' "/proc/$pid/root" 2>/dev/null)" = "$want" ]; then
			printf '%s\n' "$pid"
			return 0
		fi
	done
	return 1
}

# tc__stop_container DIR: power off the container in DIR; force after the timeout.
# tc__poweroff DIR: ask the container in DIR to power off, without waiting.
tc__poweroff() {
	local dir=$1 nspawn init
	nspawn=$(tc__find_nspawn "$dir") || nspawn=
	init=$(tc__find_init "$dir") || init=
	if [ -n "$init" ]; then
		timeout 10 nsenter -t "$init" -a env -i PATH="$TC_PATH" \
			systemctl poweroff --no-block >/dev/null 2>&1 ||
			kill -s RTMIN+4 "$init" 2>/dev/null
	elif [ -n "$nspawn" ]; then
		kill -TERM "$nspawn" 2>/dev/null
	fi
	return 0
}

tc__stop_container() {
	local dir=$1 nspawn init deadline machine
	machine=cpa-${dir##*/}
	machine=${machine//./-}
	nspawn=$(tc__find_nspawn "$dir") || nspawn=
	init=$(tc__find_init "$dir") || init=
	tc__poweroff "$dir"
	deadline=$(($(date +%s) + TC_STOP_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		{ [ -n "$nspawn" ] && tc__is_nspawn "$nspawn" "$dir"; } ||
			{ [ -n "$init" ] && [ -d "/proc/$init" ]; } || break
		sleep 0.1
	done
	init=$(tc__find_init "$dir") || init=
	if [ -n "$init" ] || { [ -n "$nspawn" ] && tc__is_nspawn "$nspawn" "$dir"; }; then
		tl_log "container $machine: still running ${TC_STOP_TIMEOUT}s after poweroff; killing it"
		# SIGKILL to PID 1 of a PID namespace kills every process in it.
		[ -n "$init" ] && kill -KILL "$init" 2>/dev/null
		[ -n "$nspawn" ] && kill -KILL "$nspawn" 2>/dev/null
		sleep 0.5
	fi
	[ -n "$nspawn" ] && wait "$nspawn" 2>/dev/null
	# nspawn refuses to clean this on a /run that is not tmpfs.
	rm -rf --one-file-system -- "/run/systemd/nspawn/propagate/$machine"
	return 0
}

# tc__in_subshell NAME: refuse to boot or reboot in a subshell (inside $(...)
# or shunit2's assert*): the container would outlive it, and TC_PID would
# not reach the suite.
tc__in_subshell() {
	[ "$BASHPID" != "$$" ] || return 1
	tl_log "$1: called in a subshell (\$(...), a pipe or an assert*); call it directly"
	return 0
}

# tc_stop: power off the current container (its folder stays until cleanup).
tc_stop() {
	[ -n "$TC_DIR" ] || return 0
	tc__stop_container "$TC_DIR"
	TC_PID=
	TC_NSPAWN_PID=
}

# tc_reboot: power off and boot the same root again, with the same arguments.
tc_reboot() {
	if [ -z "$TC_DIR" ]; then
		tl_log "tc_reboot: no container (tc_boot first)"
		return 1
	fi
	tc__in_subshell tc_reboot && return 1
	tc_stop
	tc__start
}

# tc__remove_dir DIR: remove a container folder, never under a running
# container nor across a mount.
tc__remove_dir() {
	local dir=$1
	if tc__find_init "$dir" >/dev/null || tc__find_nspawn "$dir" >/dev/null; then
		tl_log "container: $dir still runs a container; not removing it"
		return 1
	fi
	# a TC_OVERLAY root
	if mountpoint -q "$dir/root" && ! umount "$dir/root"; then
		tl_log "container: could not unmount the overlay $dir/root"
		return 1
	fi
	if findmnt -rn -o TARGET | grep -qF "$dir/"; then
		tl_log "container: $dir still has mounts; not removing it: $(findmnt -rn -o TARGET | grep -F "$dir/" | tr '\n' ' ')"
		return 1
	fi
	rm -rf --one-file-system -- "$dir"
}

# tc_cleanup: stop every container this suite booted and remove its folder.
# Called by tl_cleanup (TL_CLEANUP_HOOKS).
tc_cleanup() {
	local dir start stopped fd
	# Every container is told to power off first, so they stop side by side.
	for dir in "${TC_DIRS[@]}"; do
		tc__poweroff "$dir"
	done
	for dir in "${TC_DIRS[@]}"; do
		start=$(tc__now)
		tc__stop_container "$dir"
		stopped=$(tc__elapsed "$start")
		if [ -n "${TC_KEEP:-}" ]; then
			: >"$dir/kept"
			tl_log "container: TC_KEEP is set; kept $dir (console.log, root/; remove it by hand)"
		else
			tc__remove_dir "$dir"
		fi
		tl_log "container ${dir##*/}: stopped in ${stopped}s, cleaned up in $(tc__elapsed "$start")s"
	done
	for fd in "${TC_OVERLAY_LOCK_FDS[@]}"; do
		exec {fd}>&-
	done
	TC_OVERLAY_LOCK_FDS=()
	TC_DIRS=()
	TC_DIR=
	TC_ROOT=
	TC_PID=
	TC_NSPAWN_PID=
}

# tc__sweep_stale: stop and remove containers whose suite is gone (a suite
# killed with SIGKILL cannot clean up after itself).
tc__sweep_stale() {
	local dir pid started
	for dir in "$TC_RUN_DIR"/*/; do
		dir=${dir%/}
		[ -f "$dir/owner" ] || continue
		[ -e "$dir/kept" ] && continue
		read -r pid started <"$dir/owner" || continue
		if [ -d "/proc/$pid" ] && [ "$(tc__start_time "$pid")" = "$started" ]; then
			continue
		fi
		tl_log "container: removing $dir, left behind by a suite that is gone (PID $pid)"
		tc__stop_container "$dir"
		tc__remove_dir "$dir"
	done
}
