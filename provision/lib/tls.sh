# shellcheck shell=bash
# tls.sh: TLS for the clients of the checkpoint database (the role-db step).
#
#   certificate   CPA_TLS_CERT_FILE and CPA_TLS_KEY_FILE when given (checked:
#                 the key matches, and CPA_TLS_CA_FILE, when given, signed the
#                 certificate), else a self-signed one made on the server by
#                 provision/tls-selfsigned.sh for CPA_DB_PUBLIC_HOST (renewed
#                 when that name or the listen addresses change, or 30 days
#                 before it expires). Both end up in CPA_PG_CONF_DIR/tls:
#                 server.crt 0644, server.key 0600 postgres.
#   settings      ssl = on, ssl_cert_file, ssl_key_file,
#                 ssl_min_protocol_version = 'TLSv1.2' (all reloadable)
#   clients       --allow-cidr networks get hostssl lines only (lib/hba.sh);
#                 their URI (CPA_REMOTE_ENV_FILE) has sslmode=require, or
#                 sslmode=verify-full with the CA, copied to
#                 CPA_CONFIG_DIR/tls-ca.crt for the clients to copy.

# cpa_tls_dir: where the server's certificate and key are kept.
cpa_tls_dir() {
	printf '%s/tls\n' "$CPA_PG_CONF_DIR"
}

# cpa_tls_ca_path: the CA certificate for clients (sslrootcert).
cpa_tls_ca_path() {
	printf '%s/tls-ca.crt\n' "$CPA_CONFIG_DIR"
}

# cpa_tls_public_host: the name clients use: CPA_DB_PUBLIC_HOST, else this
# host's fully qualified name, else its name.
cpa_tls_public_host() {
	local h=$CPA_DB_PUBLIC_HOST
	[ -n "$h" ] || h=$(hostname -f 2>/dev/null || true)
	[ -n "$h" ] || h=$(hostname)
	printf '%s\n' "$h"
}

# cpa_tls_altnames: the listen addresses that are IP addresses or names (not
# localhost or a wildcard), for the generated certificate.
cpa_tls_altnames() {
	local a
	for a in ${CPA_LISTEN_ADDRESSES//,/ }; do
		case "$a" in
		localhost | '*' | 0.0.0.0 | :: | 127.0.0.1 | ::1) ;;
		*) printf '%s\n' "$a" ;;
		esac
	done
}

# cpa_tls_uri_params: the URI query of remote clients.
cpa_tls_uri_params() {
	if [ -n "$CPA_TLS_CA_FILE" ]; then
		printf 'sslmode=verify-full&sslrootcert=%s\n' "$(cpa_tls_ca_path)"
	else
		printf 'sslmode=require\n'
	fi
}

# cpa_tls_check_given: refuse (78) a given certificate that is unreadable,
# not a certificate, not matched by the key, or not signed by the given CA.
cpa_tls_check_given() {
	local f a b
	for f in "$CPA_TLS_CERT_FILE" "$CPA_TLS_KEY_FILE" ${CPA_TLS_CA_FILE:+"$CPA_TLS_CA_FILE"}; do
		[ -r "$f" ] || cpa_die "$CPA_EX_CONFIG" "cannot read $f (--tls-cert, --tls-key, --tls-ca)"
	done
	openssl x509 -noout -in "$CPA_TLS_CERT_FILE" 2>/dev/null ||
		cpa_die "$CPA_EX_CONFIG" "$CPA_TLS_CERT_FILE is not a PEM certificate"
	a=$(openssl x509 -noout -pubkey -in "$CPA_TLS_CERT_FILE" 2>/dev/null) || a=
	b=$(openssl pkey -pubout -in "$CPA_TLS_KEY_FILE" 2>/dev/null) || b=
	if [ -z "$b" ] || [ "$a" != "$b" ]; then
		cpa_die "$CPA_EX_CONFIG" "$CPA_TLS_KEY_FILE is not the private key of $CPA_TLS_CERT_FILE (or not a key without a passphrase)" \
			"PostgreSQL needs the unencrypted key that matches the certificate."
	fi
	if [ -n "$CPA_TLS_CA_FILE" ] && ! openssl verify -CAfile "$CPA_TLS_CA_FILE" "$CPA_TLS_CERT_FILE" >/dev/null 2>&1; then
		cpa_die "$CPA_EX_CONFIG" "$CPA_TLS_CERT_FILE is not signed by the CA in $CPA_TLS_CA_FILE" \
			"Give the CA certificate that issued it (with its chain), or leave --tls-ca out."
	fi
}

# cpa_tls_generated_marker HOST: what the marker file of a generated
# certificate says: the names it was made for.
cpa_tls_generated_marker() {
	local names
	names=$(cpa_tls_altnames | paste -sd ' ')
	printf 'self-signed for %s\n' "$1${names:+ $names}"
}

# cpa_tls_generated_is_current DIR HOST: true when DIR holds a certificate
# this provisioning generated for HOST and the listen addresses (its marker
# file says so), valid for 30 more days.
cpa_tls_generated_is_current() {
	local dir=$1 host=$2
	[ -f "$dir/server.crt" ] && [ -f "$dir/server.key" ] || return 1
	[ "$(cat "$dir/generated" 2>/dev/null)" = "$(cpa_tls_generated_marker "$host")" ] || return 1
	openssl x509 -noout -checkend 2592000 -in "$dir/server.crt" >/dev/null 2>&1
}

# cpa_ensure_tls_files: the server's certificate and key in cpa_tls_dir, and
# the CA for clients. Sets CPA_TLS_CHANGED=1 when a file changed (a reload
# loads it).
# shellcheck disable=SC2034 # CPA_TLS_CHANGED is read by the role-db step
cpa_ensure_tls_files() {
	local dir host rc
	dir=$(cpa_tls_dir)
	CPA_TLS_CHANGED=0
	cpa_ensure_dir "$dir" 0750 postgres postgres "TLS folder" && CPA_TLS_CHANGED=1
	if [ -n "$CPA_TLS_CERT_FILE" ]; then
		cpa_tls_check_given
		rc=0
		cpa_install_content "$dir/server.crt" 0644 postgres postgres "TLS certificate (from $CPA_TLS_CERT_FILE)" \
			<"$CPA_TLS_CERT_FILE" || rc=$?
		cpa_install_result "$rc" && CPA_TLS_CHANGED=1
		rc=0
		cpa_install_content "$dir/server.key" 0600 postgres postgres "TLS private key (from $CPA_TLS_KEY_FILE)" --secret \
			<"$CPA_TLS_KEY_FILE" || rc=$?
		cpa_install_result "$rc" && CPA_TLS_CHANGED=1
		if [ -f "$dir/generated" ]; then
			cpa_run rm -f "$dir/generated"
		fi
		if [ -n "$CPA_TLS_CA_FILE" ]; then
			[ -d "$CPA_CONFIG_DIR" ] || cpa_run install -d -m 0755 "$CPA_CONFIG_DIR"
			cpa_install_content "$(cpa_tls_ca_path)" 0644 root root "CA certificate for clients (sslrootcert)" \
				<"$CPA_TLS_CA_FILE" || cpa_installed "$?"
		fi
		return 0
	fi
	host=$(cpa_tls_public_host)
	if cpa_tls_generated_is_current "$dir" "$host"; then
		cpa_unchanged "TLS certificate: self-signed for $host ($dir/server.crt)"
		return 0
	fi
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_changed "generate a self-signed TLS certificate for $host in $dir"
		return 0
	fi
	# shellcheck disable=SC2046 # one argument per name
	"$CPA_PROVISION_DIR/tls-selfsigned.sh" "$dir/server.crt" "$dir/server.key" "$host" $(cpa_tls_altnames) ||
		cpa_die "$CPA_EX_FAILED" "could not generate a self-signed certificate in $dir"
	chown postgres:postgres "$dir/server.crt" "$dir/server.key"
	cpa_tls_generated_marker "$host" >"$dir/generated"
	CPA_TLS_CHANGED=1
	cpa_changed "generated a self-signed TLS certificate for $host ($dir/server.crt)"
	cpa_info "NOTE: a self-signed certificate encrypts, but clients cannot verify it is this server (sslmode=require). To verify, copy $dir/server.crt to the client and use sslmode=verify-full&sslrootcert=<that copy>, or give your CA's certificate with --tls-cert, --tls-key and --tls-ca."
}
