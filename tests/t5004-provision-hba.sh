#!/bin/bash
# t5004-provision-hba: the pg_hba.conf edit of the role-db step
# (provision/lib/hba.sh) on a throwaway cluster's own file (initdb's, like
# Debian's: peer locally, scram-sha-256 over TCP, plus a trust line added to
# prove it goes): idempotent, no trust, the application's role reaches only its
# database from the allowed addresses, and PostgreSQL loads the result.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"
# shellcheck source=provision/lib/common.sh
. "$TL_ROOT/provision/lib/common.sh"
# shellcheck source=provision/lib/hba.sh
. "$TL_ROOT/provision/lib/hba.sh"

suite_setup() {
	tl_pg_start || return 1
	HBA=$TL_PGDATA/pg_hba.conf
	WORK=$(tl_tmpdir) || return 1
	ORIGINAL=$WORK/pg_hba.conf.orig
	printf 'host all all 10.9.9.0/24 trust\nlocal sameuser all  trust # an old hack\nhost sameuser all 10.8.0.0/16 md5\n' >>"$HBA"
	cp "$HBA" "$ORIGINAL"
	# A second role with a password, that must not get in over TCP.
	PW_FILE=$WORK/other-pw
	head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$PW_FILE"
	chmod 0644 "$PW_FILE"
	tl_psql_super -d postgres >/dev/null <<-EOF || return 1
		\\set pw \`cat $PW_FILE\`
		CREATE ROLE other LOGIN PASSWORD :'pw';
	EOF
	enable_tls
}

# enable_tls: ssl = on with a certificate, as the role-db step loads it before
# pg_hba.conf: PostgreSQL refuses hostssl lines while SSL is off.
enable_tls() {
	local tls=$TL_PGDIR/tls
	mkdir -p "$tls" && chown postgres: "$tls" || return 1
	"$TL_ROOT/provision/tls-selfsigned.sh" "$tls/server.crt" "$tls/server.key" localhost || return 1
	chown postgres: "$tls/server.crt" "$tls/server.key" || return 1
	tl_psql_super -d postgres >/dev/null <<-EOF || return 1
		ALTER SYSTEM SET ssl_cert_file = '$tls/server.crt';
		ALTER SYSTEM SET ssl_key_file = '$tls/server.key';
		ALTER SYSTEM SET ssl = on;
		SELECT pg_reload_conf();
	EOF
	sleep 0.5
}

transform() {
	cpa_hba_transform "$TL_APP_DB" "$TL_APP_ROLE" "${1:-}" <"$ORIGINAL"
}

active_lines() {
	grep -Ev '^[[:space:]]*(#|$)' | tr -s ' '
}

apply_and_reload() {
	transform "$1" >"$HBA"
	assertEquals "PostgreSQL parses every line" "" \
		"$(tl_sql "SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL")"
	tl_sql "SELECT pg_reload_conf()" >/dev/null
	sleep 0.3
}

other_login() {
	printf '127.0.0.1:%s:*:other:%s\n' "$TL_PGPORT" "$(cat "$PW_FILE")" >"$TL_PGDIR/pgpass-other"
	chmod 0600 "$TL_PGDIR/pgpass-other"
	PGPASSFILE=$TL_PGDIR/pgpass-other "$TL_PGBIN/psql" -X -At -w -h 127.0.0.1 -p "$TL_PGPORT" \
		-U other -d "$1" -c 'SELECT 1' 2>&1
}

test_01_the_rules_are_the_narrowest_that_work() {
	local out
	out=$(transform | active_lines)
	assertEquals "local $TL_APP_DB $TL_APP_ROLE scram-sha-256
host $TL_APP_DB $TL_APP_ROLE 127.0.0.1/32 scram-sha-256
host $TL_APP_DB $TL_APP_ROLE ::1/128 scram-sha-256
local all postgres peer" "$out"
}

test_02_no_trust_or_md5_line_stays_active_and_disabled_lines_are_kept_as_comments() {
	local out
	out=$(transform)
	assertTrue "the original had trust" "cpa_hba_has_trust '$ORIGINAL'"
	assertFalse "no active trust" "cpa_hba_has_trust <(printf '%s\n' \"\$out\")"
	assertContains "$out" "${CPA_HBA_DISABLED}host all all 10.9.9.0/24 trust"
	assertContains "$out" "${CPA_HBA_DISABLED}local sameuser all  trust # an old hack"
	assertContains "md5 goes too: scram-sha-256 only" "$out" "${CPA_HBA_DISABLED}host sameuser all 10.8.0.0/16 md5"
}

test_03_a_second_run_changes_nothing() {
	local once twice
	once=$(transform "192.0.2.0/24")
	twice=$(printf '%s\n' "$once" | cpa_hba_transform "$TL_APP_DB" "$TL_APP_ROLE" "192.0.2.0/24")
	assertEquals "$once" "$twice"
}

test_04_allowed_cidrs_are_added_and_removed_with_the_option() {
	local with without
	with=$(transform "192.0.2.0/24 2001:db8::/32")
	assertContains "$with" "192.0.2.0/24"
	assertContains "$with" "2001:db8::/32"
	without=$(printf '%s\n' "$with" | cpa_hba_transform "$TL_APP_DB" "$TL_APP_ROLE" "")
	assertNotContains "$without" "192.0.2.0/24"
	assertEquals "the block appears once" 1 "$(grep -c "^$CPA_HBA_BEGIN" <<<"$without")"
}

test_05_postgresql_loads_it_and_only_the_application_gets_in() {
	local out
	apply_and_reload "192.0.2.0/24"
	out=$(tl_psql_app -c 'SELECT current_user') || fail "the application cannot connect: $out"
	assertEquals "$TL_APP_ROLE" "$out"
	out=$(tl_psql_app -d postgres -c 'SELECT 1' 2>&1) && fail "the application reached another database"
	assertContains "$out" "no pg_hba.conf entry"
	out=$(other_login postgres) && fail "another role got in over TCP"
	assertContains "$out" "no pg_hba.conf entry"
	out=$(tl_sql 'SELECT current_user') || fail "postgres lost its peer access: $out"
	assertEquals postgres "$out"
	assertEquals "every loaded rule uses peer or scram-sha-256" "peer scram-sha-256" \
		"$(tl_sql "SELECT string_agg(DISTINCT auth_method, ' ' ORDER BY auth_method) FROM pg_hba_file_rules")"
}

test_07_other_networks_get_hostssl_lines_only_and_the_agent_this_host_only() {
	local out
	out=$(cpa_hba_transform db app "192.0.2.0/24 2001:db8::/32" monitor </dev/null | active_lines)
	assertEquals "local db app scram-sha-256
host db app 127.0.0.1/32 scram-sha-256
host db app ::1/128 scram-sha-256
hostssl db app 192.0.2.0/24 scram-sha-256
hostssl db app 2001:db8::/32 scram-sha-256
local db monitor scram-sha-256
host db monitor 127.0.0.1/32 scram-sha-256
host db monitor ::1/128 scram-sha-256
local all postgres peer" "$out"
	assertEquals "no plain host line for another network" "" "$(grep -E '^host .*(192\.0\.2|2001:db8)' <<<"$out")"
}

test_08_postgresql_loads_the_hostssl_and_agent_lines() {
	transform_with_agent() {
		cpa_hba_transform "$TL_APP_DB" "$TL_APP_ROLE" "192.0.2.0/24" monitor <"$ORIGINAL"
	}
	transform_with_agent >"$HBA"
	assertEquals "PostgreSQL parses every line" "" \
		"$(tl_sql "SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL")"
	assertEquals "the network's rule is TLS only" "hostssl" \
		"$(tl_sql "SELECT type FROM pg_hba_file_rules WHERE address = '192.0.2.0'")"
	assertEquals "the agent's rules" "local host host" \
		"$(tl_sql "SELECT string_agg(type, ' ' ORDER BY line_number) FROM pg_hba_file_rules WHERE user_name = '{monitor}'")"
	transform >"$HBA"
	unset -f transform_with_agent
}

test_06_a_file_without_a_postgres_peer_line_gets_one() {
	local out
	out=$(printf 'local all postgres trust\nhost all all 0.0.0.0/0 md5\n' |
		cpa_hba_transform db app "" | active_lines)
	assertEquals "local db app scram-sha-256
host db app 127.0.0.1/32 scram-sha-256
host db app ::1/128 scram-sha-256
local all postgres peer" "$out"
}

tl_run
