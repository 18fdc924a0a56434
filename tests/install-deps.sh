#!/bin/bash
# install-deps.sh: installs, from Debian's packages, what the build and the
# test suites need. Packages already present are left alone, and apt is not
# touched at all when nothing is missing.
set -euo pipefail

packages=(
	# build
	build-essential pkg-config libpq-dev libconfig-dev libsystemd-dev libmicrohttpd-dev libjson-c-dev
	# test harness and the throwaway clusters
	shunit2 postgresql postgresql-contrib postgresql-client iproute2 procps
	# the LangGraph JS client test; python3 reads JSON in the check suites
	nodejs npm python3
	# the HTTP listener suite (t4310)
	curl
	# systemd, containers, provisioning and fleet tests
	systemd systemd-container debootstrap redis-server redis-tools pgbackrest
	ansible ansible-lint yamllint
	# static analysis, the sanitizer/valgrind runs, the fuzzers (libFuzzer), strace
	valgrind cppcheck clang-tidy shellcheck clang libclang-rt-14-dev strace
	# checks and benchmarks
	check-postgres prometheus-postgres-exporter prometheus hyperfine
	# the Debian package, the man pages, the bash completion (t0003, t4300)
	debhelper dpkg-dev fakeroot lintian mandoc man-db bash-completion
)

missing_packages() {
	local p
	for p in "${packages[@]}"; do
		# nodejs from another repository provides npm itself.
		if [ "$p" = npm ] && command -v npm >/dev/null; then
			continue
		fi
		if ! dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
			printf '%s\n' "$p"
		fi
	done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps: every package is present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian starts services it installs; a policy-rc.d keeps the machine's own
# PostgreSQL and Redis from being started (or touched) by the tests' install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
