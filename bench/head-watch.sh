#!/bin/bash
# Runs a command and says what its own process (not its children) cost:
# CPU (user + system) and peak RSS, read from /proc while it runs.
#
# usage: bench/head-watch.sh N COMMAND...   (N: clusters, for CPU per cluster)
# prints: "<seconds> s, <us> us head CPU per cluster, head peak RSS <KiB> KiB, exit <code>"
set -uo pipefail
n=${1:?usage: bench/head-watch.sh N COMMAND...}
shift
start=$(date +%s.%N)
"$@" &
pid=$!
stat="" hwm=0
# The last look before it ends misses at most one interval (10 ms) of CPU.
while [ -r "/proc/$pid/stat" ]; do
  s=$(cat "/proc/$pid/stat" 2>/dev/null) || break
  h=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  [ -n "$h" ] || break
  stat=$s hwm=$h
  sleep 0.01
done
wait "$pid"
rc=$?
end=$(date +%s.%N)
# Fields 14 and 15 (utime, stime) after the command name, which may hold spaces.
read -r utime stime < <(echo "${stat##*) }" | awk '{print $12, $13}')
awk -v n="$n" -v t="$(getconf CLK_TCK)" -v u="$utime" -v s="$stime" -v h="$hwm" -v a="$start" \
  -v b="$end" -v rc="$rc" 'BEGIN {
    printf "%.1f s, %.0f us head CPU per cluster, head peak RSS %d KiB, exit %d\n",
      b - a, (u + s) / t / n * 1e6, h, rc }'
exit "$rc"
