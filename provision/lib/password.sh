# shellcheck shell=bash
# password.sh: the application role's password: generating, validating,
# storing, URL-encoding, and setting it as a SCRAM verifier.
#
# The password only ever travels through files (0600), pipes and shell
# variables of this process: never a command line, never an exported
# environment variable, never the server (it gets a verifier).

# cpa_generate_password: 32 characters [A-Za-z0-9] from /dev/urandom (~190
# bits). tr drops the bytes outside the alphabet, so every character is
# equally likely.
cpa_generate_password() {
	local pw
	pw=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true)
	[ "${#pw}" -eq 32 ] || return 1
	printf '%s\n' "$pw"
}

# cpa_password_problem PASSWORD: prints why a password is unusable (and
# returns 0), or prints nothing and returns 1.
cpa_password_problem() {
	local pw=$1
	if [ "${#pw}" -lt 12 ]; then
		echo "it is shorter than 12 characters"
	elif [ "${#pw}" -gt 200 ]; then
		echo "it is longer than 200 characters"
	elif ! LC_ALL=C grep -qx '[ -~]*' <<<"$pw"; then
		echo "it has characters outside printable ASCII (SASLprep could change them)"
	elif [[ "$pw" == *[[:space:]]* ]]; then
		echo "it contains white space"
	else
		return 1
	fi
	return 0
}

# cpa_read_first_line FILE: the first line of FILE, without its newline.
cpa_read_first_line() {
	local line=
	IFS= read -r line <"$1" || [ -n "$line" ] || return 1
	line=${line%$'\r'}
	printf '%s\n' "$line"
}

# cpa_credentials_password: the password stored in the credentials file, or
# nothing.
cpa_credentials_password() {
	local line
	[ -f "$CPA_CREDENTIALS_FILE" ] || return 0
	while IFS= read -r line; do
		case "$line" in
		password=*)
			printf '%s\n' "${line#password=}"
			return 0
			;;
		esac
	done <"$CPA_CREDENTIALS_FILE"
}

# cpa_credentials_agent_password: the agent role's password stored in the
# credentials file, or nothing (a server provisioned before the agent had a
# role of its own).
cpa_credentials_agent_password() {
	local line
	[ -f "$CPA_CREDENTIALS_FILE" ] || return 0
	while IFS= read -r line; do
		case "$line" in
		agent_password=*)
			printf '%s\n' "${line#agent_password=}"
			return 0
			;;
		esac
	done <"$CPA_CREDENTIALS_FILE"
}

# cpa_credentials_content PASSWORD AGENT_PASSWORD: the credentials file's text.
cpa_credentials_content() {
	cat <<EOF
# The checkpoint database's credentials (root only, 0600).
# Written by the checkpoint-agent provisioning; the application reads $CPA_ENV_FILE,
# the agent $CPA_AGENT_PASSWORD_FILE.
role=$CPA_DB_ROLE
database=$CPA_DB_NAME
host=localhost
port=$CPA_PG_PORT
password=$1
agent_role=$CPA_AGENT_DB_ROLE
agent_password=$2
EOF
}

# cpa_urlencode STRING: percent-encode everything but RFC 3986 unreserved
# characters (pure bash: no process sees the string).
cpa_urlencode() {
	local s=$1 out="" c i
	local LC_ALL=C
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case "$c" in
		[A-Za-z0-9._~-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s\n' "$out"
}

# cpa_scram_verifier [SALT ITERATIONS] <<<PASSWORD: the SCRAM-SHA-256 verifier.
cpa_scram_verifier() {
	perl "$CPA_PROVISION_DIR/lib/scram-verifier.pl" "$@"
}

# cpa_verifier_matches VERIFIER PASSWORD: true when VERIFIER (as stored in
# pg_authid) is the one for PASSWORD; recomputed with its salt.
cpa_verifier_matches() {
	local stored=$1 pw=$2 iter salt again
	[[ "$stored" =~ ^SCRAM-SHA-256\$([0-9]+):([A-Za-z0-9+/=]+)\$ ]] || return 1
	iter=${BASH_REMATCH[1]}
	salt=${BASH_REMATCH[2]}
	again=$(cpa_scram_verifier "$salt" "$iter" <<<"$pw") || return 1
	[ "$again" = "$stored" ]
}

# cpa_psql_set_role_password ROLE VERIFIER PSQL-COMMAND...: send the verifier
# with statement logging off for this session (the server then never logs
# even the verifier). The SQL goes through a pipe, not a command line; the
# verifier's alphabet (base64, digits, $ : -) and the role name (checked by
# the settings) need no escaping inside the quotes.
cpa_psql_set_role_password() {
	local role=$1 verifier=$2
	shift 2
	[[ "$verifier" =~ ^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$ ]] || return 1
	[[ "$role" =~ ^[a-z_][a-z0-9_-]*$ ]] || return 1
	printf '%s\n' \
		"SET log_statement = 'none';" \
		"SET log_min_error_statement = 'panic';" \
		"SET log_min_duration_statement = -1;" \
		"ALTER ROLE \"$role\" WITH LOGIN PASSWORD '$verifier';" |
		"$@" -f -
}
