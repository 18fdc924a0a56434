#!/bin/bash
# 90-summary.sh: step "summary". Prints where things are: the data directory
# (as the server reports it), the DSN with the password masked, the env and
# credentials files, the schema version of each set, and the health check.
# Changes nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/tls.sh
. "$CPA_PROVISION_DIR/lib/tls.sh"

# tls_summary: where the certificate comes from, and what remote clients use.
tls_summary() {
	local dir
	dir=$(cpa_tls_dir)
	if [ -f "$dir/generated" ]; then
		printf '%s\n' "on (TLSv1.2+), $(cat "$dir/generated"): clients encrypt but cannot verify it"
	elif [ -f "$dir/server.crt" ]; then
		printf '%s\n' "on (TLSv1.2+), the certificate given (${CPA_TLS_CERT_FILE:-?})${CPA_TLS_CA_FILE:+, verified by clients against $(cpa_tls_ca_path)}"
	else
		printf '%s\n' "no certificate in $dir"
	fi
}

schema_versions() {
	local out
	if out=$(runuser -u "$CPA_AGENT_USER" -- "$CPA_AGENT_BIN" -c "$CPA_AGENT_CONFIG" status 2>&1); then
		printf '%s\n' "$out"
		return 0
	fi
	printf '%s\n' "$out"
	return 1
}

langgraph_version() {
	local v
	v=$(cpa_psql -d "$CPA_DB_NAME" -c "SELECT max(v) FROM $CPA_DB_SCHEMA.checkpoint_migrations" 2>/dev/null) || v=
	if [ -n "$v" ]; then
		printf 'langgraph v%s\n' "$v"
	else
		echo "langgraph: none applied (no $CPA_DB_SCHEMA.checkpoint_migrations rows)"
	fi
}

main() {
	local datadir health rc=0 version service
	cpa_init_step summary "$@"
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_info "would print: data directory, DSN (password masked), env file, schema version, health check, backups"
		return 0
	fi
	datadir=$(cpa_psql -d postgres -c 'SHOW data_directory' 2>/dev/null || echo "unknown (PostgreSQL is not running)")
	version=$(langgraph_version)
	health=$(runuser -u "$CPA_AGENT_USER" -- "$CPA_AGENT_BIN" -c "$CPA_AGENT_CONFIG" check 2>&1) || rc=$?
	if cpa_systemd_running; then
		service=$(systemctl is-active checkpoint-agent.service 2>/dev/null || true)
	else
		service="not running: systemd is not PID 1 here; it starts at the next boot"
	fi
	cat <<-EOF

		Checkpoint database provisioned
		  PostgreSQL        $CPA_PG_VERSION/$CPA_PG_CLUSTER, port $CPA_PG_PORT, listen_addresses '$CPA_LISTEN_ADDRESSES'
		  data directory    $datadir
		  DSN               postgresql://$CPA_DB_ROLE:****@localhost:$CPA_PG_PORT/$CPA_DB_NAME
		  env file          $CPA_ENV_FILE (CHECKPOINT_DB_URI; 0640 root:$CPA_APP_GROUP)
		  remote clients    ${CPA_ALLOWED_CIDRS:+$CPA_ALLOWED_CIDRS over TLS only: $CPA_REMOTE_ENV_FILE ($(cpa_tls_uri_params))}${CPA_ALLOWED_CIDRS:-none (--allow-cidr admits networks, over TLS only)}
		  TLS               $(tls_summary)
		  agent's role      $CPA_AGENT_DB_ROLE (pg_monitor; SET ROLE $CPA_DB_ROLE to migrate)
		  credentials       $CPA_CREDENTIALS_FILE (0600 root)
		  schema version    $version (sets: $CPA_SETS)
		  agent service     checkpoint-agent.service: $service
		  health check      exit $rc: $(head -n 1 <<<"$health")
	EOF
	cpa_backup_summary
	schema_versions | sed 's/^/    status: /' || true
}

main "$@"
