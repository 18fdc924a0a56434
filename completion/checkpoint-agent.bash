# bash completion for checkpoint-agent(8). Installed by `make install` as
# $(PREFIX)/share/bash-completion/completions/checkpoint-agent, where
# bash-completion finds it on first use. Needs nothing from bash-completion
# itself. tests/t0003-install.sh checks that the command and check names
# here are the agent's own.

_checkpoint_agent_commands="migrate status verify rollback check prune usage run help"
_checkpoint_agent_checks="connect query writable schema pool_headroom idle_in_transaction long_transactions lock_waits disk size bloat wraparound wal backup replication"
_checkpoint_agent_sets="langgraph langgraph-store agentos"

# _checkpoint_agent_options COMMAND: the options of COMMAND, and after it the
# common ones (after check, -c is the critical threshold: --config only).
_checkpoint_agent_options() {
	local common="--config --verbose --help"
	case "$1" in
	migrate) echo "--set --to --dry-run $common" ;;
	status) echo "--json --exit-code $common" ;;
	verify) echo "$common" ;;
	rollback) echo "--to --set --dry-run --purge $common" ;;
	check) echo "--format --only --skip --warning --critical -w -c $common" ;;
	prune) echo "--strategy --older-than --thread --batch --max-duration --lock-timeout --dry-run $common" ;;
	usage) echo "--json --top $common" ;;
	run) echo "--cycles --interval-ms $common" ;;
	help) echo "" ;;
	"") echo "--config --verbose --help --version -c -v -h -V" ;;
	esac
}

# _checkpoint_agent_list WORDS: complete the last item of a comma-separated list.
_checkpoint_agent_list() {
	local cur=$1 words=$2 head="" item
	if [[ "$cur" == *,* ]]; then
		head=${cur%,*},
	fi
	item=${cur##*,}
	mapfile -t COMPREPLY < <(compgen -W "$words" -P "$head" -- "$item")
	compopt -o nospace 2>/dev/null
}

_checkpoint_agent() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} cmd="" i
	COMPREPLY=()
	# The command is the first word that is neither an option nor -c's file.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		-c | --config) ((i++)) ;;
		-*) ;;
		*)
			cmd=${COMP_WORDS[i]}
			break
			;;
		esac
	done
	# Values of the option just typed.
	case "$cmd:$prev" in
	*:--config | :-c | migrate:-c | status:-c | verify:-c | rollback:-c | prune:-c | usage:-c | run:-c)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	help:help)
		mapfile -t COMPREPLY < <(compgen -W "${_checkpoint_agent_commands% help}" -- "$cur")
		return
		;;
	check:--format | check:-f)
		mapfile -t COMPREPLY < <(compgen -W "text json prometheus" -- "$cur")
		return
		;;
	check:--only | check:--skip)
		_checkpoint_agent_list "$cur" "$_checkpoint_agent_checks"
		return
		;;
	prune:--strategy)
		mapfile -t COMPREPLY < <(compgen -W "delete keep-latest" -- "$cur")
		return
		;;
	migrate:--set | rollback:--set)
		mapfile -t COMPREPLY < <(compgen -W "$_checkpoint_agent_sets" -- "$cur")
		return
		;;
	*:--to | *:--cycles | *:--interval-ms | prune:--older-than | prune:--thread | prune:--batch | prune:--max-duration | \
		prune:--lock-timeout | usage:--top | check:-w | check:-c | check:--warning | check:--critical)
		return
		;;
	esac
	if [ -z "$cmd" ] && [[ "$cur" != -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$_checkpoint_agent_commands" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -W "$(_checkpoint_agent_options "$cmd")" -- "$cur")
	fi
}

complete -F _checkpoint_agent checkpoint-agent
