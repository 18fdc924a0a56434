# shellcheck shell=bash
# hba.sh: the narrowest pg_hba.conf that works, as an idempotent edit.
#
# The rules (the Ansible role writes the same ones with postgresql_pg_hba):
#   local    DB  ROLE                 scram-sha-256
#   host     DB  ROLE  127.0.0.1/32   scram-sha-256
#   host     DB  ROLE  ::1/128        scram-sha-256
#   hostssl  DB  ROLE  CIDR           scram-sha-256   (one per --allow-cidr:
#                                                      TLS only, never host)
#   local    DB  AGENT                scram-sha-256   (the agent's own role:
#   host     DB  AGENT 127.0.0.1/32   scram-sha-256    this host only)
#   host     DB  AGENT ::1/128        scram-sha-256
# in a marked block before every other rule, plus `local all postgres peer`
# (administration over the socket) when the file has no such line. Every
# other active line that uses `trust`, `password` (clear text) or `md5`
# (scram-sha-256 only), or lets any user in to all databases
# or to replication (Debian's `local all all peer`, `host all all
# 127.0.0.1/32 ...`, ...), is commented out with a marker, so the only ways
# in are the application's role to its database, and postgres by peer.

CPA_HBA_BEGIN='# BEGIN checkpoint-agent provisioning (managed: edits here are replaced)'
CPA_HBA_END='# END checkpoint-agent provisioning'
CPA_HBA_DISABLED='#disabled-by-checkpoint-agent# '

# cpa_hba_block DB ROLE "CIDR..." [AGENT]: the managed block.
cpa_hba_block() {
	local db=$1 role=$2 cidrs=$3 agent=${4:-} c
	printf '%s\n' "$CPA_HBA_BEGIN"
	printf '%-7s %-24s %-18s %-20s %s\n' \
		local "$db" "$role" "" scram-sha-256 \
		host "$db" "$role" 127.0.0.1/32 scram-sha-256 \
		host "$db" "$role" ::1/128 scram-sha-256
	for c in $cidrs; do
		printf '%-7s %-24s %-18s %-20s %s\n' hostssl "$db" "$role" "$c" scram-sha-256
	done
	if [ -n "$agent" ]; then
		printf '%-7s %-24s %-18s %-20s %s\n' \
			local "$db" "$agent" "" scram-sha-256 \
			host "$db" "$agent" 127.0.0.1/32 scram-sha-256 \
			host "$db" "$agent" ::1/128 scram-sha-256
	fi
	printf '%s\n' "$CPA_HBA_END"
}

# cpa_hba_transform DB ROLE "CIDR..." [AGENT] < pg_hba.conf: prints the new file.
cpa_hba_transform() {
	local db=$1 role=$2 cidrs=$3 agent=${4:-}
	local -a lines=()
	local line in_block=0 type database user method inserted=0 have_postgres=0 i first_rule=-1
	local -a words
	while IFS= read -r line || [ -n "$line" ]; do
		if [ "$line" = "$CPA_HBA_BEGIN" ]; then
			in_block=1
			continue
		fi
		if [ "$in_block" = 1 ]; then
			[ "$line" = "$CPA_HBA_END" ] && in_block=0
			continue
		fi
		case "$line" in
		'' | '#'* | [[:space:]]'#'* | [[:space:]]) ;;
		*)
			read -r -a words <<<"${line%%#*}"
			if [ "${#words[@]}" -ge 3 ]; then
				type=${words[0]}
				database=${words[1]}
				user=${words[2]}
				method=${words[${#words[@]} - 1]}
				# host lines: method follows the address (and mask, if any);
				# options (key=value) may come after the method.
				for ((i = ${#words[@]} - 1; i >= 3; i--)); do
					case "${words[i]}" in
					*=*) ;;
					*)
						method=${words[i]}
						break
						;;
					esac
				done
				if [ "$method" = trust ] || [ "$method" = password ] || [ "$method" = md5 ] ||
					{ [ "$user" = all ] && { [ "$database" = all ] || [ "$database" = replication ]; }; }; then
					line="$CPA_HBA_DISABLED$line"
				elif [ "$type" = local ] && [ "$database" = all ] && [ "$user" = postgres ] &&
					{ [ "$method" = peer ] || [ "$method" = ident ]; }; then
					have_postgres=1
				fi
			fi
			;;
		esac
		lines+=("$line")
	done
	for i in "${!lines[@]}"; do
		case "${lines[i]}" in
		'' | '#'* | [[:space:]]*) ;;
		*)
			first_rule=$i
			break
			;;
		esac
	done
	emit_block() {
		cpa_hba_block "$db" "$role" "$cidrs" "$agent"
		if [ "$have_postgres" = 0 ]; then
			printf '%-7s %-24s %-16s %-20s %s\n' local all postgres "" peer
		fi
	}
	for i in "${!lines[@]}"; do
		if [ "$i" = "$first_rule" ]; then
			emit_block
			inserted=1
		fi
		printf '%s\n' "${lines[i]}"
	done
	if [ "$inserted" = 0 ]; then
		emit_block
	fi
	unset -f emit_block
}

# cpa_hba_has_trust FILE: true when an active line uses trust.
cpa_hba_has_trust() {
	grep -Ev '^[[:space:]]*(#|$)' "$1" | sed 's/#.*//' | grep -Eq '(^|[[:space:]])trust([[:space:]]|$)'
}
