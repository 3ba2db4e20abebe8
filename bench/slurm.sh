#!/bin/bash
# Dispatch over Slurm: 10,000 clusters of /bin/true over the 3 nodes of the
# test cluster (tests/slurm/cluster.sh), P = 12, as runner --on slurm, as
# runner --on local for reference, and as GNU parallel -j 12 launching one
# srun step per task (what users do without runner). Whole-process wall
# times from /usr/bin/time; each run in a fresh folder, removed inside the
# timed command.
#
# usage: bench/slurm.sh RUNNER [ROUNDS]    (with SLURM_CONF naming the cluster)
set -uo pipefail
runner=$(realpath "${1:?usage: bench/slurm.sh RUNNER [ROUNDS]}")
rounds=${2:-3}
scratch=${TMPDIR:-/var/tmp}

one() {
  local d
  d=$(mktemp -d -p "$scratch") && cd "$d" || exit 1
  case "$1" in
    slurm) salloc -Q -N 3 --ntasks-per-node=4 "$runner" --on slurm 10000 12 --db "$d/r.db" -q -- /bin/true ;;
    local) "$runner" 10000 12 --db "$d/r.db" -q -- /bin/true ;;
    parallel-srun)
      seq 10000 | salloc -Q -N 3 --ntasks-per-node=4 parallel -j 12 srun -Q -N1 -n1 --exact /bin/true ;;
  esac
  local rc=$?
  cd / && rm -rf "$d"
  return $rc
}

for _ in $(seq "$rounds"); do
  for mode in slurm local; do
    /usr/bin/time -f "$mode %e s" bash -c "$(declare -f one); runner=$runner scratch=$scratch one $mode" 2>&1 | tail -1
  done
done
# One slow run is enough to see the ratio: about 5 minutes on 2 cores.
/usr/bin/time -f "parallel-srun %e s" bash -c "$(declare -f one); runner=$runner scratch=$scratch one parallel-srun" 2>&1 | tail -1
