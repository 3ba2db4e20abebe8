#!/bin/bash
# The head as the allocation grows: the same job (NODES_N clusters of
# /bin/true, 4 at once per node) on allocations of 1, 4 and 16 nodes of the
# test Slurm (started with SLURM_NODES=16). Says, per allocation, the wall
# time, the head's own CPU per cluster and its peak RSS (bench/head-watch.sh:
# runner's process alone, not its srun launchers).
#
# usage: bench/slurm-nodes.sh RUNNER [N] [ROUNDS]   (with SLURM_CONF naming the cluster)
set -uo pipefail
runner=$(realpath "${1:?usage: bench/slurm-nodes.sh RUNNER [N] [ROUNDS]}")
n=${2:-20000}
rounds=${3:-2}
here=$(cd "$(dirname "$0")" && pwd)
d=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
trap 'rm -rf "$d"' EXIT
echo "N = $n clusters of /bin/true, P = 4 per node, $rounds round(s), allocations in turn"
for ((round = 1; round <= rounds; round++)); do
  for nodes in 1 4 16; do
    rm -rf "$d/run" && mkdir "$d/run" && cd "$d/run" || exit 1
    line=$(salloc -Q -N "$nodes" --ntasks-per-node=4 \
      "$here/head-watch.sh" "$n" "$runner" --on slurm "$n" $((4 * nodes)) -q -- /bin/true)
    done_n=$(sqlite3 runner.db 'select done from progress')
    printf 'round %d, %2d node(s), P = %3d: %s; %s done\n' "$round" "$nodes" $((4 * nodes)) "$line" "$done_n"
  done
done
