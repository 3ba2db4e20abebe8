#!/bin/bash
# The head's ceiling (make bench-head): bench-head's runs side by side, the
# log on the scratch disk where it runs (ext4 here) unless HEAD_DB_DIR says
# otherwise. Each line: N, P, sites, how long each attempt lasted, clusters
# per second, the head's own CPU per cluster and its peak RSS.
#
# usage: bench/head.sh BENCH_HEAD
set -uo pipefail
bench=$(realpath "${1:?usage: bench/head.sh BENCH_HEAD}")
export TMPDIR=${HEAD_DB_DIR:-${TMPDIR:-/var/tmp}}
echo "log on $(stat -f -c %T "$TMPDIR") ($TMPDIR)"
echo "1. the loop alone: the engine in runner's process answers at once"
for n in 100000 1000000; do
  for p in 12 100 1000 10000; do "$bench" "$n" "$p"; done
done
echo "2. through the wire: 4 null workers answer each start with its end at once"
for n in 100000 1000000; do
  for p in 12 100 1000 10000; do "$bench" "$n" "$p" --sites 4; done
done
echo "3. as sites are added: P = 1024 over 1 to 256 null workers"
for k in 1 4 16 64 256; do "$bench" 100000 1024 --sites "$k"; done
echo "4. paced: each attempt lasts L ms, so P / L clusters a second are offered"
"$bench" 20000 12 --sites 4 --lasts 10
"$bench" 100000 100 --sites 4 --lasts 10
"$bench" 100000 1000 --sites 4 --lasts 50
"$bench" 200000 10000 --sites 16 --lasts 250
echo "5. the progress output: plain (a line a second) against silent"
"$bench" 100000 100 --sites 4 --progress plain
"$bench" 100000 100 --sites 4 --progress silent
