#!/bin/bash
# tls-selfsigned.sh: a self-signed TLS certificate for the PostgreSQL server,
# in one place for provision/ (lib/tls.sh) and ansible/ (role postgresql,
# which runs this script on the host), so both make the same certificate.
#
#   tls-selfsigned.sh CERT KEY NAME [ALTNAME...]
#
# Writes KEY (an EC P-256 private key, mode 0600) and CERT (valid 10 years,
# subject CN=NAME, subjectAltName NAME, localhost, 127.0.0.1, ::1 and each
# ALTNAME: a host name or an IP address). It is its own CA (basicConstraints
# CA:TRUE, OpenSSL's default for req -x509), so a client that has a copy of
# CERT can verify the server with sslmode=verify-full and sslrootcert=CERT.
# Without that copy, clients can encrypt (sslmode=require) but not know they
# talk to this server: give provisioning a certificate from your CA for that.
# The key is written straight into its file (never on a command line), in a
# temporary name first, so a failure leaves the old pair in place.
# Exit codes: 0 written, 64 usage, 70 openssl failed.
set -euo pipefail

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
}

[ "$#" -ge 3 ] || { usage >&2; exit 64; }
cert=$1
key=$2
name=$3
shift 3
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for alt in "$name" "$@"; do
	[[ "$alt" =~ ^[A-Za-z0-9.:-]+$ ]] || { echo "tls-selfsigned.sh: not a host name or address: $alt" >&2; exit 64; }
	if [[ "$alt" =~ ^[0-9.]+$ ]] || [[ "$alt" == *:* ]]; then
		san+=",IP:$alt"
	else
		san+=",DNS:$alt"
	fi
done
umask 077
tmpkey=$(mktemp "$(dirname "$key")/.key.XXXXXX")
tmpcert=$(mktemp "$(dirname "$cert")/.crt.XXXXXX")
trap 'rm -f "$tmpkey" "$tmpcert"' EXIT
if ! openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
	-subj "/CN=$name" -addext "subjectAltName=$san" -keyout "$tmpkey" -out "$tmpcert" 2>"$tmpcert.err"; then
	cat "$tmpcert.err" >&2
	rm -f "$tmpcert.err"
	echo "tls-selfsigned.sh: openssl could not make the certificate" >&2
	exit 70
fi
rm -f "$tmpcert.err"
chmod 0644 "$tmpcert"
chmod 0600 "$tmpkey"
mv -f -T "$tmpkey" "$key"
mv -f -T "$tmpcert" "$cert"
