#!/bin/bash
# 30-role-db.sh: step "role-db". The application's role (LOGIN, SCRAM
# password, owner of its database and nothing else) and its database; the
# agent's own role (CPA_AGENT_DB_ROLE: pg_monitor, and SET ROLE to the
# application's role through a NOINHERIT bridge: lib/roles.sh); pg_hba.conf
# narrowed to those roles and that database (local socket, 127.0.0.1/32,
# ::1/128, plus hostssl lines for --allow-cidr), no trust anywhere;
# listen_addresses and port; password_encryption=scram-sha-256; TLS (the
# server's certificate, ssl = on, TLSv1.2 at least: lib/tls.sh).
#
# The application's password: --password-file, else the one in the
# credentials file (so a re-run keeps it), else 32 random characters from
# /dev/urandom. The agent's: the stored one, else a random one. The server
# gets only their SCRAM verifiers, computed here, sent through a pipe in a
# session with statement logging off. Both stored in CPA_CREDENTIALS_FILE
# (0600 root). A re-run recomputes each verifier with the stored salt and
# changes nothing when it matches.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/password.sh
. "$CPA_PROVISION_DIR/lib/password.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/hba.sh
. "$CPA_PROVISION_DIR/lib/hba.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/roles.sh
. "$CPA_PROVISION_DIR/lib/roles.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/tls.sh
. "$CPA_PROVISION_DIR/lib/tls.sh"

NEED_RESTART=
NEED_RELOAD=

# conf_value NAME: the value set in postgresql.conf (empty when unset).
conf_value() {
	pg_conftool -s "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" show "$1" 2>/dev/null || true
}

# ensure_conf NAME VALUE CONTEXT: set NAME in postgresql.conf with
# pg_conftool when it differs; CONTEXT "restart" or "reload".
ensure_conf() {
	local name=$1 value=$2 context=$3 cur
	cur=$(conf_value "$name")
	if [ "$cur" = "$value" ]; then
		cpa_unchanged "$name = '$value'"
		return 0
	fi
	cpa_run pg_conftool "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" set "$name" "$value"
	cpa_changed "$name = '$value' (was '${cur:-unset}')"
	if [ "$context" = restart ]; then
		NEED_RESTART+="${NEED_RESTART:+, }$name"
	else
		NEED_RELOAD+="${NEED_RELOAD:+, }$name"
	fi
}

configure_server() {
	ensure_conf listen_addresses "$CPA_LISTEN_ADDRESSES" restart
	ensure_conf port "$CPA_PG_PORT" restart
	ensure_conf password_encryption scram-sha-256 reload
}

# configure_tls: the certificate, then the settings; all need only a reload
# (a new certificate in the same files too).
configure_tls() {
	local dir
	dir=$(cpa_tls_dir)
	cpa_ensure_tls_files
	ensure_conf ssl on reload
	ensure_conf ssl_cert_file "$dir/server.crt" reload
	ensure_conf ssl_key_file "$dir/server.key" reload
	ensure_conf ssl_min_protocol_version TLSv1.2 reload
	if [ "$CPA_TLS_CHANGED" = 1 ] && [[ "$NEED_RELOAD" != *ssl* ]]; then
		NEED_RELOAD+="${NEED_RELOAD:+, }the TLS certificate"
	fi
}

configure_hba() {
	local hba new previous rc=0
	hba=$(conf_value hba_file)
	[ -n "$hba" ] || hba=$CPA_PG_CONF_DIR/pg_hba.conf
	[ -f "$hba" ] || cpa_die "$CPA_EX_CONFIG" "$hba does not exist" "Is the cluster complete? pg_lsclusters shows its state."
	new=$(cpa_hba_transform "$CPA_DB_NAME" "$CPA_DB_ROLE" "$CPA_ALLOWED_CIDRS" "$CPA_AGENT_DB_ROLE" <"$hba")
	# The file as it was before provisioning first edited it.
	if [ "$CPA_DRY_RUN" != 1 ] && [ ! -e "$hba.before-checkpoint-agent" ] && ! cmp -s <(printf '%s\n' "$new") "$hba"; then
		cp -a "$hba" "$hba.before-checkpoint-agent"
	fi
	previous=$(cat "$hba")
	printf '%s\n' "$new" | cpa_install_content "$hba" 0640 postgres postgres "pg_hba rules:" || rc=$?
	if cpa_install_result "$rc"; then
		[ "$CPA_DRY_RUN" = 1 ] && return 0
		check_hba_file "$hba" "$previous"
		NEED_RELOAD+="${NEED_RELOAD:+, }pg_hba.conf"
	fi
	if [ "$CPA_DRY_RUN" != 1 ] && cpa_hba_has_trust "$hba"; then
		cpa_die "$CPA_EX_FAILED" "$hba still has a trust line"
	fi
}

# check_hba_file FILE PREVIOUS: the server parses the new file
# (pg_hba_file_rules) before it is loaded; on an error the PREVIOUS content
# is put back.
check_hba_file() {
	local hba=$1 previous=$2 errors
	errors=$(cpa_psql -d postgres -c "SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL")
	if [ -n "$errors" ]; then
		printf '%s\n' "$previous" >"$hba"
		cpa_die "$CPA_EX_FAILED" "PostgreSQL rejects the new pg_hba.conf: $errors" \
			"The previous file is back in place. Check --allow-cidr values."
	fi
}

# apply_server_changes: restart for a changed listen_addresses or port (the
# server then listens on the new port), else reload for what changed; either
# way, a reload or restart an earlier run did not get to is made now
# (cpa_settle_config).
apply_server_changes() {
	local reason
	[ "$CPA_DRY_RUN" = 1 ] && return 0
	if [ -n "$NEED_RESTART" ]; then
		pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" restart
		cpa_wait_ready 120 || cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL did not come back after a restart"
		cpa_changed "restarted PostgreSQL: $NEED_RESTART need a restart${NEED_RELOAD:+ (also $NEED_RELOAD)}"
		return 0
	fi
	reason=${NEED_RELOAD:-the server settings}
	if [ -n "$NEED_RELOAD" ]; then
		cpa_settle_config "$reason" 1
	else
		cpa_settle_config "$reason" 0
	fi
}

ensure_role_and_database() {
	local owner
	if [ "$(cpa_psql -d postgres -v r="$CPA_DB_ROLE" <<<"SELECT count(*) FROM pg_roles WHERE rolname = :'r'")" = 1 ]; then
		cpa_unchanged "role $CPA_DB_ROLE exists"
	else
		cpa_run cpa_psql -d postgres -c "CREATE ROLE \"$CPA_DB_ROLE\" LOGIN"
		cpa_changed "new role $CPA_DB_ROLE (LOGIN)"
	fi
	if [ "$CPA_DRY_RUN" != 1 ] &&
		[ "$(cpa_psql -d postgres -v r="$CPA_DB_ROLE" <<<"SELECT rolcanlogin FROM pg_roles WHERE rolname = :'r'")" != t ]; then
		cpa_psql -d postgres -c "ALTER ROLE \"$CPA_DB_ROLE\" LOGIN"
		cpa_changed "role $CPA_DB_ROLE may log in"
	fi
	owner=$(cpa_psql -d postgres -v d="$CPA_DB_NAME" <<<"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :'d'")
	if [ -z "$owner" ]; then
		cpa_run cpa_psql -d postgres -c "CREATE DATABASE \"$CPA_DB_NAME\" OWNER \"$CPA_DB_ROLE\""
		cpa_changed "new database $CPA_DB_NAME owned by $CPA_DB_ROLE"
	elif [ "$owner" != "$CPA_DB_ROLE" ]; then
		cpa_run cpa_psql -d postgres -c "ALTER DATABASE \"$CPA_DB_NAME\" OWNER TO \"$CPA_DB_ROLE\""
		cpa_changed "database $CPA_DB_NAME now owned by $CPA_DB_ROLE (was $owner)"
	else
		cpa_unchanged "database $CPA_DB_NAME owned by $CPA_DB_ROLE"
	fi
}

# ensure_agent_role: the application's role owns and nothing more; the
# agent's own role with pg_monitor, which may SET ROLE to it (lib/roles.sh).
# On a server provisioned before this layout, the application's role was a
# member of pg_read_all_stats: that is revoked here.
ensure_agent_role() {
	cpa_ensure_owner_role_only_owns "$CPA_DB_ROLE"
	cpa_ensure_agent_role "$CPA_DB_ROLE" "$CPA_AGENT_DB_ROLE"
}

# stored_verifier ROLE: the role's SCRAM verifier from pg_authid (not a
# secret that logs in: it is what the server stores).
stored_verifier() {
	cpa_psql -d postgres -v r="$1" <<<"SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = :'r'"
}

# choose_agent_password: the agent role's stored password, else a new one.
choose_agent_password() {
	local pw
	pw=$(cpa_credentials_agent_password)
	if [ -z "$pw" ] || cpa_password_problem "$pw" >/dev/null; then
		pw=$(cpa_generate_password) || cpa_die "$CPA_EX_FAILED" "could not read /dev/urandom"
	fi
	printf '%s\n' "$pw"
}

# ensure_role_password ROLE PASSWORD: set ROLE's SCRAM verifier when it is not
# the one of PASSWORD (computed here; the password does not reach the server).
ensure_role_password() {
	local role=$1 pw=$2 verifier
	if [ "$CPA_DRY_RUN" = 1 ]; then
		if [ "$(cpa_cluster_status)" = online ] && cpa_verifier_matches "$(stored_verifier "$role")" "$pw"; then
			cpa_unchanged "role $role has this password (SCRAM-SHA-256 verifier matches)"
		else
			cpa_changed "set the password of role $role (a SCRAM-SHA-256 verifier computed here)"
		fi
		return 0
	fi
	if cpa_verifier_matches "$(stored_verifier "$role")" "$pw"; then
		cpa_unchanged "role $role has this password (SCRAM-SHA-256 verifier matches)"
		return 0
	fi
	verifier=$(cpa_scram_verifier <<<"$pw") || cpa_die "$CPA_EX_FAILED" "computing the SCRAM verifier failed (perl)"
	cpa_psql_set_role_password "$role" "$verifier" cpa_psql -d postgres >/dev/null ||
		cpa_die "$CPA_EX_FAILED" "setting the password of role $role failed"
	cpa_changed "set the password of role $role (SCRAM-SHA-256 verifier computed here; the password did not reach the server)"
}

# choose_password: prints the password to use (never logged).
choose_password() {
	local pw problem
	if [ -n "$CPA_PASSWORD_SOURCE" ]; then
		[ -r "$CPA_PASSWORD_SOURCE" ] || cpa_die "$CPA_EX_CONFIG" "cannot read the password file $CPA_PASSWORD_SOURCE"
		pw=$(cpa_read_first_line "$CPA_PASSWORD_SOURCE") ||
			cpa_die "$CPA_EX_CONFIG" "the password file $CPA_PASSWORD_SOURCE is empty"
		if problem=$(cpa_password_problem "$pw"); then
			cpa_die "$CPA_EX_CONFIG" "the password in $CPA_PASSWORD_SOURCE is unusable: $problem" \
				"Use 12-200 printable ASCII characters without spaces, or leave --password-file out to get a random one."
		fi
	else
		pw=$(cpa_credentials_password)
		if [ -z "$pw" ] || cpa_password_problem "$pw" >/dev/null; then
			pw=$(cpa_generate_password) || cpa_die "$CPA_EX_FAILED" "could not read /dev/urandom"
		fi
	fi
	printf '%s\n' "$pw"
}

ensure_password() {
	local pw agent_pw source
	if [ -n "$CPA_PASSWORD_SOURCE" ]; then
		source="from $CPA_PASSWORD_SOURCE"
	elif [ -n "$(cpa_credentials_password)" ]; then
		source="stored in $CPA_CREDENTIALS_FILE"
	else
		source="generated from /dev/urandom"
	fi
	if [ "$CPA_DRY_RUN" = 1 ] && [ "$source" = "generated from /dev/urandom" ]; then
		cpa_changed "generate passwords for $CPA_DB_ROLE and $CPA_AGENT_DB_ROLE, store them in $CPA_CREDENTIALS_FILE (0600 root) and set their SCRAM verifiers"
		return 0
	fi
	pw=$(choose_password) || exit "$?"
	agent_pw=$(choose_agent_password) || exit "$?"
	cpa_credentials_content "$pw" "$agent_pw" |
		cpa_install_content "$CPA_CREDENTIALS_FILE" 0600 root root "credentials ($source)" --secret || cpa_installed "$?"
	ensure_role_password "$CPA_DB_ROLE" "$pw"
	if [ "$CPA_DRY_RUN" = 1 ] && ! cpa_role_exists "$CPA_AGENT_DB_ROLE"; then
		cpa_changed "set the password of role $CPA_AGENT_DB_ROLE (a SCRAM-SHA-256 verifier computed here)"
	else
		ensure_role_password "$CPA_AGENT_DB_ROLE" "$agent_pw"
	fi
}

main() {
	cpa_init_step role-db "$@"
	if [ "$CPA_DRY_RUN" = 1 ] && ! cpa_cluster_exists; then
		cpa_changed "configure listen_addresses='$CPA_LISTEN_ADDRESSES', port $CPA_PG_PORT, scram-sha-256 only"
		cpa_changed "TLS: ssl = on, TLSv1.2 at least, ${CPA_TLS_CERT_FILE:-a self-signed certificate}"
		cpa_changed "pg_hba: $CPA_DB_ROLE to $CPA_DB_NAME from the socket, 127.0.0.1/32, ::1/128${CPA_ALLOWED_CIDRS:+, $CPA_ALLOWED_CIDRS (hostssl: TLS only)}; $CPA_AGENT_DB_ROLE from this host only; no trust"
		cpa_changed "create role $CPA_DB_ROLE and database $CPA_DB_NAME; passwords in $CPA_CREDENTIALS_FILE"
		cpa_changed "create role $CPA_AGENT_DB_ROLE (pg_monitor; SET ROLE $CPA_DB_ROLE through $(cpa_agent_bridge_role "$CPA_AGENT_DB_ROLE")) for the agent"
		return 0
	fi
	# Running first: the new pg_hba.conf is checked by the server itself.
	if [ "$CPA_DRY_RUN" != 1 ]; then
		cpa_cluster_start
		cpa_wait_ready 60 || cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL does not accept connections"
	fi
	configure_server
	configure_tls
	# The server settings first: pg_hba's hostssl lines are refused unless
	# ssl = on is loaded.
	apply_server_changes
	NEED_RESTART=
	NEED_RELOAD=
	configure_hba
	apply_server_changes
	if [ "$CPA_DRY_RUN" = 1 ] && [ "$(cpa_cluster_status)" != online ]; then
		cpa_changed "create role $CPA_DB_ROLE and database $CPA_DB_NAME if missing"
	else
		ensure_role_and_database
		ensure_agent_role
	fi
	ensure_password
}

main "$@"
