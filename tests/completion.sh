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
expect "runner 10 2 --on " "local slurm ssh"
expect "runner lo" "log"
expect "runner log --s" "--ssh"
expect "runner 10 2 --orphans " "wait kill"
expect "runner 10 2 --order " "history index"
expect "runner 10 2 --log-format " "stream files"
expect "runner 10 2 --log-" "--log-format"
expect "runner 10 2 --me" "--mem-limit --mem-budget --mem-overcommit --metrics"
expect "runner 10 2 --mem-o" "--mem-overcommit"
expect "runner report --c" "--csv"
expect "runner status --j" "--job --json"
# Comma lists go on after the comma, with what is not chosen yet.
expect "runner 10 2 --retry-on " "exit signal timeout oom"
expect "runner 10 2 --retry-on exit," "exit,signal exit,timeout exit,oom"
expect "runner 10 2 --retry-on exit,signal,t" "exit,signal,timeout"
# The short forms too.
[[ " $(complete_line "runner 10 2 -") " == *" -q "*" -v "* ]] || { echo "-q and -v are not offered" >&2; exit 1; }
# Every option of the run that --help lists completes, and --job offers the
# jobs of the DB the line names (given the binary).
if [ -n "${1:-}" ]; then
  runner=$(realpath "$1")
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  (cd "$dir" && "$runner" 2 2 --job nightly -- true >/dev/null 2>&1 && "$runner" 2 2 --job weekly -- true >/dev/null 2>&1 &&
    "$runner" 2 2 --db other.db --job hourly -- true >/dev/null 2>&1)
  (cd "$dir" && expect "$runner status --job " "nightly weekly")
  (cd "$dir" && expect "$runner 10 2 --db other.db --job " "hourly")
  expect "$runner report --db $dir/runner.db --job w" "weekly"
  expect "$runner unlock --db=$dir/runner.db --job n" "nightly"
  expect "$runner status --db $dir/none.db --job " ""
  offered=" $(complete_line "runner 10 2 --") "
  for option in $("$1" --help | grep -o -- '^ *--[a-z-]*\|^ *-[a-z], --[a-z-]*' | grep -o -- '--[a-z-]*'); do
    case "$offered" in *" $option "*) ;; *) echo "--help lists $option; completion does not" >&2; exit 1 ;; esac
  done
fi
echo "completion: subcommands, options and choices complete"
