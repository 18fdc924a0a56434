#!/bin/bash
# provision.sh: turns a fresh Debian 12 server into a running checkpoint
# database. With no arguments it uses provision/defaults.env. Each step is a
# script of its own under provision/steps/ (runnable alone, with the same
# options); this runs them in order:
#   install       PostgreSQL and the agent's build dependencies; build and
#                 install the agent
#   datadir       the data directory on the data disk; the mount drop-in
#   role-db       role, database, password (SCRAM), pg_hba, listen_addresses
#   tune          conf.d tuning drop-in; reload (restart only if needed)
#   app-env       the application's group and env file
#   agent         agent user, config, password file, units; start it
#   table-tuning  per-table autovacuum on the checkpoint tables
#   summary       data directory, DSN (masked), env file, schema, health
# A second run changes nothing and says so. See provision/README.md.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ONLY_STEP=
FROM_STEP=
INTERRUPTED=

step_names() {
	local f n
	for f in "$CPA_STEPS_DIR"/[0-9][0-9]-*.sh; do
		n=$(basename "$f" .sh)
		printf '%s\n' "${n#[0-9][0-9]-}"
	done
}

step_file() {
	local f
	for f in "$CPA_STEPS_DIR"/[0-9][0-9]-"$1".sh; do
		[ -f "$f" ] && printf '%s\n' "$f" && return 0
	done
	return 1
}

cpa_extra_option() {
	case "$1" in
	--step)
		ONLY_STEP=$2
		return 0
		;;
	--from)
		FROM_STEP=$2
		return 0
		;;
	--list-steps)
		step_names
		exit 0
		;;
	esac
	return 2
}

# The original arguments without --step/--from, for the steps and the
# resume command.
step_arguments() {
	STEP_ARGS=()
	while [ "$#" -gt 0 ]; do
		case "$1" in
		--step | --from) shift ;;
		--step=* | --from=*) ;;
		*) STEP_ARGS+=("$1") ;;
		esac
		shift
	done
}

main() {
	local name file started seconds rc total_start running=0 nchanges
	# shellcheck disable=SC2034 # read by cpa_usage
	CPA_USAGE_NAME=provision.sh
	# shellcheck disable=SC2034
	CPA_USAGE_WHAT="Provisions this server as a checkpoint database (steps: $(step_names | paste -sd ' '))."
	# shellcheck disable=SC2034
	CPA_USAGE_EXTRA="  --step NAME             run only this step
  --from NAME             resume: run this step and the ones after it
  --list-steps            print the steps in order"
	cpa_load_defaults
	cpa_parse_options "$@"
	step_arguments "$@"
	if [ -n "$ONLY_STEP" ] && ! step_file "$ONLY_STEP" >/dev/null; then
		cpa_usage_error "no step named $ONLY_STEP (steps: $(step_names | paste -sd ' '))"
	fi
	if [ -n "$FROM_STEP" ] && ! step_file "$FROM_STEP" >/dev/null; then
		cpa_usage_error "no step named $FROM_STEP (steps: $(step_names | paste -sd ' '))"
	fi
	[ "${#CPA_ARGS_REST[@]}" -eq 0 ] || cpa_usage_error "unexpected argument: ${CPA_ARGS_REST[0]}"
	cpa_require_root
	if [ "${#STEP_ARGS[@]}" -gt 0 ]; then
		CPA_RESUME_ARGS=$(cpa_quote "${STEP_ARGS[@]}")
	fi
	export CPA_RESUME_ARGS

	# One provisioning at a time (lib/common.sh: the steps it runs see that
	# it holds the lock).
	cpa_take_lock "provision.sh${ONLY_STEP:+ --step $ONLY_STEP}${FROM_STEP:+ --from $FROM_STEP}"
	CPA_CHANGES_FILE=$(mktemp "${TMPDIR:-/tmp}/cpa-changes.XXXXXX")
	export CPA_CHANGES_FILE
	trap 'rm -f "$CPA_CHANGES_FILE"' EXIT
	# A hang-up, interrupt or termination reaches the running step too (the
	# same process group), which puts things back (lib/common.sh). This
	# process waits for it, holding the lock, and runs no further step.
	trap 'INTERRUPTED="SIGHUP 129"' HUP
	trap 'INTERRUPTED="SIGINT 130"' INT
	trap 'INTERRUPTED="SIGTERM 143"' TERM
	[ "$CPA_DRY_RUN" = 1 ] && echo "DRY RUN: nothing is changed; each line says what would be done."
	total_start=$(date +%s.%N)
	for name in $(step_names); do
		if [ -n "$ONLY_STEP" ] && [ "$name" != "$ONLY_STEP" ]; then
			continue
		fi
		if [ -n "$FROM_STEP" ] && [ "$running" = 0 ] && [ "$name" != "$FROM_STEP" ]; then
			continue
		fi
		running=1
		file=$(step_file "$name")
		echo "== $name"
		started=$(date +%s.%N)
		rc=0
		CPA_STEP=$name bash "$file" "${STEP_ARGS[@]}" || rc=$?
		if [ -n "$INTERRUPTED" ]; then
			printf 'provision.sh: interrupted by %s during step %s (exit %s); the steps after it did not run.\n' \
				"${INTERRUPTED% *}" "$name" "$rc" >&2
			exit "${INTERRUPTED#* }"
		fi
		seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
		if [ "$rc" -ne 0 ]; then
			printf 'provision.sh: step %s failed (exit %s) after %ss; the steps after it did not run.\n' "$name" "$rc" "$seconds" >&2
			exit "$rc"
		fi
		echo "-- $name: ${seconds}s"
	done
	seconds=$(awk -v a="$total_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	nchanges=$(wc -l <"$CPA_CHANGES_FILE")
	if [ "$CPA_DRY_RUN" = 1 ]; then
		echo "DRY RUN done in ${seconds}s: $nchanges change(s) would be made; nothing was changed."
	elif [ "$nchanges" -eq 0 ]; then
		echo "Nothing changed: everything was already in place (${seconds}s)."
	else
		echo "Done in ${seconds}s: $nchanges change(s):"
		sed 's/^/  /' "$CPA_CHANGES_FILE"
	fi
}

main "$@"
