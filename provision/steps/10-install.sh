#!/bin/bash
# 10-install.sh: step "install". Installs PostgreSQL from the distribution and
# what the agent needs to build (only the packages dpkg says are missing,
# after an apt-get update when the package lists are older than
# CPA_APT_CACHE_VALID_TIME),
# then builds the agent from this repository checkout and installs it when
# the built binary differs from the installed one. With --agent-deb FILE it
# installs that package instead, and no compiler. A re-run installs nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# The packages: the server and contrib modules (the distribution's default
# version and the configured one), and the agent's build dependencies.
install_package_list() {
	printf '%s\n' postgresql postgresql-contrib "postgresql-$CPA_PG_VERSION"
	[ -n "$CPA_AGENT_DEB" ] ||
		printf '%s\n' build-essential pkg-config libpq-dev libconfig-dev libsystemd-dev libmicrohttpd-dev libjson-c-dev
}

missing_packages() {
	local p
	for p in $(install_package_list); do
		cpa_pkg_installed "$p" || printf '%s\n' "$p"
	done
}

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# apt_lists_age: seconds since apt's package lists were last refreshed (the
# newest Release file), or a very large number when there are none.
apt_lists_age() {
	local newest
	newest=$(find /var/lib/apt/lists -maxdepth 1 -type f \( -name '*Release' -o -name '*InRelease' \) \
		-printf '%T@\n' 2>/dev/null | sort -n | tail -n 1)
	newest=${newest%.*}
	[ -n "$newest" ] || newest=0
	printf '%s\n' $(($(date +%s) - newest))
}

# refresh_stale_lists: apt-get update before an install when the lists are
# older than CPA_APT_CACHE_VALID_TIME (the Ansible roles' cache_valid_time):
# stale lists would install an old minor version of PostgreSQL, without the
# fixes of the current one. An update that fails (an offline host) is a
# warning: the install goes on with the lists there are.
refresh_stale_lists() {
	local age
	age=$(apt_lists_age)
	if [ "$age" -le "$CPA_APT_CACHE_VALID_TIME" ]; then
		cpa_unchanged "apt's package lists are $((age / 3600)) h old (refreshed when older than $((CPA_APT_CACHE_VALID_TIME / 3600)) h)"
		return 0
	fi
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "apt-get update: the package lists are older than $((CPA_APT_CACHE_VALID_TIME / 3600)) h"
		return 0
	fi
	# --error-on=any: apt-get update otherwise exits 0 when every download failed
	if apt-get update -q --error-on=any; then
		cpa_changed "refreshed apt's package lists (they were older than $((CPA_APT_CACHE_VALID_TIME / 3600)) h)"
	else
		cpa_warn "apt-get update failed (offline? see above): installing from package lists that are $((age / 86400)) days old, which may hold an old minor version"
	fi
}

install_missing_packages() {
	local -a missing
	mapfile -t missing < <(missing_packages)
	if [ "${#missing[@]}" -eq 0 ]; then
		cpa_unchanged "packages installed: $(install_package_list | paste -sd ' ')"
		return 0
	fi
	refresh_stale_lists
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "install packages: ${missing[*]}"
		return 0
	fi
	cpa_info "installing ${missing[*]}"
	if ! apt_install "${missing[@]}"; then
		cpa_info "apt-get install failed; refreshing the package lists and trying again"
		apt-get update -q || cpa_die "$CPA_EX_UNAVAILABLE" "apt-get update failed" \
			"Check the network and /etc/apt/sources.list."
		apt_install "${missing[@]}" || cpa_die "$CPA_EX_UNAVAILABLE" "apt-get install ${missing[*]} failed" \
			"The apt output above says why (a missing package means PostgreSQL $CPA_PG_VERSION is not in this distribution's repositories: choose --pg-version)."
	fi
	cpa_changed "installed packages: ${missing[*]}"
}

# build_agent: make the agent in the checkout (make rebuilds only what changed).
build_agent() {
	local log
	if [ "$CPA_DRY_RUN" = 1 ]; then
		if [ -x "$CPA_REPO_DIR/agent/checkpoint-agent" ] && make -q -C "$CPA_REPO_DIR" agent/checkpoint-agent 2>/dev/null; then
			cpa_unchanged "agent build up to date ($CPA_REPO_DIR/agent/checkpoint-agent)"
		else
			cpa_info "would build the agent: make -C $CPA_REPO_DIR agent/checkpoint-agent"
		fi
		return 0
	fi
	log=$(mktemp "${TMPDIR:-/tmp}/cpa-build.XXXXXX")
	if ! make -C "$CPA_REPO_DIR" agent/checkpoint-agent >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		rm -f "$log"
		cpa_die "$CPA_EX_FAILED" "building the agent in $CPA_REPO_DIR failed" \
			"The compiler's last lines are above. Is the checkout complete (git status)?"
	fi
	if grep -q 'Nothing to be done\|is up to date' "$log"; then
		cpa_unchanged "agent build up to date ($CPA_REPO_DIR/agent/checkpoint-agent)"
	else
		cpa_info "built $CPA_REPO_DIR/agent/checkpoint-agent"
	fi
	rm -f "$log"
}

# install_agent: make install, only when the built binary differs.
install_agent() {
	local built=$CPA_REPO_DIR/agent/checkpoint-agent new old
	if [ "$CPA_DRY_RUN" = 1 ]; then
		if [ -x "$CPA_AGENT_BIN" ] && [ -x "$built" ] && cmp -s "$built" "$CPA_AGENT_BIN"; then
			cpa_unchanged "agent installed at $CPA_AGENT_BIN (same checksum as the build)"
		else
			cpa_changed "make -C $CPA_REPO_DIR install PREFIX=$CPA_PREFIX"
		fi
		return 0
	fi
	new=$(sha256sum <"$built" | cut -d' ' -f1)
	old=
	[ -f "$CPA_AGENT_BIN" ] && old=$(sha256sum <"$CPA_AGENT_BIN" | cut -d' ' -f1)
	if [ "$new" = "$old" ]; then
		cpa_unchanged "agent installed at $CPA_AGENT_BIN (sha256 ${new:0:12}, same as the build)"
		return 0
	fi
	make -C "$CPA_REPO_DIR" --no-print-directory install PREFIX="$CPA_PREFIX" >/dev/null ||
		cpa_die "$CPA_EX_FAILED" "make install PREFIX=$CPA_PREFIX failed"
	cpa_changed "installed the agent at $CPA_AGENT_BIN (sha256 ${new:0:12}${old:+, was ${old:0:12}}): $("$CPA_AGENT_BIN" --version 2>/dev/null | head -n 1)"
}

# deb_binary_sha256 FILE: the SHA-256 of the agent inside the package FILE.
deb_binary_sha256() {
	dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/bin/checkpoint-agent | sha256sum | cut -d' ' -f1
}

# install_agent_deb: the package given with --agent-deb, only when its version
# or its binary differs from what is installed. apt-get resolves its
# dependencies (libpq5, libconfig9).
install_agent_deb() {
	local deb=$CPA_AGENT_DEB name version installed new old
	name=$(dpkg-deb -f "$deb" Package 2>/dev/null) ||
		cpa_die "$CPA_EX_CONFIG" "$deb is not a Debian package" "Build one with dpkg-buildpackage -us -uc -b (README.md)."
	[ "$name" = checkpoint-agent ] ||
		cpa_die "$CPA_EX_CONFIG" "$deb holds the package $name, not checkpoint-agent" "Give the checkpoint-agent_*.deb."
	version=$(dpkg-deb -f "$deb" Version)
	installed=$(dpkg-query -W -f '${Status} ${Version}' checkpoint-agent 2>/dev/null || true)
	new=$(deb_binary_sha256 "$deb")
	old=
	[ -f "$CPA_AGENT_BIN" ] && old=$(sha256sum <"$CPA_AGENT_BIN" | cut -d' ' -f1)
	if [ "$installed" = "install ok installed $version" ] && [ "$new" = "$old" ]; then
		cpa_unchanged "checkpoint-agent $version installed from its package (sha256 ${new:0:12})"
		return 0
	fi
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "apt-get install $deb (checkpoint-agent $version)"
		return 0
	fi
	# --reinstall: the same version with another build is installed again.
	apt_install --reinstall "$deb" ||
		cpa_die "$CPA_EX_UNAVAILABLE" "apt-get install $deb failed" "The apt output above says why."
	cpa_changed "installed checkpoint-agent $version from $deb at $CPA_AGENT_BIN (sha256 ${new:0:12})"
	if [ -e /usr/local/bin/checkpoint-agent ]; then
		cpa_warn "an agent built from source is still at /usr/local/bin/checkpoint-agent and comes first in PATH; remove it (make uninstall in its checkout)"
	fi
}

main() {
	cpa_init_step install "$@"
	install_missing_packages
	if [ -n "$CPA_AGENT_DEB" ]; then
		install_agent_deb
	else
		build_agent
		install_agent
	fi
}

main "$@"
