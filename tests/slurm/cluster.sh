#!/bin/bash
# A private 3-node Slurm on this machine, for runner's tests and benchmarks.
#
#   cluster.sh start DIR   starts munged, slurmctld and three slurmd (n1..n3)
#                          in one private PID namespace; writes DIR/env
#                          (SLURM_NODES=K: K nodes, n1..nK, for benchmarks)
#   cluster.sh stop DIR    kills the namespace (and everything it started)
#                          and removes DIR
#
# Everything is its own: a munge key and socket in DIR, non-default ports,
# state, spool and logs in DIR. Slurm's cgroup plugins are not used
# (proctrack/linuxproc, task/none): runner makes its own cgroups below its
# own, and the machine's cgroup root is not ours. Each node has 4 CPUs and
# 4000 MB (config_overrides: whatever the machine has).
set -euo pipefail

cmd=${1:?usage: cluster.sh start|stop DIR}
dir=${2:?usage: cluster.sh start|stop DIR}
nodes=${SLURM_NODES:-3}
[[ $nodes =~ ^[1-9][0-9]?$ ]] || { echo "cluster.sh: SLURM_NODES '$nodes' is not valid: expected 1 to 99" >&2; exit 2; }

stop() {
  if [ -f "$dir/namespace.pid" ]; then
    local pid
    pid=$(cat "$dir/namespace.pid")
    # The namespace's first process: killing it ends every process inside.
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  if [ -f "$dir/cgroup" ]; then
    local cg
    cg=$(cat "$dir/cgroup")
    # Gone once its last process is: runner's own folders below it first.
    for _ in $(seq 100); do
      find "$cg" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
      rmdir "$cg" 2>/dev/null && break
      sleep 0.05
    done
  fi
  rm -rf "$dir"
  # The node claims of workers that were killed (SIGKILL leaves them), as a
  # later worker of this user would remove them: only those no one holds.
  local claim
  for claim in /tmp/runner-claim-"$(id -u)"-*; do
    [ -f "$claim" ] && flock -n -s "$claim" rm -f "$claim"
  done
  return 0
}

# A memory cgroup of the cluster's own below this script's, where there is
# one: the nodes' workers make their cgroups in it, as on a real node, and
# never see the folders of runners outside the cluster.
make_cgroup() {
  local own
  own=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
  [ -n "$own" ] && [ -d "/sys/fs/cgroup/memory$own" ] || return 0
  local cg="/sys/fs/cgroup/memory${own%/}/runner-test-slurm-$$"
  mkdir "$cg" 2>/dev/null || return 0
  echo "$cg" > "$dir/cgroup"
}

# One line of slurm.conf per node, each with a port of its own.
node_lines() {
  local n
  for ((n = 1; n <= nodes; n++)); do
    echo "NodeName=n$n NodeHostname=$host NodeAddr=127.0.0.1 Port=$((base + n)) CPUs=4 RealMemory=4000 State=UNKNOWN"
  done
}

start() {
  for tool in munged slurmctld slurmd srun unshare; do
    command -v "$tool" >/dev/null || { echo "cluster.sh: $tool is not installed" >&2; exit 3; }
  done
  rm -rf "$dir"
  mkdir -p "$dir"/{state,spool,log,munge}
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/key"
  # slurmctld, then a port per node; all below the ephemeral ports (32768 on)
  local base=$((20000 + ($$ % 127) * 100))
  local host
  host=$(hostname)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=runnertest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$base
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
KillWait=5
InactiveLimit=0
DefMemPerCPU=500
$(node_lines)
PartitionName=test Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP
CONF
  cat > "$dir/env" <<ENV
export SLURM_CONF=$dir/slurm.conf
ENV
  export SLURM_CONF="$dir/slurm.conf"
  # The daemons live in a PID namespace of their own; its first process
  # waits for ever, and stopping the cluster kills it and with it the rest.
  make_cgroup
  (
    if [ -f "$dir/cgroup" ]; then echo "$BASHPID" > "$(cat "$dir/cgroup")/cgroup.procs"; fi
    # A mount namespace of its own too, for a /proc of the namespace's
    # processes (Slurm's linuxproc tracking reads it). unshare --mount-proc
    # would first make / private, which fails where / is no mount point (a
    # chroot): /proc alone is made private here, so that the new proc
    # mount stays in the namespace.
    exec setsid unshare --pid --fork --mount --propagation unchanged --kill-child bash -c '
    d=$1
    mount --make-rprivate /proc && mount -t proc proc /proc || exit 1
    munged -f --socket="$d/munge/socket" --key-file="$d/munge/key" --pid-file="$d/munge/pid" \
      --log-file="$d/log/munged.log" --seed-file="$d/munge/seed"
    slurmctld -f "$d/slurm.conf"
    for ((n = 1; n <= $2; n++)); do slurmd -f "$d/slurm.conf" -N "n$n"; done
    # As the namespace init, bash reaps whatever ends up orphaned in it.
    while :; do sleep 3600 & wait; done' cluster "$dir" "$nodes" </dev/null >"$dir/log/namespace.log" 2>&1
  ) &
  echo $! > "$dir/namespace.pid"
  # Ready when every node is idle: asked until 40 s have passed (each
  # sinfo bounded, as one can wait long for a slurmctld not yet up), which
  # leaves ctest's 60 s room to print the logs and stop what started.
  local deadline=$((SECONDS + 40))
  while ((SECONDS < deadline)); do
    if [ "$(timeout 5 sinfo -h -o '%t %D' 2>/dev/null | awk '$1 == "idle" {n += $2} END {print n + 0}')" = "$nodes" ]; then
      return 0
    fi
    if ! kill -0 "$(cat "$dir/namespace.pid")" 2>/dev/null; then
      echo "cluster.sh: the test Slurm's namespace ended at once:" >&2
      cat "$dir/log/namespace.log" >&2
      stop
      exit 1
    fi
    sleep 0.1
  done
  echo "cluster.sh: the test Slurm did not come up in 40 s; its logs:" >&2
  tail -n 20 "$dir"/log/*.log >&2 || true
  stop
  exit 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
