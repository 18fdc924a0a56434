#!/bin/bash
# t4300-debian-package: the Debian package, built and used as an admin would.
#   - dpkg-buildpackage -us -uc -b builds checkpoint-agent_<VERSION>_amd64.deb
#     from a copy of the tree (the build writes next to the tree, so never in
#     the checkout itself);
#   - its contents: binary, man pages, units naming /usr/bin, the example
#     config as a conffile, completion, sysusers, the SQL as plain files;
#     Depends from dh_shlibdeps; lintian reports no error;
#   - in a booted Debian 12 container (one for the whole suite, private
#     network: apt works from the base root's cache): apt-get installs it with
#     its dependencies, the units stay disabled and stopped, the user exists;
#   - provision.sh --agent-deb FILE provisions the server from it without a
#     compiler; `checkpoint-agent migrate` and `check` work there; a second
#     run changes nothing; apt-get remove keeps the conffile.
# The tests share the build and the container and run in order.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=tests/lib/container.sh
. "$TL_ROOT/tests/lib/container.sh"

VERSION=$(cat "$TL_ROOT/VERSION")
BUILD=
DEB=
OUT=
PROVISION=/opt/checkpoint-agent/provision/provision.sh
# Backups are t5500's subject: here the repository would share the container's
# one disk with the data, which the backup check rightly warns about.
PROVISION_OPTS=(--no-backup)
AGENT=/usr/bin/checkpoint-agent
CONF=/etc/checkpoint-agent/agent.conf

suite_setup() {
	local start
	BUILD=$(tl_tmpdir) || return 1
	OUT=$(tl_tmpdir) || return 1
	mkdir "$BUILD/src" || return 1
	tar -C "$TL_ROOT" --exclude-vcs --exclude='./agent/checkpoint-agent*' --exclude='./agent/sql_embed.c*' \
		--exclude='./tests/unit/run-unit*' --exclude='./tests/tools/notify-listen' --exclude=node_modules \
		--exclude='./debian/checkpoint-agent' --exclude='./debian/.debhelper' -cf - . |
		tar -C "$BUILD/src" -xf - || return 1
	start=$SECONDS
	if ! (cd "$BUILD/src" && dpkg-buildpackage -us -uc -b) >"$OUT/build.log" 2>&1; then
		tl_log "dpkg-buildpackage failed; its last lines:"
		tail -n 30 "$OUT/build.log" >&2
		return 1
	fi
	tl_log "dpkg-buildpackage took $((SECONDS - start))s"
	DEB=$BUILD/checkpoint-agent_${VERSION}_$(dpkg --print-architecture).deb
	tc_boot debian-package --private-network || return 1
	cp "$DEB" "$TC_ROOT/root/" || return 1
}

suite_teardown() {
	tc_cleanup
}

# in_box CMD...: run CMD in the container; output in $OUT/last.log, exit code in RC.
in_box() {
	RC=0
	tc_exec "$@" >"$OUT/last.log" 2>&1 || RC=$?
}

test_01_the_package_is_built_with_the_projects_version() {
	assertTrue "the .deb exists: $(ls "$BUILD")" "[ -f '$DEB' ]"
	assertEquals "its version is VERSION's" "$VERSION" "$(dpkg-deb -f "$DEB" Version)"
	assertContains "the unit tests ran during the build" "$(cat "$OUT/build.log")" "unit: "
}

test_02_it_holds_what_make_install_installs() {
	local files f
	files=$(dpkg-deb -c "$DEB" | awk '{print $6}')
	for f in ./usr/bin/checkpoint-agent ./usr/share/man/man8/checkpoint-agent.8.gz \
		./usr/share/man/man5/checkpoint-agent.conf.5.gz ./lib/systemd/system/checkpoint-agent.service \
		./lib/systemd/system/checkpoint-agent-migrate.service ./etc/checkpoint-agent/agent.conf.example \
		./usr/share/bash-completion/completions/checkpoint-agent ./usr/lib/sysusers.d/checkpoint-agent.conf \
		./usr/share/doc/checkpoint-agent/copyright ./usr/share/doc/checkpoint-agent/sql/langgraph/0009_writes_task_path.up.sql; do
		assertContains "$f in the package" "$files" "$f"
	done
	assertEquals "the example config is the conffile" "/etc/checkpoint-agent/agent.conf.example" \
		"$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles)"
	assertEquals "the units start /usr/bin/checkpoint-agent" \
		"ExecStart=/usr/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf run" \
		"$(dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ./lib/systemd/system/checkpoint-agent.service | grep '^ExecStart=')"
}

test_03_depends_come_from_dh_shlibdeps() {
	local depends lib
	depends=$(dpkg-deb -f "$DEB" Depends)
	for lib in libc6 libpq5 libconfig9 libsystemd0; do
		assertContains "$lib: $depends" "$depends" "$lib"
	done
}

test_04_lintian_reports_no_error() {
	local out rc=0
	out=$(lintian --fail-on error "$BUILD"/checkpoint-agent_"${VERSION}"_*.changes 2>&1) || rc=$?
	tl_log "lintian: $(printf '%s\n' "$out" | grep -c '^[EW]:') errors and warnings"
	assertEquals "lintian's exit code; it says: $out" 0 "$rc"
	assertEquals "no E: line" "" "$(printf '%s\n' "$out" | grep '^E:')"
}

test_05_apt_installs_it_with_its_dependencies_units_disabled() {
	in_box env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "/root/$(basename "$DEB")"
	assertEquals "apt-get install; $(tail -n 5 "$OUT/last.log")" 0 "$RC"
	assertEquals "--version" "checkpoint-agent $VERSION" "$(tc_exec "$AGENT" --version)"
	assertEquals "not enabled until configured" disabled \
		"$(tc_exec systemctl is-enabled checkpoint-agent.service 2>/dev/null)"
	assertEquals "not started" inactive "$(tc_exec systemctl is-active checkpoint-agent.service 2>/dev/null)"
	assertTrue "its system user" "tc_exec getent passwd checkpoint-agent"
	assertFalse "no compiler came with it" "tc_exec sh -c 'command -v cc'"
}

test_06_provision_installs_from_the_package_without_a_compiler() {
	local start=$SECONDS
	in_box "$PROVISION" "${PROVISION_OPTS[@]}" --agent-deb "/root/$(basename "$DEB")"
	cp "$OUT/last.log" "$OUT/provision.log"
	tl_log "provision.sh --agent-deb: exit $RC in $((SECONDS - start))s"
	assertEquals "provision.sh; $(tail -n 20 "$OUT/provision.log")" 0 "$RC"
	assertContains "the package is already installed" "$(cat "$OUT/provision.log")" \
		"checkpoint-agent $VERSION installed from its package"
	assertFalse "still no compiler" "tc_exec sh -c 'command -v cc'"
	assertEquals "the service runs from the package's unit" \
		"active /lib/systemd/system/checkpoint-agent.service" \
		"$(tc_exec systemctl is-active checkpoint-agent.service) $(tc_exec systemctl show -P FragmentPath checkpoint-agent.service)"
	assertContains "with provisioning's cluster drop-in" \
		"$(tc_exec systemctl show -P DropInPaths checkpoint-agent.service)" "postgresql-cluster.conf"
}

test_07_migrate_and_check_work_there() {
	in_box runuser -u checkpoint-agent -- "$AGENT" -c "$CONF" migrate
	assertEquals "migrate: $(cat "$OUT/last.log")" 0 "$RC"
	in_box runuser -u checkpoint-agent -- "$AGENT" -c "$CONF" check
	assertEquals "check: $(cat "$OUT/last.log")" 0 "$RC"
	assertEquals "its summary line" "OK -" "$(head -n 1 "$OUT/last.log" | cut -d' ' -f1-2)"
	in_box runuser -u checkpoint-agent -- "$AGENT" -c "$CONF" status --exit-code
	assertEquals "status --exit-code: nothing pending: $(cat "$OUT/last.log")" 0 "$RC"
}

test_08_a_second_provisioning_changes_nothing() {
	in_box "$PROVISION" "${PROVISION_OPTS[@]}" --agent-deb "/root/$(basename "$DEB")"
	assertEquals "provision.sh again; $(tail -n 20 "$OUT/last.log")" 0 "$RC"
	assertContains "$(tail -n 3 "$OUT/last.log")" "Nothing changed"
}

test_09_removing_keeps_the_conffile() {
	in_box env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q checkpoint-agent
	assertEquals "apt-get remove; $(tail -n 5 "$OUT/last.log")" 0 "$RC"
	assertFalse "the binary is gone" "tc_exec test -e $AGENT"
	assertTrue "the example config stays until purge" "tc_exec test -e /etc/checkpoint-agent/agent.conf.example"
	assertEquals "the service stopped with it" inactive \
		"$(tc_exec systemctl is-active checkpoint-agent.service 2>/dev/null)"
}

tl_run
