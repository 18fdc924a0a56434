# shellcheck shell=bash
# common.sh: what every provisioning step and script shares.
#
#   settings     defaults.env < environment (same names) < command-line options
#   logging      cpa_changed / cpa_unchanged / cpa_info / cpa_warn: each line
#                says whether something changed, so a second run can say
#                "nothing changed"
#   dry-run      cpa_run CMD...: prints "would run" and does nothing under
#                --dry-run; file writes go through cpa_install_content
#   errors       cpa_die CODE WHAT WHY-AND-NEXT; an ERR trap names the step,
#                the failed command and the command that resumes
#   templates    cpa_render TEMPLATE: {{ name }} placeholders, the same files
#                Ansible's template module renders
#
# Exit codes (the table is also in provision/README.md):
#   0   success (whether or not something changed)
#   64  usage: unknown option or bad value
#   65  verification failed: a copied data directory's row counts or checksums
#       differ (the original is kept and PostgreSQL left on it)
#   69  unavailable: a package, PostgreSQL or the agent did not come up
#   70  a step failed (a command exited non-zero); the message names it
#   73  refused: the target directory is foreign or not empty, too little free
#       space, permissions cannot be made 0700, or not a mount point with
#       --require-mount
#   77  not run as root
#   78  configuration: a template or file the scripts need is missing, or a
#       setting is unusable (e.g. a password with control characters)

CPA_EX_OK=0
CPA_EX_USAGE=64
CPA_EX_VERIFY=65
CPA_EX_UNAVAILABLE=69
CPA_EX_FAILED=70
CPA_EX_REFUSED=73
CPA_EX_NOPERM=77
CPA_EX_CONFIG=78
export CPA_EX_OK CPA_EX_USAGE CPA_EX_VERIFY CPA_EX_UNAVAILABLE CPA_EX_FAILED \
	CPA_EX_REFUSED CPA_EX_NOPERM CPA_EX_CONFIG

CPA_PROVISION_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CPA_REPO_DIR=$(cd "$CPA_PROVISION_DIR/.." && pwd)
CPA_STEPS_DIR=$CPA_PROVISION_DIR/steps
CPA_TEMPLATES_DIR=$CPA_PROVISION_DIR/templates
CPA_DEFAULTS_FILE=${CPA_DEFAULTS_FILE:-$CPA_PROVISION_DIR/defaults.env}
export CPA_PROVISION_DIR CPA_REPO_DIR CPA_STEPS_DIR CPA_TEMPLATES_DIR CPA_DEFAULTS_FILE

# The keys of defaults.env, in file order, filled by cpa_load_defaults.
CPA_SETTING_KEYS=()

# The name of the running step (for messages), and the original arguments of
# the top-level command (for the resume command).
CPA_STEP=${CPA_STEP:-}
CPA_DRY_RUN=${CPA_DRY_RUN:-0}
CPA_REMOVE_OLD=${CPA_REMOVE_OLD:-0}
CPA_REQUIRE_MOUNT=${CPA_REQUIRE_MOUNT:-0}
CPA_PASSWORD_SOURCE=${CPA_PASSWORD_SOURCE:-}
CPA_RESUME_ARGS=${CPA_RESUME_ARGS:-}

# ---------------------------------------------------------------- logging

cpa_log_line() {
	local tag=$1
	shift
	if [ -n "$CPA_STEP" ]; then
		printf '[%s] %-9s %s\n' "$CPA_STEP" "$tag" "$*"
	else
		printf '%-9s %s\n' "$tag" "$*"
	fi
}

# cpa_changed WHAT: something was (or, under --dry-run, would be) changed.
cpa_changed() {
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_log_line "would:" "$*"
	else
		cpa_log_line "changed:" "$*"
	fi
	if [ -n "${CPA_CHANGES_FILE:-}" ]; then
		printf '%s: %s\n' "${CPA_STEP:-?}" "$*" >>"$CPA_CHANGES_FILE"
	fi
}

cpa_unchanged() { cpa_log_line "ok:" "$*"; }
cpa_info() { cpa_log_line "info:" "$*"; }
cpa_warn() { cpa_log_line "WARNING:" "$*" >&2; }

# cpa_resume_command: the command that resumes provisioning at this step.
cpa_resume_command() {
	local cmd="sudo $CPA_PROVISION_DIR/provision.sh"
	if [ -n "$CPA_STEP" ]; then
		cmd+=" --from $CPA_STEP"
	fi
	if [ -n "$CPA_RESUME_ARGS" ]; then
		cmd+=" $CPA_RESUME_ARGS"
	fi
	printf '%s\n' "$cmd"
}

# cpa_die CODE WHAT [WHY-AND-WHAT-TO-DO]: stop this step with a message that
# names the step, what failed and how to resume.
cpa_die() {
	local code=$1 what=$2 next=${3:-}
	trap - ERR
	{
		printf 'ERROR: step %s: %s\n' "${CPA_STEP:-provision}" "$what"
		[ -z "$next" ] || printf '  %s\n' "$next"
		printf '  exit code %s; after fixing the cause, resume with:\n    %s\n' \
			"$code" "$(cpa_resume_command)"
	} >&2
	exit "$code"
}

# CPA_ON_FAILURE: the name of a function run (once) before the step stops
# for any reason while it is set: an unexpected failure (the ERR trap), a
# hang-up, interrupt or termination signal (an SSH session that drops), or
# any other exit. E.g. start PostgreSQL again when a data directory copy is
# cut short while it is stopped. Empty when there is nothing to put back.
CPA_ON_FAILURE=

# cpa_run_failure_hook: run CPA_ON_FAILURE once, if set; never fails.
cpa_run_failure_hook() {
	local hook=$CPA_ON_FAILURE
	[ -n "$hook" ] || return 0
	CPA_ON_FAILURE=
	"$hook" || true
}

# The ERR trap: an unexpected failure of a command.
cpa_on_error() {
	local rc=$1 line=$2 cmd=$3 src=${BASH_SOURCE[1]:-bash}
	trap - ERR
	cpa_run_failure_hook
	cpa_die "$CPA_EX_FAILED" "command failed (exit $rc) at ${src##*/}:$line: $cmd" \
		"The output above says why."
}

# cpa_on_signal NAME NUMBER: the hang-up, interrupt and termination traps.
# The put-back runs with further signals ignored and errors tolerated: after
# a hang-up the terminal is gone, so its output goes to
# CPA_STATE_DIR/interrupted.log instead, where the next run can be checked.
cpa_on_signal() {
	local name=$1 number=$2
	trap '' HUP INT TERM PIPE
	trap - ERR
	set +e
	if [ "$name" = HUP ]; then
		install -d -m 0700 "$CPA_STATE_DIR" 2>/dev/null
		exec >>"$CPA_STATE_DIR/interrupted.log" 2>&1
		printf '%s: step %s: hang-up\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${CPA_STEP:-?}"
	fi
	cpa_warn "interrupted by SIG$name${CPA_ON_FAILURE:+: putting things back first}"
	cpa_run_failure_hook
	exit $((128 + number))
}

# The EXIT trap: whatever ends the step (an exit from cpa_die in the middle
# of a copy, say) runs the put-back if it is still set. The ERR trap goes
# first: the exit's own status, returned here, would otherwise set it off
# (set -E) and turn a usage error's 64 into a "command failed" 70.
cpa_on_exit() {
	local rc=$?
	trap - ERR
	if [ -n "$CPA_ON_FAILURE" ]; then
		trap '' HUP INT TERM PIPE
		set +e
		cpa_run_failure_hook
	fi
	return "$rc"
}

cpa_enable_error_trap() {
	set -E
	trap 'cpa_on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR
	trap 'cpa_on_signal HUP 1' HUP
	trap 'cpa_on_signal INT 2' INT
	trap 'cpa_on_signal TERM 15' TERM
	trap cpa_on_exit EXIT
}

# ---------------------------------------------------------------- dry run

# cpa_quote ARGS...: the arguments as one shell-quoted line (for messages).
cpa_quote() {
	local out="" a
	for a in "$@"; do
		out+="${out:+ }$(printf '%q' "$a")"
	done
	printf '%s\n' "$out"
}

# cpa_run CMD...: run a command that changes the system; under --dry-run
# print it instead. Never pass a secret to it (it is printed).
cpa_run() {
	if [ "$CPA_DRY_RUN" = 1 ]; then
		cpa_log_line "would run:" "$(cpa_quote "$@")"
		return 0
	fi
	"$@"
}

cpa_require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		cpa_die "$CPA_EX_NOPERM" "this must run as root (also with --dry-run: the plan reads root-only files)" \
			"Run it with sudo; --help and --show-config work as any user."
	fi
}

cpa_have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- the lock

# One provisioning at a time on a host. provision.sh, rollback.sh, a step run
# alone and the Ansible playbook (role provisioning_lock) take the same
# flock(2) lock on CPA_LOCK_FILE, and CPA_LOCK_FILE.owner says who holds it.
# A helper process holds it: flock --close, started in a session of its own
# (so a hang-up that ends this script's session does not end it), waits
# until this script's process has exited. No descriptor of the lock is ever
# open in this shell, so nothing it starts inherits one: a PostgreSQL started
# with pg_ctlcluster runs for months, and would otherwise hold the lock for
# as long, making every later run exit 69. The lock is free again within
# 0.2 s of the script's exit; a second run waits up to 3 s for it.
CPA_LOCK_FILE=${CPA_LOCK_FILE:-/run/lock/checkpoint-provision.lock}
CPA_LOCK_OWNER=${CPA_LOCK_OWNER:-}

# cpa_lock_held_by_parent: true when a process this one descends from took
# the lock (provision.sh running a step, rollback.sh running the agent step).
cpa_lock_held_by_parent() {
	local pid=$PPID
	[[ "$CPA_LOCK_OWNER" =~ ^[0-9]+$ ]] || return 1
	# the holder itself, after an exec
	[ "$$" = "$CPA_LOCK_OWNER" ] && return 0
	# The holder may be PID 1 (provision.sh as a container's first process).
	while [ "$pid" -gt 0 ]; do
		[ "$pid" = "$CPA_LOCK_OWNER" ] && return 0
		[ "$pid" -gt 1 ] || return 1
		# /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
		pid=$(sed 's/^.*) [^ ]* \([0-9]*\) .*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
		[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	done
	return 1
}

# cpa_take_lock WHO: take the provisioning lock for the rest of this
# process's life, or stop (69) naming who holds it. A dry run takes none.
cpa_take_lock() {
	local who=$1 fd line="" owner
	[ "$CPA_DRY_RUN" = 1 ] && return 0
	cpa_lock_held_by_parent && return 0
	install -d -m 0755 "$(dirname "$CPA_LOCK_FILE")" ||
		cpa_die "$CPA_EX_FAILED" "cannot create the folder of the lock $CPA_LOCK_FILE"
	# shellcheck disable=SC2016 # $1 is the inner sh's
	exec {fd}< <(exec setsid flock --wait 3 --conflict-exit-code 75 --close "$CPA_LOCK_FILE" \
		sh -c 'echo locked; exec tail --pid="$1" --sleep-interval=0.2 -f /dev/null >/dev/null' sh "$$" 2>/dev/null)
	read -r -t 30 -u "$fd" line || true
	exec {fd}<&-
	if [ "$line" != locked ]; then
		owner=$(head -n 1 "$CPA_LOCK_FILE.owner" 2>/dev/null || true)
		cpa_die "$CPA_EX_UNAVAILABLE" "another provisioning is running on this host (lock $CPA_LOCK_FILE, held by ${owner:-an unknown process})" \
			"Wait for it to finish, then run this again. provision.sh, rollback.sh, the steps and the Ansible playbook share this lock."
	fi
	CPA_LOCK_OWNER=$$
	export CPA_LOCK_OWNER
	printf '%s (pid %s, since %s)\n' "$who" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$CPA_LOCK_FILE.owner" || true
}

cpa_systemd_running() { [ -d /run/systemd/system ]; }

# ---------------------------------------------------------------- settings

# cpa_load_defaults: set every KEY of defaults.env (CPA_DEFAULTS_FILE) that
# the environment does not already set. Values are taken literally.
cpa_load_defaults() {
	local file=$CPA_DEFAULTS_FILE line key value
	[ -r "$file" ] || cpa_die "$CPA_EX_CONFIG" "cannot read the defaults file $file" \
		"It ships with the repository; restore it from git."
	CPA_SETTING_KEYS=()
	while IFS= read -r line || [ -n "$line" ]; do
		case "$line" in '' | '#'*) continue ;; esac
		key=${line%%=*}
		value=${line#*=}
		if ! [[ "$key" =~ ^CPA_[A-Z0-9_]+$ ]] || [ "$key" = "$line" ]; then
			cpa_die "$CPA_EX_CONFIG" "$file: not a KEY=value line: $line"
		fi
		CPA_SETTING_KEYS+=("$key")
		if [ -z "${!key+set}" ]; then
			printf -v "$key" '%s' "$value"
		fi
		# shellcheck disable=SC2163 # export the variable named by $key
		export "$key"
	done <"$file"
}

cpa_usage() {
	cat <<EOF
Usage: $CPA_USAGE_NAME [options]

$CPA_USAGE_WHAT

Options (each also settable by the environment variable named in brackets;
defaults from provision/defaults.env):
  --pg-version V          PostgreSQL major version [CPA_PG_VERSION=$CPA_PG_VERSION]
  --cluster NAME          cluster name [CPA_PG_CLUSTER=$CPA_PG_CLUSTER]
  --port N                cluster port [CPA_PG_PORT=$CPA_PG_PORT]
  --data-root DIR         the data disk [CPA_DATA_ROOT=$CPA_DATA_ROOT]
  --data-dir DIR          the data directory [CPA_DATA_DIR, default
                          DATA_ROOT/postgresql/VERSION/CLUSTER]
  --listen ADDRS          listen_addresses [CPA_LISTEN_ADDRESSES=$CPA_LISTEN_ADDRESSES]
  --allow-cidr CIDR       allow the application from CIDR too (repeatable)
                          [CPA_ALLOWED_CIDRS="$CPA_ALLOWED_CIDRS"]
  --role NAME             the application's role [CPA_DB_ROLE=$CPA_DB_ROLE]
  --database NAME         its database [CPA_DB_NAME=$CPA_DB_NAME]
  --schema NAME           schema of the checkpoint tables [CPA_DB_SCHEMA=$CPA_DB_SCHEMA]
  --sets "S..."           migration sets the agent applies [CPA_SETS=$CPA_SETS]
  --pool-size N           application pool size [CPA_POOL_SIZE=$CPA_POOL_SIZE]
  --pool-instances N      application instances [CPA_POOL_INSTANCES=$CPA_POOL_INSTANCES]
  --wal-rate KB           peak WAL the workload writes, kB per second, which
                          sizes max_wal_size; 0: 1280 per core (the agent's
                          wal check measures it) [CPA_WAL_RATE_KB=$CPA_WAL_RATE_KB]
  --app-group NAME        group the application runs as [CPA_APP_GROUP=$CPA_APP_GROUP]
  --config-dir DIR        [CPA_CONFIG_DIR=$CPA_CONFIG_DIR]
  --env-file FILE         the application's env file [CPA_ENV_FILE=$CPA_ENV_FILE]
  --credentials-file FILE root-only credentials [CPA_CREDENTIALS_FILE=$CPA_CREDENTIALS_FILE]
  --agent-password-file FILE [CPA_AGENT_PASSWORD_FILE=$CPA_AGENT_PASSWORD_FILE]
  --agent-user NAME       [CPA_AGENT_USER=$CPA_AGENT_USER]
  --prefix DIR            where the agent is installed [CPA_PREFIX=$CPA_PREFIX]
  --agent-deb FILE        install the agent from this .deb (built with
                          dpkg-buildpackage) instead of building it here, so
                          the server needs no compiler; the prefix is /usr
                          [CPA_AGENT_DEB]
  --state-dir DIR         provisioning records [CPA_STATE_DIR=$CPA_STATE_DIR]
  --space-margin PCT      free space required beyond the data size
                          [CPA_SPACE_MARGIN_PERCENT=$CPA_SPACE_MARGIN_PERCENT]
  --agent-role NAME       the agent's login role (pg_monitor)
                          [CPA_AGENT_DB_ROLE=$CPA_AGENT_DB_ROLE]
  --tls-cert FILE, --tls-key FILE
                          the server's certificate and key; default: a
                          generated self-signed one [CPA_TLS_CERT_FILE,
                          CPA_TLS_KEY_FILE="$CPA_TLS_CERT_FILE" "$CPA_TLS_KEY_FILE"]
  --tls-ca FILE           the CA that signed it: remote clients verify the
                          server [CPA_TLS_CA_FILE="$CPA_TLS_CA_FILE"]
  --public-host NAME      the name remote clients use [CPA_DB_PUBLIC_HOST,
                          default hostname -f: "$CPA_DB_PUBLIC_HOST"]
  --remote-env-file FILE  the env file for remote clients (--allow-cidr)
                          [CPA_REMOTE_ENV_FILE=$CPA_REMOTE_ENV_FILE]
  --apt-cache-valid-time S  apt-get update first when the lists are older
                          [CPA_APT_CACHE_VALID_TIME=$CPA_APT_CACHE_VALID_TIME]
  (environment only)      [CPA_LOCK_FILE=$CPA_LOCK_FILE], the one lock of
                          provision.sh, rollback.sh, the steps and Ansible
  --retention DURATION    the agent's TTL sweeps: prune threads whose newest
                          checkpoint is older, e.g. 30d; empty is off
                          [CPA_RETENTION="$CPA_RETENTION"]
  --retention-strategy S  delete or keep_latest
                          [CPA_RETENTION_STRATEGY=$CPA_RETENTION_STRATEGY]
                          (also CPA_RETENTION_SWEEP_INTERVAL=$CPA_RETENTION_SWEEP_INTERVAL,
                          CPA_RETENTION_SWEEP_LIMIT=$CPA_RETENTION_SWEEP_LIMIT)
  --no-backup             no pgBackRest backups or WAL archiving [CPA_BACKUP=$CPA_BACKUP]
  --backup-repo DIR       the pgBackRest repository [CPA_BACKUP_REPO=$CPA_BACKUP_REPO]
  --backup-stanza NAME    [CPA_BACKUP_STANZA, default the cluster's name]
  --backup-cipher         encrypt the repository; passphrase in a 0600 file
                          [CPA_BACKUP_CIPHER=$CPA_BACKUP_CIPHER]
  --backup-full-schedule CAL, --backup-diff-schedule CAL, --drill-schedule CAL
                          systemd OnCalendar= of the full and differential
                          backups and of the restore drill
                          [CPA_BACKUP_FULL_SCHEDULE="$CPA_BACKUP_FULL_SCHEDULE"]
                          [CPA_BACKUP_DIFF_SCHEDULE="$CPA_BACKUP_DIFF_SCHEDULE"]
                          [CPA_BACKUP_DRILL_SCHEDULE="$CPA_BACKUP_DRILL_SCHEDULE"]
  --backup-interval-hours N  longest gap between backups, for the agent's check
                          [CPA_BACKUP_INTERVAL_HOURS=$CPA_BACKUP_INTERVAL_HOURS]
  --backup-retention N    full backups kept [CPA_BACKUP_RETENTION_FULL=$CPA_BACKUP_RETENTION_FULL]
  --archive-timeout S     archive_timeout, seconds [CPA_ARCHIVE_TIMEOUT=$CPA_ARCHIVE_TIMEOUT]
  --backup-status-dir DIR where the backup units and the drill write their
                          results for the agent [CPA_BACKUP_STATUS_DIR=$CPA_BACKUP_STATUS_DIR]
  --enable-checksums      pg_checksums --enable on a cluster moved to the data
                          disk (it is stopped for the move anyway)
                          [CPA_ENABLE_CHECKSUMS=$CPA_ENABLE_CHECKSUMS]
  --password-file FILE    take the role's password from FILE (first line);
                          default: the stored one, or a new random one
  --remove-old            remove the old data directory after a verified move
  --require-mount         refuse unless DATA_ROOT is a mount point
  --dry-run               print what would be done; change nothing
  --show-config           print the effective settings and exit
  -h, --help              this help
$CPA_USAGE_EXTRA
Exit codes: 0 ok, 64 usage, 65 verification failed, 69 unavailable,
70 a step failed, 73 refused, 77 not root, 78 configuration (see README.md).
EOF
}

cpa_usage_error() {
	printf '%s: %s\n' "$CPA_USAGE_NAME" "$1" >&2
	printf 'Try: %s --help\n' "$CPA_USAGE_NAME" >&2
	exit "$CPA_EX_USAGE"
}

# cpa_parse_options ARGS...: the options every script shares. Options a
# script adds are handled by its own cpa_extra_option NAME VALUE function,
# which returns 0 when it took the value, 1 when it took only the name, and
# 2 when it does not know the option. Sets CPA_ARGS_REST to the arguments
# left (positional).
cpa_parse_options() {
	local opt val have_val cidrs_from_options="" show_config=0 rc
	CPA_ARGS_REST=()
	while [ "$#" -gt 0 ]; do
		opt=$1
		have_val=0
		val=
		case "$opt" in
		--*=*)
			val=${opt#*=}
			opt=${opt%%=*}
			have_val=1
			;;
		esac
		take_value() {
			if [ "$have_val" = 0 ]; then
				[ "$#" -ge 2 ] || cpa_usage_error "$opt needs a value"
				val=$2
				return 1
			fi
			return 0
		}
		case "$opt" in
		-h | --help)
			cpa_usage
			exit 0
			;;
		--dry-run) CPA_DRY_RUN=1 ;;
		--remove-old) CPA_REMOVE_OLD=1 ;;
		--require-mount) CPA_REQUIRE_MOUNT=1 ;;
		--no-backup) CPA_BACKUP=0 ;;
		--backup-cipher) CPA_BACKUP_CIPHER=1 ;;
		--enable-checksums) CPA_ENABLE_CHECKSUMS=1 ;;
		--show-config) show_config=1 ;;
		--pg-version | --cluster | --port | --data-root | --data-dir | --listen | --allow-cidr | \
			--role | --database | --schema | --sets | --pool-size | --pool-instances | --wal-rate | --app-group | \
			--config-dir | --env-file | --credentials-file | --agent-password-file | --agent-user | \
			--prefix | --state-dir | --space-margin | --password-file | --agent-role | --tls-cert | --tls-key | \
			--tls-ca | --public-host | --remote-env-file | --apt-cache-valid-time | --backup-repo | --backup-stanza | \
			--backup-full-schedule | --backup-diff-schedule | --drill-schedule | --backup-interval-hours | \
			--backup-retention | --archive-timeout | --backup-status-dir | --agent-deb)
			if ! take_value "$@"; then shift; fi
			case "$opt" in
			--pg-version) CPA_PG_VERSION=$val ;;
			--cluster) CPA_PG_CLUSTER=$val ;;
			--port) CPA_PG_PORT=$val ;;
			--data-root) CPA_DATA_ROOT=$val ;;
			--data-dir) CPA_DATA_DIR=$val ;;
			--listen) CPA_LISTEN_ADDRESSES=$val ;;
			--allow-cidr) cidrs_from_options+="${cidrs_from_options:+ }$val" ;;
			--role) CPA_DB_ROLE=$val ;;
			--database) CPA_DB_NAME=$val ;;
			--schema) CPA_DB_SCHEMA=$val ;;
			--sets) CPA_SETS=$val ;;
			--pool-size) CPA_POOL_SIZE=$val ;;
			--pool-instances) CPA_POOL_INSTANCES=$val ;;
			--wal-rate) CPA_WAL_RATE_KB=$val ;;
			--app-group) CPA_APP_GROUP=$val ;;
			--config-dir) CPA_CONFIG_DIR=$val ;;
			--env-file) CPA_ENV_FILE=$val ;;
			--credentials-file) CPA_CREDENTIALS_FILE=$val ;;
			--agent-password-file) CPA_AGENT_PASSWORD_FILE=$val ;;
			--agent-user) CPA_AGENT_USER=$val ;;
			--prefix) CPA_PREFIX=$val ;;
			--state-dir) CPA_STATE_DIR=$val ;;
			--space-margin) CPA_SPACE_MARGIN_PERCENT=$val ;;
			--password-file) CPA_PASSWORD_SOURCE=$val ;;
			--agent-role) CPA_AGENT_DB_ROLE=$val ;;
			--tls-cert) CPA_TLS_CERT_FILE=$val ;;
			--tls-key) CPA_TLS_KEY_FILE=$val ;;
			--tls-ca) CPA_TLS_CA_FILE=$val ;;
			--public-host) CPA_DB_PUBLIC_HOST=$val ;;
			--remote-env-file) CPA_REMOTE_ENV_FILE=$val ;;
			--apt-cache-valid-time) CPA_APT_CACHE_VALID_TIME=$val ;;
			--backup-repo) CPA_BACKUP_REPO=$val ;;
			--backup-stanza) CPA_BACKUP_STANZA=$val ;;
			--backup-full-schedule) CPA_BACKUP_FULL_SCHEDULE=$val ;;
			--backup-diff-schedule) CPA_BACKUP_DIFF_SCHEDULE=$val ;;
			--drill-schedule) CPA_BACKUP_DRILL_SCHEDULE=$val ;;
			--backup-interval-hours) CPA_BACKUP_INTERVAL_HOURS=$val ;;
			--backup-retention) CPA_BACKUP_RETENTION_FULL=$val ;;
			--archive-timeout) CPA_ARCHIVE_TIMEOUT=$val ;;
			--backup-status-dir) CPA_BACKUP_STATUS_DIR=$val ;;
			--agent-deb) CPA_AGENT_DEB=$val ;;
			esac
			;;
		--retention | --retention-strategy)
			if ! take_value "$@"; then shift; fi
			if [ "$opt" = --retention ]; then CPA_RETENTION=$val; else CPA_RETENTION_STRATEGY=$val; fi
			;;
		--)
			shift
			CPA_ARGS_REST+=("$@")
			break
			;;
		-*)
			rc=2
			if declare -F cpa_extra_option >/dev/null; then
				if [ "$have_val" = 1 ]; then
					cpa_extra_option "$opt" "$val" && rc=0 || rc=$?
					[ "$rc" != 1 ] || cpa_usage_error "$opt takes no value"
				else
					cpa_extra_option "$opt" "${2-}" && rc=0 || rc=$?
					if [ "$rc" = 0 ]; then
						[ "$#" -ge 2 ] || cpa_usage_error "$opt needs a value"
						shift
					fi
				fi
			fi
			[ "$rc" != 2 ] || cpa_usage_error "unknown option: $opt"
			;;
		*) CPA_ARGS_REST+=("$opt") ;;
		esac
		shift
	done
	unset -f take_value
	if [ -n "$cidrs_from_options" ]; then
		CPA_ALLOWED_CIDRS="${CPA_ALLOWED_CIDRS:+$CPA_ALLOWED_CIDRS }$cidrs_from_options"
	fi
	cpa_finish_settings
	if [ "$show_config" = 1 ]; then
		cpa_show_config
		exit 0
	fi
}

# cpa_finish_settings: derived values, then validation.
cpa_finish_settings() {
	local c cidrs=""
	if [ -z "${CPA_DATA_DIR:-}" ]; then
		CPA_DATA_DIR=$CPA_DATA_ROOT/postgresql/$CPA_PG_VERSION/$CPA_PG_CLUSTER
	fi
	CPA_AGENT_CONFIG=$CPA_CONFIG_DIR/agent.conf
	cpa_finish_agent_deb
	CPA_AGENT_BIN=$CPA_PREFIX/bin/checkpoint-agent
	CPA_PG_CONF_DIR=/etc/postgresql/$CPA_PG_VERSION/$CPA_PG_CLUSTER
	CPA_PG_BIN=/usr/lib/postgresql/$CPA_PG_VERSION/bin
	CPA_PG_UNIT=postgresql@$CPA_PG_VERSION-$CPA_PG_CLUSTER.service
	export CPA_DATA_DIR CPA_AGENT_CONFIG CPA_AGENT_BIN CPA_PG_CONF_DIR CPA_PG_BIN CPA_PG_UNIT \
		CPA_DRY_RUN CPA_REMOVE_OLD CPA_REQUIRE_MOUNT CPA_PASSWORD_SOURCE CPA_ALLOWED_CIDRS \
		CPA_DATA_ROOT CPA_LISTEN_ADDRESSES CPA_DB_ROLE CPA_DB_NAME CPA_DB_SCHEMA CPA_SETS \
		CPA_POOL_SIZE CPA_POOL_INSTANCES CPA_WAL_RATE_KB CPA_PG_VERSION CPA_PG_CLUSTER CPA_PG_PORT CPA_AGENT_DEB \
		CPA_AGENT_DB_ROLE CPA_TLS_CERT_FILE CPA_TLS_KEY_FILE CPA_TLS_CA_FILE CPA_DB_PUBLIC_HOST \
		CPA_REMOTE_ENV_FILE CPA_APT_CACHE_VALID_TIME

	[[ "$CPA_PG_VERSION" =~ ^[0-9]+$ ]] || cpa_usage_error "the PostgreSQL version must be a number: $CPA_PG_VERSION"
	[[ "$CPA_PG_CLUSTER" =~ ^[A-Za-z0-9_.-]+$ ]] || cpa_usage_error "bad cluster name: $CPA_PG_CLUSTER"
	cpa_check_uint "port" "$CPA_PG_PORT" 1 65535
	cpa_check_uint "pool size" "$CPA_POOL_SIZE" 1 100000
	cpa_check_uint "pool instances" "$CPA_POOL_INSTANCES" 1 10000
	cpa_check_uint "WAL rate (kB/s)" "$CPA_WAL_RATE_KB" 0 999999999
	cpa_check_uint "space margin" "$CPA_SPACE_MARGIN_PERCENT" 0 1000
	cpa_check_uint "apt cache valid time" "$CPA_APT_CACHE_VALID_TIME" 0 999999999
	for c in CPA_DATA_ROOT CPA_DATA_DIR CPA_CONFIG_DIR CPA_ENV_FILE CPA_CREDENTIALS_FILE \
		CPA_AGENT_PASSWORD_FILE CPA_PREFIX CPA_STATE_DIR CPA_REMOTE_ENV_FILE CPA_LOCK_FILE \
		CPA_TLS_CERT_FILE CPA_TLS_KEY_FILE CPA_TLS_CA_FILE; do
		# the TLS files may be empty (a generated certificate)
		[ -n "${!c}" ] || case "$c" in CPA_TLS_*) continue ;; esac
		case "${!c}" in
		/*) ;;
		*) cpa_usage_error "$c must be an absolute path: ${!c}" ;;
		esac
		case "${!c}" in
		*[[:space:]\'\"\\]*) cpa_usage_error "$c must not contain spaces, quotes or backslashes: ${!c}" ;;
		esac
	done
	CPA_DATA_DIR=$(cpa_normalize_path "$CPA_DATA_DIR")
	CPA_DATA_ROOT=$(cpa_normalize_path "$CPA_DATA_ROOT")
	for c in CPA_DB_ROLE CPA_DB_NAME CPA_DB_SCHEMA CPA_APP_GROUP CPA_AGENT_USER CPA_AGENT_DB_ROLE; do
		[[ "${!c}" =~ ^[a-z_][a-z0-9_-]*$ ]] ||
			cpa_usage_error "$c must be lower-case letters, digits, _ or - (starting with a letter or _): ${!c}"
	done
	for c in $CPA_SETS; do
		case "$c" in
		langgraph | langgraph-store | agentos) ;;
		*) cpa_usage_error "unknown migration set: $c (sets: langgraph langgraph-store agentos)" ;;
		esac
	done
	for c in $CPA_ALLOWED_CIDRS; do
		cpa_valid_cidr "$c" || cpa_usage_error "not a CIDR (address/prefix): $c"
		# Each once: provision.sh exports the list and also passes its
		# --allow-cidr options on to every step.
		case " $cidrs " in
		*" $c "*) ;;
		*) cidrs+="${cidrs:+ }$c" ;;
		esac
	done
	CPA_ALLOWED_CIDRS=$cidrs
	if declare -F cpa_backup_finish_settings >/dev/null; then
		cpa_backup_finish_settings
	fi
	[[ "$CPA_LISTEN_ADDRESSES" =~ ^[A-Za-z0-9.:*,\ -]+$ ]] ||
		cpa_usage_error "listen addresses must be a comma-separated list of hosts or addresses: $CPA_LISTEN_ADDRESSES"
	[ "$CPA_AGENT_DB_ROLE" != "$CPA_DB_ROLE" ] ||
		cpa_usage_error "the agent's role must differ from the application's: $CPA_AGENT_DB_ROLE"
	# its SET ROLE bridge, CPA_AGENT_DB_ROLE_as_owner, must fit in 63 bytes
	[ "${#CPA_AGENT_DB_ROLE}" -le 54 ] || cpa_usage_error "the agent's role name is longer than 54 characters: $CPA_AGENT_DB_ROLE"
	[ -z "$CPA_DB_PUBLIC_HOST" ] || [[ "$CPA_DB_PUBLIC_HOST" =~ ^[A-Za-z0-9.:-]+$ ]] ||
		cpa_usage_error "the public host must be a host name or address: $CPA_DB_PUBLIC_HOST"
	if { [ -n "$CPA_TLS_CERT_FILE" ] && [ -z "$CPA_TLS_KEY_FILE" ]; } ||
		{ [ -z "$CPA_TLS_CERT_FILE" ] && [ -n "$CPA_TLS_KEY_FILE" ]; }; then
		cpa_usage_error "give both --tls-cert and --tls-key, or neither (a self-signed certificate is generated)"
	fi
	[ -z "$CPA_TLS_CA_FILE" ] || [ -n "$CPA_TLS_CERT_FILE" ] ||
		cpa_usage_error "--tls-ca needs --tls-cert and --tls-key: the CA is the one that signed that certificate"
	cpa_check_retention
}

# cpa_check_retention: the agent's retention settings, as agent.conf takes them.
cpa_check_retention() {
	[ -z "$CPA_RETENTION" ] || [[ "$CPA_RETENTION" =~ ^[1-9][0-9]{0,5}[smhdw]$ ]] ||
		cpa_usage_error "--retention must be a duration such as 30d, 12h or 90m (s, m, h, d, w), or empty for off: $CPA_RETENTION"
	case "$CPA_RETENTION_STRATEGY" in
	delete | keep_latest) ;;
	keep-latest) CPA_RETENTION_STRATEGY=keep_latest ;;
	*) cpa_usage_error "--retention-strategy must be delete or keep_latest: $CPA_RETENTION_STRATEGY" ;;
	esac
	[[ "$CPA_RETENTION_SWEEP_INTERVAL" =~ ^[1-9][0-9]{0,5}[smhdw]$ ]] ||
		cpa_usage_error "CPA_RETENTION_SWEEP_INTERVAL must be a duration such as 1h or 15m: $CPA_RETENTION_SWEEP_INTERVAL"
	cpa_check_uint "retention sweep limit" "$CPA_RETENTION_SWEEP_LIMIT" 1 10000000
	export CPA_RETENTION CPA_RETENTION_STRATEGY CPA_RETENTION_SWEEP_INTERVAL CPA_RETENTION_SWEEP_LIMIT
}

# cpa_finish_agent_deb: with --agent-deb, the package file as an absolute
# path (apt-get installs a local file only by path), and the package's prefix.
cpa_finish_agent_deb() {
	CPA_AGENT_DEB=${CPA_AGENT_DEB:-}
	[ -n "$CPA_AGENT_DEB" ] || return 0
	if ! [ -f "$CPA_AGENT_DEB" ] || ! [ -r "$CPA_AGENT_DEB" ]; then
		cpa_usage_error "--agent-deb: $CPA_AGENT_DEB is not a readable file"
	fi
	case "$CPA_AGENT_DEB" in
	*.deb) ;;
	*) cpa_usage_error "--agent-deb: $CPA_AGENT_DEB is not a .deb file" ;;
	esac
	CPA_AGENT_DEB=$(realpath -- "$CPA_AGENT_DEB")
	case "$CPA_AGENT_DEB" in
	*[[:space:]\'\"\\]*) cpa_usage_error "--agent-deb: the path must not contain spaces, quotes or backslashes: $CPA_AGENT_DEB" ;;
	esac
	CPA_PREFIX=/usr
}

cpa_check_uint() {
	local what=$1 value=$2 min=$3 max=$4
	if ! [[ "$value" =~ ^[0-9]{1,9}$ ]] || [ "$value" -lt "$min" ] || [ "$value" -gt "$max" ]; then
		cpa_usage_error "the $what must be a whole number from $min to $max: $value"
	fi
}

# cpa_valid_cidr CIDR: an IPv4 or IPv6 address with a prefix length.
cpa_valid_cidr() {
	local cidr=$1 addr prefix o
	[[ "$cidr" == */* ]] || return 1
	addr=${cidr%/*}
	prefix=${cidr#*/}
	[[ "$prefix" =~ ^[0-9]{1,3}$ ]] || return 1
	if [[ "$addr" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
		[ "$prefix" -le 32 ] || return 1
		local IFS=.
		for o in $addr; do
			[ "$((10#$o))" -le 255 ] || return 1
		done
		return 0
	fi
	[[ "$addr" =~ ^[0-9A-Fa-f:]+$ ]] && [[ "$addr" == *:* ]] && [ "$prefix" -le 128 ]
}

# cpa_normalize_path PATH: no trailing slash, no // or /./ (not resolving links).
cpa_normalize_path() {
	local p=$1
	while [[ "$p" == *//* ]]; do p=${p//\/\//\/}; done
	while [[ "$p" == */./* ]]; do p=${p//\/.\//\/}; done
	p=${p%/.}
	[ "$p" = / ] || p=${p%/}
	printf '%s\n' "$p"
}

cpa_show_config() {
	local k
	for k in "${CPA_SETTING_KEYS[@]}" CPA_DATA_DIR; do
		printf '%s=%s\n' "$k" "${!k}"
	done | awk '!seen[$0]++'
	printf 'dry_run=%s remove_old=%s require_mount=%s password_file=%s agent_deb=%s\n' \
		"$CPA_DRY_RUN" "$CPA_REMOVE_OLD" "$CPA_REQUIRE_MOUNT" "${CPA_PASSWORD_SOURCE:-<stored or generated>}" \
		"${CPA_AGENT_DEB:-<built from this checkout>}"
}

# cpa_init NAME ARGS...: what a step script does first.
cpa_init_step() {
	CPA_STEP=$1
	shift
	CPA_USAGE_NAME=${CPA_USAGE_NAME:-provision/steps/$(basename "$0")}
	CPA_USAGE_WHAT=${CPA_USAGE_WHAT:-Runs the provisioning step "$CPA_STEP" alone.}
	CPA_USAGE_EXTRA=${CPA_USAGE_EXTRA:-}
	cpa_load_defaults
	cpa_parse_options "$@"
	if [ -z "$CPA_RESUME_ARGS" ] && [ "$#" -gt 0 ]; then
		CPA_RESUME_ARGS=$(cpa_quote "$@")
	fi
	export CPA_STEP CPA_RESUME_ARGS
	cpa_require_root
	cpa_take_lock "step $CPA_STEP"
	cpa_enable_error_trap
	umask 077
}

# ---------------------------------------------------------------- files

# cpa_render TEMPLATE [NAME=VALUE...]: print TEMPLATE with every {{ name }}
# replaced. Values come from the arguments, then from the associative array
# CPA_TPL (use it for secrets: arrays are not on any command line). A
# placeholder without a value, or a Jinja statement/comment, is an error:
# the templates must stay renderable by both this function and Ansible.
declare -gA CPA_TPL
cpa_render() {
	local template=$1 line out name rest value lineno=0 kv
	shift
	local -A vals=()
	for kv in "$@"; do
		vals[${kv%%=*}]=${kv#*=}
	done
	[ -r "$template" ] || cpa_die "$CPA_EX_CONFIG" "template not found: $template"
	while IFS= read -r line || [ -n "$line" ]; do
		lineno=$((lineno + 1))
		case "$line" in
		*'{%'* | *'{#'*)
			cpa_die "$CPA_EX_CONFIG" "$template:$lineno: only {{ name }} placeholders are allowed"
			;;
		esac
		out=
		while [[ "$line" == *'{{'* ]]; do
			out+=${line%%\{\{*}
			rest=${line#*\{\{}
			[[ "$rest" == *'}}'* ]] || cpa_die "$CPA_EX_CONFIG" "$template:$lineno: unclosed {{"
			name=${rest%%\}\}*}
			name=${name#"${name%%[![:space:]]*}"}
			name=${name%"${name##*[![:space:]]}"}
			[[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] ||
				cpa_die "$CPA_EX_CONFIG" "$template:$lineno: bad placeholder {{ $name }}"
			if [ -n "${vals[$name]+set}" ]; then
				value=${vals[$name]}
			elif [ -n "${CPA_TPL[$name]+set}" ]; then
				value=${CPA_TPL[$name]}
			else
				cpa_die "$CPA_EX_CONFIG" "$template:$lineno: no value for {{ $name }}"
			fi
			out+=$value
			line=${rest#*\}\}}
		done
		printf '%s\n' "$out$line"
	done <"$template"
}

# cpa_install_content DEST MODE OWNER GROUP DESCRIPTION [--secret] < CONTENT:
# write DEST only when its content, mode or owner differ. Returns 0 when it
# changed (or would change) something, 1 when all was in place, and 70
# (after saying what failed) when DEST could not be written: then DEST is
# as it was, and no temporary file is left. Callers pass 0 and 1 on and stop
# on anything else: `... | cpa_install_content ... || cpa_installed "$?"`.
# Secrets: the content is never printed, and is compared in memory; the only
# file it is written to is a 0600 temp file in DEST's folder, renamed onto
# DEST (so a kill leaves nothing in /tmp, and nothing others can read).
cpa_install_content() {
	local dest=$1 mode=$2 owner=$3 group=$4 desc=$5 secret=${6:-} content dir cur
	dir=$(dirname "$dest")
	# The x keeps trailing newlines, which $(...) would drop.
	content=$(cat && printf x)
	content=${content%x}
	if [ -f "$dest" ] && printf '%s' "$content" | cmp -s - "$dest"; then
		cur=$(stat -c '%a %U %G' "$dest")
		if [ "$cur" = "$(printf '%o' "$((8#$mode))") $owner $group" ]; then
			cpa_unchanged "$desc $dest"
			return 1
		fi
		if [ "$CPA_DRY_RUN" = 1 ]; then
			cpa_changed "$desc $dest: set mode $mode owner $owner:$group (was $cur)"
			return 0
		fi
		if ! chown "$owner:$group" "$dest" || ! chmod "$mode" "$dest"; then
			cpa_install_failed "$desc $dest" "" "cannot set its mode $mode and owner $owner:$group"
			return "$CPA_EX_FAILED"
		fi
		cpa_changed "$desc $dest: mode $mode owner $owner:$group (was $cur)"
		return 0
	fi
	if [ "$CPA_DRY_RUN" = 1 ]; then
		if [ -f "$dest" ] && [ "$secret" != --secret ]; then
			cpa_changed "$desc $dest would change:"
			diff -u "$dest" <(printf '%s' "$content") | sed -n '3,$p' | sed 's/^/      /' || true
		else
			cpa_changed "$desc $dest (mode $mode, $owner:$group)"
		fi
		return 0
	fi
	if [ ! -d "$dir" ] && ! install -d -m 0755 "$dir"; then
		cpa_install_failed "$desc $dest" "" "cannot create its folder $dir"
		return "$CPA_EX_FAILED"
	fi
	local final
	if ! final=$(mktemp "$dir/.$(basename "$dest").XXXXXX"); then
		cpa_install_failed "$desc $dest" "" "cannot create a temporary file in $dir"
		return "$CPA_EX_FAILED"
	fi
	# Each step checked: errexit is off in a function called as `f || ...`.
	if ! chmod 0600 "$final" || ! printf '%s' "$content" >"$final" || ! sync -- "$final" ||
		! chown "$owner:$group" "$final" || ! chmod "$mode" "$final"; then
		cpa_install_failed "$desc $dest" "$final" "cannot write the temporary file $final"
		return "$CPA_EX_FAILED"
	fi
	if ! mv -f -T -- "$final" "$dest"; then
		cpa_install_failed "$desc $dest" "$final" "cannot rename $final onto it"
		return "$CPA_EX_FAILED"
	fi
	cpa_changed "$desc $dest (mode $mode, $owner:$group)"
	return 0
}

# cpa_install_failed WHAT TEMPFILE WHY: the error of a write that failed;
# removes the temporary file. The file written to keeps its old content.
cpa_install_failed() {
	local what=$1 tmp=$2 why=$3
	[ -z "$tmp" ] || rm -f -- "$tmp"
	{
		printf 'ERROR: step %s: could not write %s: %s\n' "${CPA_STEP:-provision}" "$what" "$why"
		printf '  It keeps its previous content. The message above says why (a full or read-only disk?).\n'
	} >&2
}

# cpa_installed RC: after `cpa_install_content ... || cpa_installed "$?"`:
# 1 (nothing to change) is fine; anything else stops the step with RC.
cpa_installed() {
	[ "$1" = 1 ] && return 0
	cpa_die "$1" "a file could not be written (see above); nothing after it was done"
}

# cpa_install_result RC: for `if`: 0 when cpa_install_content changed the
# file, 1 when it was in place; a failure stops the step.
#   rc=0; ... | cpa_install_content ... || rc=$?
#   if cpa_install_result "$rc"; then ...
cpa_install_result() {
	case "$1" in
	0 | 1) return "$1" ;;
	esac
	cpa_installed "$1"
}

# cpa_ensure_dir DIR MODE OWNER GROUP DESCRIPTION: returns 0 if changed.
cpa_ensure_dir() {
	local dir=$1 mode=$2 owner=$3 group=$4 desc=$5 cur
	if [ -d "$dir" ]; then
		cur=$(stat -c '%a %U %G' "$dir")
		if [ "$cur" = "$(printf '%o' "$((8#$mode))") $owner $group" ]; then
			return 1
		fi
		cpa_run chown "$owner:$group" "$dir"
		cpa_run chmod "$mode" "$dir"
		cpa_changed "$desc $dir: mode $mode owner $owner:$group (was $cur)"
		return 0
	fi
	cpa_run install -d -m "$mode" -o "$owner" -g "$group" "$dir"
	cpa_changed "$desc $dir (new, mode $mode, $owner:$group)"
	return 0
}

# ---------------------------------------------------------------- PostgreSQL

# cpa_psql [psql args]: psql as the postgres superuser over the socket,
# quiet, unaligned, stopping at the first error.
cpa_psql() {
	runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$CPA_PG_PORT" "$@"
}

cpa_cluster_exists() {
	[ -f "$CPA_PG_CONF_DIR/postgresql.conf" ]
}

# cpa_cluster_status: "online", "down" or "absent" (from pg_lsclusters).
cpa_cluster_status() {
	local line
	if ! cpa_have pg_lsclusters; then
		echo absent
		return 0
	fi
	line=$(pg_lsclusters -h "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" 2>/dev/null | head -n 1 || true)
	if [ -z "$line" ]; then
		echo absent
	else
		awk '{ sub(/,.*/, "", $4); print $4 }' <<<"$line"
	fi
}

# cpa_cluster_data_directory: the configured data_directory.
cpa_cluster_data_directory() {
	pg_conftool -s "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" show data_directory 2>/dev/null
}

cpa_cluster_start() {
	if [ "$(cpa_cluster_status)" = online ]; then
		return 0
	fi
	cpa_run pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" start ||
		cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL $CPA_PG_VERSION/$CPA_PG_CLUSTER did not start" \
			"See /var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log and journalctl -u $CPA_PG_UNIT."
	[ "$CPA_DRY_RUN" = 1 ] || cpa_changed "started PostgreSQL $CPA_PG_VERSION/$CPA_PG_CLUSTER"
}

cpa_cluster_stop() {
	if [ "$(cpa_cluster_status)" != online ]; then
		return 0
	fi
	cpa_run pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" stop ||
		cpa_die "$CPA_EX_FAILED" "PostgreSQL $CPA_PG_VERSION/$CPA_PG_CLUSTER did not stop" \
			"See /var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log."
}

# cpa_wait_ready [SECONDS]: wait until the cluster accepts connections.
cpa_wait_ready() {
	local limit=${1:-60} i
	for ((i = 0; i < limit * 2; i++)); do
		if runuser -u postgres -- pg_isready -q -p "$CPA_PG_PORT" 2>/dev/null; then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

# cpa_running_port: the port the running server listens on (line 4 of its
# postmaster.pid). It differs from CPA_PG_PORT while a changed port waits for
# its restart. CPA_PG_PORT when it cannot be read.
cpa_running_port() {
	local dir port
	dir=$(cpa_cluster_data_directory || true)
	port=$(sed -n 4p "$dir/postmaster.pid" 2>/dev/null || true)
	[[ "$port" =~ ^[0-9]+$ ]] || port=$CPA_PG_PORT
	printf '%s\n' "$port"
}

# cpa_config_files_newer_than EPOCH: the cluster's configuration files
# changed after EPOCH (seconds, fractions allowed): postgresql.conf, conf.d,
# pg_hba.conf, pg_ident.conf and the data directory's postgresql.auto.conf.
cpa_config_files_newer_than() {
	local since=$1 f
	for f in "$CPA_PG_CONF_DIR"/postgresql.conf "$CPA_PG_CONF_DIR"/conf.d/*.conf "$CPA_PG_CONF_DIR"/pg_hba.conf \
		"$CPA_PG_CONF_DIR"/pg_ident.conf "$(cpa_cluster_data_directory || true)"/postgresql.auto.conf; do
		[ -f "$f" ] || continue
		stat -c '%.9Y %n' -- "$f"
	done | awk -v t="$since" '$1 > t { sub(/^[^ ]* /, ""); print }'
}

# cpa_settle_config REASON CHANGED: bring the running server in line with its
# configuration files. It reloads when this run changed a file (CHANGED=1)
# or when a file is newer than the server's last load (pg_conf_load_time:
# a run that wrote it and was cut short before its reload), waits until the
# reload has really been applied, then restarts only when a setting needs
# it (pg_settings.pending_restart) - whichever run changed it. So an
# interrupted run's restart is not lost: the next run makes it.
cpa_settle_config() {
	local reason=$1 changed=${2:-0} port loaded stale="" pending reloaded=0 i now
	if [ "$CPA_DRY_RUN" = 1 ]; then
		[ "$changed" = 1 ] && cpa_changed "reload PostgreSQL for $reason; restart only if a changed setting needs it"
		return 0
	fi
	if [ "$(cpa_cluster_status)" != online ]; then
		[ "$changed" = 1 ] && cpa_info "PostgreSQL is down; the change takes effect when it starts"
		return 0
	fi
	port=$(cpa_running_port)
	loaded=$(cpa_psql -p "$port" -d postgres -c "SELECT extract(epoch FROM pg_conf_load_time())")
	[ "$changed" = 1 ] || stale=$(cpa_config_files_newer_than "$loaded" | paste -sd ' ')
	if [ "$changed" = 1 ] || [ -n "$stale" ]; then
		pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" reload
		for ((i = 0; i < 300; i++)); do
			now=$(cpa_psql -p "$port" -d postgres -c "SELECT extract(epoch FROM pg_conf_load_time())")
			[ "$now" = "$loaded" ] || break
			sleep 0.1
		done
		if [ "$now" = "$loaded" ]; then
			cpa_warn "PostgreSQL has not applied the reload within 30 s; its log says why (/var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log)"
		fi
		reloaded=1
		[ -z "$stale" ] || reason+=" (changed by an earlier run that did not finish: $stale)"
	fi
	pending=$(cpa_psql -p "$port" -d postgres -c "SELECT string_agg(name, ', ' ORDER BY name) FROM pg_settings WHERE pending_restart")
	if [ -n "$pending" ]; then
		pg_ctlcluster "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" restart
		cpa_wait_ready 120 || cpa_die "$CPA_EX_UNAVAILABLE" "PostgreSQL did not come back after a restart" \
			"See /var/log/postgresql/postgresql-$CPA_PG_VERSION-$CPA_PG_CLUSTER.log."
		cpa_changed "restarted PostgreSQL for $reason: $pending need a restart"
	elif [ "$reloaded" = 1 ]; then
		cpa_changed "reloaded PostgreSQL for $reason (no restart needed)"
	fi
}

# cpa_pkg_installed PACKAGE: true when dpkg says it is installed.
cpa_pkg_installed() {
	dpkg-query -W -f '${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# Backups (pgBackRest): their settings are checked with the others.
# shellcheck source-path=SCRIPTDIR source=backup.sh
. "$CPA_PROVISION_DIR/lib/backup.sh"
