#!/bin/bash
# t0003-install: what `make install` puts in place, the man pages and the
# bash completion, without a database.
#   - make install DESTDIR PREFIX=/usr: the binary, the example config, the
#     units with /usr/bin substituted (under /lib/systemd/system), both man
#     pages, the completion; PREFIX=/usr/local: units under /etc/systemd/system
#     naming /usr/local/bin; make uninstall removes them;
#   - a build that misses a library names the Debian package;
#   - the man pages pass mandoc -T lint and man --warnings, and document every
#     command, every check and every setting of the example config;
#   - the completion completes commands, options and values, and knows the
#     agent's own command and check names;
#   - LICENSE and CHANGELOG.md are there.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

MAN8=$TL_ROOT/man/checkpoint-agent.8
MAN5=$TL_ROOT/man/checkpoint-agent.conf.5
COMPLETION=$TL_ROOT/completion/checkpoint-agent.bash

suite_setup() {
	DEST=$(tl_tmpdir) || return 1
}

# files_under DIR: every file and link below DIR, relative, sorted.
files_under() {
	(cd "$1" && find . \( -type f -o -type l \) | sort)
}

test_01_make_install_for_a_package_prefix() {
	local d=$DEST/usr-prefix
	make -C "$TL_ROOT" --no-print-directory -s install DESTDIR="$d" PREFIX=/usr >"$DEST/install.log" 2>&1
	assertEquals "make install: $(cat "$DEST/install.log")" 0 $?
	assertEquals "what it installs" "./etc/checkpoint-agent/agent.conf.example
./lib/systemd/system/checkpoint-agent-migrate.service
./lib/systemd/system/checkpoint-agent.service
./usr/bin/checkpoint-agent
./usr/share/bash-completion/completions/checkpoint-agent
./usr/share/man/man5/checkpoint-agent.conf.5
./usr/share/man/man8/checkpoint-agent.8" "$(files_under "$d")"
	assertEquals "the service starts the installed binary" \
		"ExecStart=/usr/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf run" \
		"$(grep '^ExecStart=' "$d/lib/systemd/system/checkpoint-agent.service")"
	assertEquals "so does the one-shot unit" \
		"ExecStart=/usr/bin/checkpoint-agent -c /etc/checkpoint-agent/agent.conf migrate" \
		"$(grep '^ExecStart=' "$d/lib/systemd/system/checkpoint-agent-migrate.service")"
	assertEquals "no /usr/local left in the units" "" "$(grep -l /usr/local "$d"/lib/systemd/system/* 2>/dev/null)"
	assertEquals "modes" "755 644 644" "$(stat -c %a "$d/usr/bin/checkpoint-agent" \
		"$d/lib/systemd/system/checkpoint-agent.service" "$d/usr/share/man/man8/checkpoint-agent.8" | paste -sd ' ')"
	assertEquals "the installed binary runs" "checkpoint-agent $(cat "$TL_ROOT/VERSION")" "$("$d/usr/bin/checkpoint-agent" --version)"
}

test_02_make_install_for_a_local_prefix_and_uninstall() {
	local d=$DEST/local-prefix
	make -C "$TL_ROOT" --no-print-directory -s install DESTDIR="$d" SYSCONFDIR=/etc/cpa >/dev/null 2>&1
	assertEquals "make install" 0 $?
	assertEquals "units for the administrator's folder, naming /usr/local and the config folder" \
		"ExecStart=/usr/local/bin/checkpoint-agent -c /etc/cpa/checkpoint-agent/agent.conf run" \
		"$(grep '^ExecStart=' "$d/etc/systemd/system/checkpoint-agent.service")"
	assertTrue "man pages under /usr/local/share/man" "[ -f '$d/usr/local/share/man/man8/checkpoint-agent.8' ]"
	make -C "$TL_ROOT" --no-print-directory -s uninstall DESTDIR="$d" SYSCONFDIR=/etc/cpa >/dev/null 2>&1
	assertEquals "make uninstall leaves no file" "" "$(files_under "$d")"
}

test_03_a_missing_library_names_its_package() {
	local out rc=0
	out=$(PKG_CONFIG_LIBDIR=$DEST/no-pc make -C "$TL_ROOT" --no-print-directory build-deps 2>&1) || rc=$?
	assertNotEquals "make fails" 0 "$rc"
	assertContains "it names the packages" "$out" \
		"missing build dependencies: libpq-dev libconfig-dev libsystemd-dev libmicrohttpd-dev libjson-c-dev; install them: apt-get install libpq-dev libconfig-dev libsystemd-dev libmicrohttpd-dev libjson-c-dev"
	out=$(make -C "$TL_ROOT" --no-print-directory build-deps 2>&1)
	assertEquals "with everything there: $out" 0 $?
}

test_04_man_pages_pass_mandoc_lint_and_man_warnings() {
	local page out
	for page in "$MAN8" "$MAN5"; do
		out=$(mandoc -T lint -W warning "$page" 2>&1)
		assertEquals "mandoc -T lint $page: $out" 0 $?
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
		assertEquals "man --warnings $page" "" "$out"
	done
}

# in_page REGEX: the rendered page in PAGE_TEXT has a line matching REGEX.
in_page() {
	printf '%s\n' "$PAGE_TEXT" | grep -Eq "$1"
}

test_05_the_agent_page_documents_every_command_and_check() {
	local name commands checks
	PAGE_TEXT=$(MANWIDTH=200 man -l "$MAN8" 2>/dev/null)
	commands=$("$TL_AGENT" frobnicate 2>&1 | sed -n 's/.*the commands are \(.*\)$/\1/p' | sed 's/,\| and / /g')
	assertNotEquals "the agent lists its commands" "" "$commands"
	for name in $commands; do
		assertTrue "command $name in COMMANDS" "in_page '^     $name( |$)'"
	done
	checks=$("$TL_AGENT" check --only none-such 2>&1 | sed -n 's/.*the checks are \(.*\)$/\1/p' | tr -d ,)
	assertNotEquals "the agent lists its checks" "" "$checks"
	for name in $checks; do
		assertTrue "check $name in CHECKS" "in_page '^     $name( |$)'"
	done
	for name in 0 1 2 3 64 65 69 70 75 77 78 130 143; do
		assertTrue "exit code $name in EXIT STATUS" "in_page '^     $name +[A-Za-z]'"
	done
}

test_06_the_conf_page_documents_every_setting_of_the_example() {
	local settings name
	PAGE_TEXT=$(MANWIDTH=200 man -l "$MAN5" 2>/dev/null)
	settings=$(grep -Eo '^ *#? *[a-z_]+ = ' "$TL_ROOT/agent/agent.conf.example" | tr -d '# =' | sort -u)
	assertTrue "the example has settings" "[ $(printf '%s\n' "$settings" | wc -l) -gt 30 ]"
	for name in $settings; do
		assertTrue "setting $name in the page" "in_page '(^|[ ,])$name([ ,(]|$)'"
	done
}

# complete_words WORDS...: what the completion offers for the last word.
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _checkpoint_agent
		printf "%s\n" "${COMPREPLY[@]}"' completion "$COMPLETION" "$@" | sort | paste -sd ' '
}

test_07_bash_completion() {
	assertEquals "a command" "check" "$(complete_words checkpoint-agent ch)"
	assertEquals "help's command" "rollback run" "$(complete_words checkpoint-agent help r)"
	assertEquals "global options" "--config --help --verbose --version" "$(complete_words checkpoint-agent --)"
	assertEquals "check's options, and the common ones" "--config --critical --format --help --only --skip --verbose --warning" \
		"$(complete_words checkpoint-agent check --)"
	assertEquals "after -c FILE, the command's options" "--config --exit-code --help --json --verbose" \
		"$(complete_words checkpoint-agent -c /etc/agent.conf status --)"
	assertEquals "after check, -c is a number: no file names" "" \
		"$(cd "$TL_ROOT" && complete_words checkpoint-agent check -c "")"
	assertEquals "after check, --config is a file" "Makefile" \
		"$(cd "$TL_ROOT" && complete_words checkpoint-agent check --config Makef)"
	assertEquals "formats" "json prometheus text" "$(complete_words checkpoint-agent check --format "")"
	assertEquals "the next item of a list" "disk,schema disk,size" "$(complete_words checkpoint-agent check --only disk,s)"
	assertEquals "sets" "langgraph langgraph-store" "$(complete_words checkpoint-agent rollback --set langgraph)"
	assertEquals "no words for a number" "" "$(complete_words checkpoint-agent check --only disk -w "")"
}

test_08_the_completion_knows_the_agents_names() {
	local commands checks
	commands=$("$TL_AGENT" frobnicate 2>&1 | sed -n 's/.*the commands are \(.*\)$/\1/p' | sed 's/,\| and / /g' |
		tr ' ' '\n' | grep . | sort | paste -sd ' ')
	assertEquals "the commands" "$commands" "$(complete_words checkpoint-agent "")"
	checks=$("$TL_AGENT" check --only none-such 2>&1 | sed -n 's/.*the checks are \(.*\)$/\1/p' | tr -d , |
		tr ' ' '\n' | sort | paste -sd ' ')
	assertEquals "the checks" "$checks" "$(complete_words checkpoint-agent check --only "")"
}

test_09_license_and_changelog() {
	assertTrue "LICENSE is the MIT licence" "grep -q '^MIT License$' '$TL_ROOT/LICENSE'"
	assertTrue "CHANGELOG.md names this version" "grep -q '^## $(cat "$TL_ROOT/VERSION")' '$TL_ROOT/CHANGELOG.md'"
	assertEquals "debian/changelog's version is VERSION's" "$(cat "$TL_ROOT/VERSION")" \
		"$(dpkg-parsechangelog -l "$TL_ROOT/debian/changelog" -S Version)"
}

tl_run
