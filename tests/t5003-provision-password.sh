#!/bin/bash
# t5003-provision-password: the role's password and the files that carry it.
# The SCRAM verifier computed by provision/lib/scram-verifier.pl is checked
# against PostgreSQL itself (the server's own verifier, recomputed with its
# salt) and by logging in over TCP with scram-sha-256; the password must not
# reach the server log even with log_statement = all. Also: the template
# renderer (placeholders, secrets through CPA_TPL), URL-encoding checked by a
# real libpq connection, and the password rules.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=provision/lib/common.sh
. "$TL_ROOT/provision/lib/common.sh"
# shellcheck source=provision/lib/password.sh
. "$TL_ROOT/provision/lib/password.sh"

suite_setup() {
	tl_pg_start || return 1
	# The provisioning's psql helpers reach this cluster.
	export PGHOST=$TL_PGSOCK
	CPA_PG_PORT=$TL_PGPORT
	tl_psql_super -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
	WORK=$(tl_tmpdir)
}

# app_login PASSWORD [DB]: psql as the application over 127.0.0.1 with a
# password given through a 0600 pgpass file.
app_login() {
	local pass=$WORK/pgpass.$RANDOM
	printf '127.0.0.1:%s:*:%s:%s\n' "$TL_PGPORT" "$TL_APP_ROLE" "$1" >"$pass"
	chmod 0600 "$pass"
	PGPASSFILE=$pass "$TL_PGBIN/psql" -X -At -w -h 127.0.0.1 -p "$TL_PGPORT" -U "$TL_APP_ROLE" \
		-d "${2:-$TL_APP_DB}" -c 'SELECT current_user' 2>&1
	local rc=$?
	rm -f "$pass"
	return "$rc"
}

stored_verifier() {
	tl_sql "SELECT rolpassword FROM pg_authid WHERE rolname = '$TL_APP_ROLE'"
}

test_01_generated_passwords_are_32_random_alphanumerics() {
	local a b
	a=$(cpa_generate_password)
	b=$(cpa_generate_password)
	assertTrue "32 characters of [A-Za-z0-9]: $a" "[[ '$a' =~ ^[A-Za-z0-9]{32}$ ]]"
	assertNotEquals "two passwords differ" "$a" "$b"
	assertFalse "a generated password passes the rules" "cpa_password_problem '$a'"
}

test_02_unusable_passwords_are_named() {
	assertContains "$(cpa_password_problem short)" "shorter than 12"
	assertContains "$(cpa_password_problem 'has a space in it')" "white space"
	assertContains "$(cpa_password_problem "ümlaut-password-x")" "printable ASCII"
	assertContains "$(cpa_password_problem "$(printf 'tab\there-password')")" "printable ASCII"
}

test_03_the_verifier_equals_the_one_postgresql_computes() {
	local pw=$WORK/pw1 server salt iter mine
	printf 'S0me-pa55word/with:signs%%\n' >"$pw"
	tl_psql_super -d postgres >/dev/null <<-EOF
		\\set p \`cat $pw\`
		SET password_encryption = 'scram-sha-256';
		ALTER ROLE $TL_APP_ROLE PASSWORD :'p';
	EOF
	server=$(stored_verifier)
	[[ "$server" =~ ^SCRAM-SHA-256\$([0-9]+):([^$]+)\$ ]] || fail "no SCRAM verifier: $server"
	iter=${BASH_REMATCH[1]}
	salt=${BASH_REMATCH[2]}
	mine=$(cpa_scram_verifier "$salt" "$iter" <"$pw")
	assertEquals "same salt and iterations give the server's verifier" "$server" "$mine"
	assertTrue "cpa_verifier_matches agrees" "cpa_verifier_matches '$server' '$(cat "$pw")'"
	assertFalse "and tells another password apart" "cpa_verifier_matches '$server' 'other-password-123'"
}

test_04_a_verifier_set_by_provisioning_logs_in_and_the_password_stays_out_of_the_log() {
	local pw verifier out
	pw=$(cpa_generate_password)
	verifier=$(cpa_scram_verifier <<<"$pw")
	cpa_psql_set_role_password "$TL_APP_ROLE" "$verifier" cpa_psql -d postgres >/dev/null ||
		fail "setting the verifier failed"
	out=$(app_login "$pw") || fail "login with the password failed: $out"
	assertEquals "$TL_APP_ROLE" "$out"
	out=$(app_login "wrong-$pw") && fail "a wrong password logged in"
	assertContains "$out" "password authentication failed"
	sleep 0.5
	assertFalse "the password is not in the server log" "grep -qF -- '$pw' '$TL_PGDIR/server.log'"
	assertFalse "nor the verifier (statement logging was off)" "grep -qF -- '${verifier##*:}' '$TL_PGDIR/server.log'"
	assertTrue "the log does have statements (log_statement = all works)" "grep -q 'statement:' '$TL_PGDIR/server.log'"
	assertEquals "the stored verifier is the one sent" "$verifier" "$(stored_verifier)"
}

test_05_malformed_verifiers_and_role_names_are_not_sent() {
	assertFalse "cpa_psql_set_role_password $TL_APP_ROLE \"x'; DROP ROLE postgres; --\" cat"
	assertFalse "cpa_psql_set_role_password 'a\"b' 'SCRAM-SHA-256\$4096:AA==\$AA==:AA==' cat"
}

test_06_urlencoding_survives_a_real_connection() {
	local pw='p@ss/w:rd#%?&=+ x!' enc verifier uri out
	assertEquals "p%40ss%2Fw%3Ard%23%25%3F%26%3D%2B%20x%21" "$(cpa_urlencode "$pw")"
	assertEquals "unreserved characters stay" "aZ09-._~" "$(cpa_urlencode 'aZ09-._~')"
	# The space is fine for a URI but not for provisioning; libpq must
	# still decode exactly what was encoded.
	verifier=$(cpa_scram_verifier <<<"$pw")
	cpa_psql_set_role_password "$TL_APP_ROLE" "$verifier" cpa_psql -d postgres >/dev/null || fail "setting failed"
	enc=$(cpa_urlencode "$pw")
	uri="postgresql://$TL_APP_ROLE:$enc@127.0.0.1:$TL_PGPORT/$TL_APP_DB"
	# The URI goes through a file into a psql variable, not on a command line.
	printf '%s\n' "$uri" >"$WORK/uri"
	chmod 0644 "$WORK/uri"
	out=$(tl_psql_super -d postgres 2>&1 <<-EOF
		\\set uri \`cat $WORK/uri\`
		\\connect :uri
		SELECT current_user;
	EOF
	)
	assertEquals "libpq decodes the password" "$TL_APP_ROLE" "$out"
	rm -f "$WORK/uri"
}

test_07_render_fills_placeholders_once_and_refuses_unknown_ones() {
	local t=$WORK/t.j2 out rc
	printf 'a={{ x }} b={{y}} c={{ x }}{{ y }}\nplain line\n' >"$t"
	out=$(cpa_render "$t" x=1 'y={{ x }}')
	assertEquals "values are not expanded again" "a=1 b={{ x }} c=1{{ x }}
plain line" "$out"
	rc=0
	out=$( (cpa_render "$t" x=1) 2>&1) || rc=$?
	assertEquals 78 "$rc"
	assertContains "$out" "no value for {{ y }}"
	printf '{%% if x %%}\n' >"$t"
	rc=0
	(cpa_render "$t" x=1) >/dev/null 2>&1 || rc=$?
	assertEquals "Jinja statements are refused (Ansible would render them differently)" 78 "$rc"
}

test_08_secrets_reach_the_renderer_through_the_array() {
	local out
	CPA_TPL[cpa_db_password_urlencoded]=s3cr%2Ft
	out=$(cpa_render "$TL_ROOT/provision/templates/app.env.j2" cpa_db_role=ai_agent cpa_pg_port=5432 \
		cpa_db_name=langgraph_checkpoints cpa_app_group=checkpoint-app)
	unset 'CPA_TPL[cpa_db_password_urlencoded]'
	assertContains "$out" "CHECKPOINT_DB_URI=postgresql://ai_agent:s3cr%2Ft@localhost:5432/langgraph_checkpoints"
}

test_09_every_template_renders_with_the_documented_names() {
	local t out
	for t in "$TL_ROOT"/provision/templates/*.j2; do
		out=$(grep -o '{{ *[a-z_0-9]* *}}' "$t" | tr -d '{} ' | sort -u)
		assertNotNull "$t has placeholders" "$out"
		assertEquals "$t uses only {{ name }} placeholders" "" "$(grep -E '\{%|\{#' "$t")"
	done
}

test_10_credentials_file_round_trip() {
	local pw agent_pw
	pw=$(cpa_generate_password)
	agent_pw=$(cpa_generate_password)
	CPA_CREDENTIALS_FILE=$WORK/credentials
	CPA_ENV_FILE=/etc/checkpoint-agent/app.env CPA_DB_ROLE=ai_agent CPA_DB_NAME=db CPA_AGENT_DB_ROLE=checkpoint_monitor \
		cpa_credentials_content "$pw" "$agent_pw" >"$CPA_CREDENTIALS_FILE"
	assertEquals "$pw" "$(cpa_credentials_password)"
	assertEquals "the agent's role has its own" "$agent_pw" "$(cpa_credentials_agent_password)"
	# A file from before the agent had a role of its own: no agent password.
	grep -v '^agent_' "$CPA_CREDENTIALS_FILE" >"$WORK/credentials-old"
	CPA_CREDENTIALS_FILE=$WORK/credentials-old
	assertEquals "$pw" "$(cpa_credentials_password)"
	assertEquals "an older file has no agent password" "" "$(cpa_credentials_agent_password)"
	CPA_CREDENTIALS_FILE=$WORK/absent
	assertEquals "no file, no password" "" "$(cpa_credentials_password)"
}

tl_run
