#!/bin/bash
# Logs on a network filesystem: N clusters that each print one line, at
# P = 2, with --log-format files and then stream, the logs in FOLDER (an
# sshfs mount, say) and the DB on the local scratch disk. Says each form's
# wall time, the files it left in FOLDER, and one cluster's log read back.
#
# usage: bench/logs-network.sh RUNNER FOLDER [N]
set -uo pipefail
runner=$(realpath "${1:?usage: bench/logs-network.sh RUNNER FOLDER [N]}")
folder=${2:?usage: bench/logs-network.sh RUNNER FOLDER [N]}
n=${3:-100000}
pick=$((n < 4242 ? n : 4242))  # the cluster whose log is read back
db=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
logs="$folder/runner-logs-network-$$"
trap 'rm -rf "$db" "$logs"' EXIT
echo "N = $n clusters of /bin/echo, P = 2, logs in $folder ($(stat -f -c %T "$folder")), DB in $db"
for form in files stream; do
  mkdir -p "$logs/$form"
  start=$(date +%s.%N)
  "$runner" "$n" 2 -q --log-format "$form" --db "$db/$form.db" --logs "$logs/$form" \
    --job j -- /bin/echo cluster=
  rc=$?
  end=$(date +%s.%N)
  files=$(find "$logs/$form" -type f | wc -l)
  back=$("$runner" log --db "$db/$form.db" --job j "$pick" 2>&1)
  awk -v f="$form" -v a="$start" -v b="$end" -v n="$n" -v files="$files" -v rc="$rc" -v back="$back" -v pick="$pick" \
    'BEGIN { printf "%s: %.1f s (%.2f ms a cluster), %d files left in the log folder, exit %d; runner log of %d: %s\n", f, b - a, (b - a) / n * 1000, files, rc, pick, back }'
done
