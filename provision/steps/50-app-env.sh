#!/bin/bash
# 50-app-env.sh: step "app-env". The application's group (CPA_APP_GROUP,
# created as a system group) and its environment file CPA_ENV_FILE, 0640
# root:CPA_APP_GROUP, from templates/app.env.j2:
#   CHECKPOINT_DB_URI=postgresql://ROLE:PASSWORD@localhost:PORT/DATABASE
# with the password (from the credentials file) percent-encoded. With
# --allow-cidr, also CPA_REMOTE_ENV_FILE for the application on those hosts
# (templates/app-remote.env.j2): the public host name, and TLS required
# (sslmode=require, or verify-full with --tls-ca); removed again when no
# network is allowed any more.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/password.sh
. "$CPA_PROVISION_DIR/lib/password.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/tls.sh
. "$CPA_PROVISION_DIR/lib/tls.sh"

ensure_group() {
	local group=$1
	if getent group "$group" >/dev/null; then
		cpa_unchanged "group $group exists"
		return 0
	fi
	cpa_run groupadd --system "$group"
	cpa_changed "new system group $group"
}

write_env_file() {
	local pw content
	pw=$(cpa_credentials_password)
	if [ -z "$pw" ]; then
		if [ "$CPA_DRY_RUN" = 1 ]; then
			cpa_changed "write $CPA_ENV_FILE (0640 root:$CPA_APP_GROUP) with CHECKPOINT_DB_URI=postgresql://$CPA_DB_ROLE:****@localhost:$CPA_PG_PORT/$CPA_DB_NAME"
			return 0
		fi
		cpa_die "$CPA_EX_CONFIG" "no password in $CPA_CREDENTIALS_FILE" \
			"Run the role-db step first (provision.sh --from role-db)."
	fi
	# A secret goes to the renderer through the array, not an argument.
	# shellcheck disable=SC2034,SC2154 # CPA_TPL is read by cpa_render
	CPA_TPL[cpa_db_password_urlencoded]=$(cpa_urlencode "$pw")
	if [ "$CPA_DRY_RUN" = 1 ] && ! getent group "$CPA_APP_GROUP" >/dev/null; then
		cpa_changed "write $CPA_ENV_FILE (0640 root:$CPA_APP_GROUP)"
		return 0
	fi
	content=$(cpa_render "$CPA_TEMPLATES_DIR/app.env.j2" \
		cpa_db_role="$CPA_DB_ROLE" cpa_pg_port="$CPA_PG_PORT" cpa_db_name="$CPA_DB_NAME" \
		cpa_app_group="$CPA_APP_GROUP") || exit "$?"
	printf '%s\n' "$content" |
		cpa_install_content "$CPA_ENV_FILE" 0640 root "$CPA_APP_GROUP" "application env file" --secret || cpa_installed "$?"
	write_remote_env_file
	unset 'CPA_TPL[cpa_db_password_urlencoded]'
}

# write_remote_env_file: CPA_REMOTE_ENV_FILE, for the application on the
# hosts --allow-cidr admits; the password comes through CPA_TPL.
write_remote_env_file() {
	local content host
	if [ -z "$CPA_ALLOWED_CIDRS" ]; then
		if [ -e "$CPA_REMOTE_ENV_FILE" ]; then
			cpa_run rm -f -- "$CPA_REMOTE_ENV_FILE"
			cpa_changed "removed $CPA_REMOTE_ENV_FILE: no other host is allowed in (no --allow-cidr)"
		fi
		return 0
	fi
	host=$(cpa_tls_public_host)
	[[ "$host" != *:* ]] || host="[$host]"
	content=$(cpa_render "$CPA_TEMPLATES_DIR/app-remote.env.j2" \
		cpa_db_role="$CPA_DB_ROLE" cpa_pg_port="$CPA_PG_PORT" cpa_db_name="$CPA_DB_NAME" \
		cpa_app_group="$CPA_APP_GROUP" cpa_db_public_host_uri="$host" \
		cpa_tls_uri_params="$(cpa_tls_uri_params)") || exit "$?"
	printf '%s\n' "$content" |
		cpa_install_content "$CPA_REMOTE_ENV_FILE" 0640 root "$CPA_APP_GROUP" "env file for remote clients" --secret ||
		cpa_installed "$?"
}

main() {
	cpa_init_step app-env "$@"
	ensure_group "$CPA_APP_GROUP"
	[ -d "$(dirname "$CPA_ENV_FILE")" ] || cpa_run install -d -m 0755 "$(dirname "$CPA_ENV_FILE")"
	write_env_file
}

main "$@"
