#!/bin/bash
# t6001-ansible-defaults: the Ansible roles cannot drift from provision/.
#
# The mapping (documented in ansible/README.md): every KEY of
# provision/defaults.env is the role variable lower(KEY) (CPA_PG_PORT ->
# cpa_pg_port) in each role's defaults/main.yml that uses it; the
# space-separated lists CPA_SETS and CPA_ALLOWED_CIDRS are YAML lists there.
# Also checked: the placeholders of the shared templates are all given by
# the roles, tune-values.sh prints every tuning placeholder, and the lint
# (ansible-lint with the production profile, yamllint) and a syntax check
# pass.

# shellcheck source=tests/lib/test-lib.sh
. "$(dirname "$0")/lib/test-lib.sh"

ANSIBLE_DIR=$TL_ROOT/ansible
DEFAULTS_ENV=$TL_ROOT/provision/defaults.env
TEMPLATES=$TL_ROOT/provision/templates

# role_defaults_as_env: "role KEY=value" for every cpa_* variable of every
# role's defaults/main.yml, lists joined with spaces (defaults.env's form).
role_defaults_as_env() {
	python3 - "$ANSIBLE_DIR/roles" <<-'EOF'
		import os, sys, yaml
		roles = sys.argv[1]
		for role in sorted(os.listdir(roles)):
		    path = os.path.join(roles, role, "defaults", "main.yml")
		    if not os.path.isfile(path):
		        continue
		    with open(path) as f:
		        data = yaml.safe_load(f) or {}
		    for name, value in sorted(data.items()):
		        if not name.startswith("cpa_"):
		            continue
		        if isinstance(value, list):
		            value = " ".join(str(v) for v in value)
		        elif value is None:
		            value = ""
		        print("%s %s=%s" % (role, name.upper(), value))
	EOF
}

# env_defaults: "KEY=value" lines of defaults.env.
env_defaults() {
	grep -E '^CPA_[A-Z0-9_]+=' "$DEFAULTS_ENV"
}

# placeholders FILE: the {{ name }} placeholders of a shared template.
placeholders() {
	grep -o '{{ *[a-z_][a-z0-9_]* *}}' "$1" | tr -d '{} ' | sort -u
}

test_01_every_shared_default_is_a_role_default() {
	local line key missing=""
	while IFS= read -r line; do
		key=${line%%=*}
		if ! role_defaults_as_env | grep -q " $key="; then
			missing+=" $key"
		fi
	done < <(env_defaults)
	assertEquals "defaults.env keys that no role declares (as lower-case variables)" "" "$missing"
}

test_02_role_defaults_equal_defaults_env() {
	local role pair key value expected differ=""
	while read -r role pair; do
		key=${pair%%=*}
		value=${pair#*=}
		if ! grep -q "^$key=" "$DEFAULTS_ENV"; then
			differ+=" $role:$key(not in defaults.env)"
			continue
		fi
		expected=$(sed -n "s/^$key=//p" "$DEFAULTS_ENV" | head -n 1)
		[ "$value" = "$expected" ] || differ+=" $role:$key='$value'(defaults.env:'$expected')"
	done < <(role_defaults_as_env)
	assertEquals "role defaults that differ from provision/defaults.env" "" "$differ"
}

test_03_role_defaults_are_documented() {
	local role var undocumented=""
	for role in "$ANSIBLE_DIR"/roles/*/; do
		[ -f "$role/README.md" ] || { undocumented+=" $(basename "$role")/README.md"; continue; }
		for var in $(python3 -c 'import sys, yaml; print(" ".join(yaml.safe_load(open(sys.argv[1])) or {}))' \
			"$role/defaults/main.yml"); do
			grep -q "\`$var\`" "$role/README.md" || undocumented+=" $(basename "$role"):$var"
		done
	done
	assertEquals "role variables missing from the roles' README.md" "" "$undocumented"
}

test_04_tune_values_prints_every_tuning_placeholder() {
	local out p missing=""
	out=$("$TL_ROOT/provision/tune-values.sh" --mem-kb 4194304 --cores 2 --pool-size 20 --instances 1)
	assertEquals "tune-values.sh exit code" 0 $?
	for p in $(placeholders "$TEMPLATES/postgresql-tuning.conf.j2"); do
		grep -q "^$p=" <<<"$out" || missing+=" $p"
	done
	assertEquals "tuning placeholders tune-values.sh does not print" "" "$missing"
}

test_05_roles_give_every_placeholder_of_the_shared_templates() {
	local t p file missing=""
	for t in postgresql-tuning.conf.j2:postgresql/tasks/tuning.yml \
		agent.conf.j2:checkpoint_agent/tasks/main.yml \
		app.env.j2:checkpoint_database/tasks/main.yml \
		app-remote.env.j2:checkpoint_database/tasks/main.yml \
		checkpoint-autovacuum.sql.j2:checkpoint_agent/tasks/autovacuum.yml \
		pgbackrest.conf.j2:checkpoint_backup/tasks/main.yml \
		postgresql-archive.conf.j2:checkpoint_backup/tasks/main.yml; do
		file=$ANSIBLE_DIR/roles/${t#*:}
		grep -q "provision/templates/${t%%:*}" "$file" || missing+=" ${t%%:*}(not used by ${t#*:})"
		for p in $(placeholders "$TEMPLATES/${t%%:*}"); do
			# a role default, or a variable the task sets
			grep -Eq "^$p:" "$(dirname "$(dirname "$file")")/defaults/main.yml" ||
				grep -Eq "^ +$p:" "$file" || missing+=" ${t%%:*}:$p"
		done
	done
	assertEquals "template placeholders the roles do not give" "" "$missing"
}

test_06_ansible_lint_production_profile_passes() {
	local out rc
	out=$(cd "$TL_ROOT" && ansible-lint --nocolor -c ansible/.ansible-lint ansible/ 2>&1)
	rc=$?
	assertEquals "ansible-lint exit code; output: $out" 0 "$rc"
	assertContains "ansible-lint ran the production profile" "$out" "production profile"
}

test_07_yamllint_passes() {
	local out
	out=$(cd "$TL_ROOT" && yamllint -s -c ansible/.yamllint ansible/ 2>&1)
	assertEquals "yamllint exit code; output: $out" 0 $?
}

test_08_playbook_syntax_is_valid() {
	local out
	out=$(cd "$ANSIBLE_DIR" && ANSIBLE_NOCOLOR=1 ansible-playbook -i inventory.example.yml --syntax-check site.yml 2>&1)
	assertEquals "ansible-playbook --syntax-check; output: $out" 0 $?
}

test_09_every_secret_task_has_no_log() {
	local missing
	missing=$(python3 - "$ANSIBLE_DIR/roles" <<-'EOF'
		import os, re, sys, yaml
		secret = re.compile(r"password|credentials|verifier")
		def tasks(items):
		    for t in items or []:
		        for key in ("block", "rescue", "always"):
		            if key in t:
		                yield from tasks(t[key])
		        yield t
		for root, _, files in os.walk(sys.argv[1]):
		    if not root.endswith(("tasks", "handlers")):
		        continue
		    for f in files:
		        path = os.path.join(root, f)
		        for t in tasks(yaml.safe_load(open(path))):
		            body = {k: v for k, v in t.items() if k not in ("name", "block", "rescue", "always")}
		            if secret.search(yaml.safe_dump(body)) and not t.get("no_log"):
		                # reading a file's metadata or naming a path is not a secret
		                mods = [k for k in body if "." in k]
		                if mods and mods[0].split(".")[-1] in ("stat", "file"):
		                    continue
		                print("%s: %s" % (os.path.relpath(path, sys.argv[1]), t.get("name")))
	EOF
	)
	assertEquals "tasks that touch a password without no_log" "" "$missing"
}

# shell_checksum_sql: the SQL of provision/lib/datadir.sh's cpa_table_checksums
# (its here-document, with the leading tabs <<- strips).
shell_checksum_sql() {
	awk '/^cpa_table_checksums\(\)/ { f = 1 }
		f && /<<-\x27EOF\x27/ { g = 1; next }
		g && /^\t*EOF$/ { exit }
		g { sub(/^\t+/, ""); print }' "$TL_ROOT/provision/lib/datadir.sh"
}

test_10_role_checksum_sql_is_the_shell_one() {
	local shell_sql
	shell_sql=$(shell_checksum_sql)
	assertContains "the checksum query was found in provision/lib/datadir.sh" "$shell_sql" "\\gexec"
	assertEquals "ansible/roles/postgresql/files/table-checksums.sql differs from cpa_table_checksums' SQL" \
		"$shell_sql" "$(cat "$ANSIBLE_DIR/roles/postgresql/files/table-checksums.sql")"
	assertEquals "table-checksums.sql is byte-identical (trailing newline included)" \
		"$(shell_checksum_sql | md5sum)" "$(md5sum <"$ANSIBLE_DIR/roles/postgresql/files/table-checksums.sql")"
}

tl_run
