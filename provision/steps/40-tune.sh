#!/bin/bash
# 40-tune.sh: step "tune". Writes conf.d/50-checkpoint-tuning.conf from
# templates/postgresql-tuning.conf.j2 with the values of tune-values.sh
# (memory, cores, the application's pools), makes sure postgresql.conf
# includes conf.d, has the server check the files, then reloads, restarting
# only when a changed setting needs it (pg_settings.pending_restart).
# The per-table autovacuum settings need the tables: step "table-tuning".
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

TUNING_TEMPLATE=$CPA_TEMPLATES_DIR/postgresql-tuning.conf.j2

# render_tuning: the drop-in's text.
render_tuning() {
	local -a values=()
	mapfile -t values < <("$CPA_PROVISION_DIR/tune-values.sh" \
		--pool-size "$CPA_POOL_SIZE" --instances "$CPA_POOL_INSTANCES" --wal-rate-kb "$CPA_WAL_RATE_KB")
	[ "${#values[@]}" -gt 0 ] || cpa_die "$CPA_EX_FAILED" "tune-values.sh printed nothing"
	cpa_render "$TUNING_TEMPLATE" "${values[@]}"
}

# ensure_include_dir: returns 0 when it changed (or would change) the file.
# pg_conftool does not show include directives, so the file is read here.
ensure_include_dir() {
	local conf=$CPA_PG_CONF_DIR/postgresql.conf
	if grep -Eq "^[[:space:]]*include_dir[[:space:]]*=?[[:space:]]*'(conf\.d|$CPA_PG_CONF_DIR/conf\.d)'" "$conf"; then
		cpa_unchanged "postgresql.conf includes conf.d"
		return 1
	fi
	cpa_run pg_conftool "$CPA_PG_VERSION" "$CPA_PG_CLUSTER" set include_dir conf.d
	cpa_changed "postgresql.conf: include_dir = 'conf.d' (it was not included)"
}

# check_settings_files DROPIN HAD PREVIOUS: the server's view of the files on
# disk (before they are loaded); a bad value would otherwise be skipped with
# only a log line, and a restart would then fail. Two views: pg_file_settings
# (file and line; "setting could not be applied" only means the value waits
# for a restart), and `postgres -C`, which reads the files as a start would
# and so also refuses a restart-only value out of its range (which
# pg_file_settings reports as merely waiting). When DROPIN itself holds a
# rejected value, it is put back as it was (HAD: 1 when it existed, with the
# text PREVIOUS; 0 when it did not) before the step stops, so no later
# reload or restart loads it.
check_settings_files() {
	local dropin=$1 had=$2 previous=$3 errors
	errors=$(cpa_psql -d postgres -c "SELECT sourcefile || ':' || sourceline || ': ' || name || ': ' || error
		FROM pg_file_settings WHERE error IS NOT NULL AND error <> 'setting could not be applied'")
	if [ -z "$errors" ] && ! errors=$(cd / && runuser -u postgres -- "$CPA_PG_BIN/postgres" -D "$CPA_PG_CONF_DIR" -C data_directory 2>&1 >/dev/null); then
		errors=$(sed -n 's/^.*\(LOG\|FATAL\): *//p' <<<"$errors" | paste -sd ';' | sed 's/;/; /g')
		errors=${errors:-postgres -C refuses the configuration}
	elif [ -z "$errors" ]; then
		return 0
	fi
	if grep -qF "$dropin" <<<"$errors"; then
		if [ "$had" = 1 ]; then
			printf '%s' "$previous" | cpa_install_content "$dropin" 0644 postgres postgres "tuning drop-in (the previous one, back)" ||
				cpa_installed "$?"
		else
			rm -f -- "$dropin"
			cpa_changed "removed the rejected $dropin"
		fi
	fi
	cpa_die "$CPA_EX_FAILED" "PostgreSQL rejects settings: $errors" \
		"Nothing was reloaded and the previous tuning file is in place. Fix the file named (a local conf.d file, or the template's values), then resume."
}

main() {
	local dropin changed=0 content rc=0 had=0 previous=
	cpa_init_step tune "$@"
	dropin=$CPA_PG_CONF_DIR/conf.d/50-checkpoint-tuning.conf
	if [ "$CPA_DRY_RUN" = 1 ] && ! cpa_cluster_exists; then
		cpa_changed "write $dropin:"
		content=$(render_tuning) || exit "$?"
		printf '%s\n' "$content" | grep -E '^[a-z_]+ = ' | sed 's/^/      /'
		return 0
	fi
	ensure_include_dir && changed=1
	[ "$CPA_DRY_RUN" = 1 ] || install -d -m 0755 -o postgres -g postgres "$CPA_PG_CONF_DIR/conf.d"
	content=$(render_tuning) || exit "$?"
	if [ -f "$dropin" ]; then
		had=1
		# The x keeps trailing newlines, which $(...) would drop.
		previous=$(cat "$dropin" && printf x)
		previous=${previous%x}
	fi
	printf '%s\n' "$content" | cpa_install_content "$dropin" 0644 postgres postgres "tuning drop-in" || rc=$?
	if cpa_install_result "$rc"; then
		changed=1
	fi
	if [ "$changed" = 1 ] && [ "$CPA_DRY_RUN" != 1 ] && [ "$(cpa_cluster_status)" = online ]; then
		check_settings_files "$dropin" "$had" "$previous"
	fi
	cpa_settle_config "tuning" "$changed"
}

main "$@"
