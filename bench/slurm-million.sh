#!/bin/bash
# Scale over Slurm: 1,000,000 clusters of /bin/true in one allocation of the
# test cluster (3 nodes of 4 CPUs), P = 12. Says how long it took, the head's
# peak RSS (/usr/bin/time), and how many job steps the run used (the id the
# next step of the allocation gets). About 15 minutes on 2 cores.
#
# usage: bench/slurm-million.sh RUNNER    (with SLURM_CONF naming the cluster)
set -uo pipefail
runner=$(realpath "${1:?usage: bench/slurm-million.sh RUNNER}")
d=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
trap 'rm -rf "$d"' EXIT
cd "$d" || exit 1
salloc -Q -N 3 --ntasks-per-node=4 bash -c "
  /usr/bin/time -f 'head: %e s wall, peak RSS %M KiB' '$runner' --on slurm 1000000 12 -q -- /bin/true
  echo \"runner exit \$?\"
  srun -Q -N1 -n1 --overlap bash -c 'echo \"job steps used by the run: \$SLURM_STEP_ID\"'"
sqlite3 "$d/runner.db" 'select done, failed from progress'
