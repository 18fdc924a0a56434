# shellcheck shell=bash
# roles.sh: the database roles around the checkpoint database, as idempotent
# SQL run by the postgres superuser (cpa_psql). The Ansible role
# checkpoint_database makes the same ones with community.postgresql modules.
#
#   OWNER (CPA_DB_ROLE, ai_agent)   the application's role: LOGIN, owns the
#       database and everything in it (LangGraph's setup() needs that), and
#       nothing else: no superuser, createdb, createrole, replication, and
#       no predefined monitoring role. An older layout made it a member of
#       pg_read_all_stats, which let every application process read the SQL
#       of every session; that membership is revoked.
#   AGENT (CPA_AGENT_DB_ROLE, checkpoint_monitor)   the agent's login role:
#       LOGIN, INHERIT, a member of pg_monitor (every session's state and
#       age, data_directory, statistics). It reaches the owner's rights only
#       with SET ROLE OWNER (the agent does so to migrate, and for its write
#       probe), through BRIDGE.
#   BRIDGE (AGENT_as_owner)   NOLOGIN NOINHERIT, a member of OWNER, and AGENT
#       a member of it. Membership passes through a NOINHERIT role (so AGENT
#       may SET ROLE OWNER) but privileges do not (so AGENT does not hold the
#       owner's rights by default). PostgreSQL 15 has no per-grant INHERIT
#       FALSE (16 has), and a NOINHERIT AGENT would not get pg_monitor's
#       rights either: the bridge gives both on 15 and later.
#
# Role names are checked by the settings (lower-case letters, digits, _ and
# -), so double quotes make them safe identifiers, and they are passed as
# psql variables where they are literals.

# cpa_agent_bridge_role AGENT: the bridge's name.
cpa_agent_bridge_role() {
	printf '%s_as_owner\n' "$1"
}

# cpa_role_fact SQL [psql -v args]: one t/f answer from the postgres database.
cpa_role_fact() {
	local sql=$1
	shift
	cpa_psql -d postgres "$@" <<<"$sql"
}

# cpa_ensure_role_sql WHAT FACT FIX [psql -v args]: run FIX (as postgres)
# when the query FACT does not answer t; says what it did. Under --dry-run,
# says what it would do.
cpa_ensure_role_sql() {
	local what=$1 fact=$2 fix=$3
	shift 3
	if [ "$(cpa_role_fact "$fact" "$@")" = t ]; then
		cpa_unchanged "$what"
		return 0
	fi
	if [ "$CPA_DRY_RUN" != 1 ]; then
		cpa_psql -d postgres "$@" <<<"$fix" >/dev/null
	fi
	cpa_changed "$what"
}

# cpa_role_exists NAME: true when the role exists.
cpa_role_exists() {
	[ "$(cpa_role_fact "SELECT count(*) FROM pg_roles WHERE rolname = :'r'" -v r="$1" 2>/dev/null)" = 1 ]
}

# cpa_ensure_owner_role_only_owns OWNER: OWNER has no role attribute beyond
# LOGIN, and none of the predefined monitoring roles (the older layout's
# pg_read_all_stats).
cpa_ensure_owner_role_only_owns() {
	local owner=$1 r
	cpa_ensure_role_sql "role $owner: no superuser, createdb, createrole, replication or bypassrls" \
		"SELECT NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)
			FROM pg_roles WHERE rolname = :'o'" \
		"ALTER ROLE \"$owner\" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS" -v o="$owner"
	for r in pg_read_all_stats pg_monitor pg_read_all_settings pg_stat_scan_tables; do
		cpa_ensure_role_sql "role $owner is not a member of $r (the application may not read other sessions)" \
			"SELECT NOT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
				JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = '$r' AND u.rolname = :'o')" \
			"REVOKE $r FROM \"$owner\"" -v o="$owner"
	done
}

# cpa_ensure_agent_role OWNER AGENT: AGENT and its bridge to OWNER, as the
# header says. AGENT's password is set separately (cpa_psql_set_role_password).
cpa_ensure_agent_role() {
	local owner=$1 agent=$2 bridge
	bridge=$(cpa_agent_bridge_role "$agent")
	if [ "$CPA_DRY_RUN" = 1 ] && ! cpa_role_exists "$agent"; then
		cpa_changed "create role $agent (LOGIN, pg_monitor) and $bridge (NOLOGIN NOINHERIT, member of $owner): the agent's own role, which may SET ROLE $owner"
		return 0
	fi
	cpa_ensure_role_sql "role $agent exists (the agent's login role)" \
		"SELECT count(*) = 1 FROM pg_roles WHERE rolname = :'a'" \
		"CREATE ROLE \"$agent\" LOGIN INHERIT" -v a="$agent"
	cpa_ensure_role_sql "role $agent: LOGIN INHERIT, no superuser, createdb, createrole, replication or bypassrls" \
		"SELECT rolcanlogin AND rolinherit AND NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)
			FROM pg_roles WHERE rolname = :'a'" \
		"ALTER ROLE \"$agent\" LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS" -v a="$agent"
	cpa_ensure_role_sql "role $agent is a member of pg_monitor (it sees every session)" \
		"SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
			WHERE m.roleid = 'pg_monitor'::regrole AND u.rolname = :'a')" \
		"GRANT pg_monitor TO \"$agent\"" -v a="$agent"
	cpa_ensure_role_sql "role $bridge exists (NOLOGIN NOINHERIT: $agent may SET ROLE $owner without holding its rights)" \
		"SELECT count(*) = 1 FROM pg_roles WHERE rolname = :'b'" \
		"CREATE ROLE \"$bridge\" NOLOGIN NOINHERIT" -v b="$bridge"
	cpa_ensure_role_sql "role $bridge: NOLOGIN NOINHERIT" \
		"SELECT NOT rolcanlogin AND NOT rolinherit AND NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)
			FROM pg_roles WHERE rolname = :'b'" \
		"ALTER ROLE \"$bridge\" NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS" -v b="$bridge"
	cpa_ensure_role_sql "role $bridge is a member of $owner" \
		"SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
			JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = :'o' AND u.rolname = :'b')" \
		"GRANT \"$owner\" TO \"$bridge\"" -v o="$owner" -v b="$bridge"
	cpa_ensure_role_sql "role $agent is a member of $bridge" \
		"SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
			JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = :'b' AND u.rolname = :'a')" \
		"GRANT \"$bridge\" TO \"$agent\"" -v a="$agent" -v b="$bridge"
	# A direct membership would hand AGENT the owner's rights (it inherits).
	cpa_ensure_role_sql "role $agent is not directly a member of $owner (it would inherit the owner's rights)" \
		"SELECT NOT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
			JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = :'o' AND u.rolname = :'a')" \
		"REVOKE \"$owner\" FROM \"$agent\"" -v o="$owner" -v a="$agent"
}
