#!/usr/bin/env bash
# The bash completion shipped in share/: subcommands, options, and the
# choices of options that take one.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source /usr/share/bash-completion/bash_completion
source "$here/share/runner.bash-completion"
complete_line() {
  COMP_LINE=$1
  COMP_POINT=${#COMP_LINE}
  read -r -a COMP_WORDS <<< "$COMP_LINE"
  [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _runner
  echo "${COMPREPLY[*]}"
}
expect() {
  local got
  got=$(complete_line "$1")
  if [ "$got" != "$2" ]; then
    echo "completing '$1': got '$got', expected '$2'" >&2
    exit 1
  fi
}
expect "runner st" "status"
expect "runner 10 2 --halt " "never soon,fail= now,fail="
expect "runner 10 2 --cap " "auto cgroup rlimit none"
expect "runner 10 2 --on " "local slurm"
expect "runner 10 2 --orphans " "wait kill"
expect "runner 10 2 --order " "history index"
expect "runner 10 2 --me" "--mem-limit --mem-budget --mem-overcommit --metrics"
expect "runner 10 2 --mem-o" "--mem-overcommit"
expect "runner report --c" "--csv"
expect "runner status --j" "--job --json"
# Every option of the run that --help lists completes (given the binary).
if [ -n "${1:-}" ]; then
  offered=" $(complete_line "runner 10 2 --") "
  for option in $("$1" --help | grep -o -- '^ *--[a-z-]*\|^ *-[a-z], --[a-z-]*' | grep -o -- '--[a-z-]*'); do
    case "$offered" in *" $option "*) ;; *) echo "--help lists $option; completion does not" >&2; exit 1 ;; esac
  done
fi
echo "completion: subcommands, options and choices complete"
