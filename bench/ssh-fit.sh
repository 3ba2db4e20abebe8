#!/bin/bash
# Large clusters that fit only one host: the 3 test hosts (tests/ssh/hosts.sh)
# held to real memory limits, h1 to 3 GiB and h2, h3 to 768 MiB (each host's
# sshd, and so every session and process on it, in a memory cgroup of its
# own below this script's; the machine has no swap, so a process over its
# host's limit is killed by the kernel). N clusters, P = 6 (2 a host); about
# one in four, spread unevenly (i with (7i + 3) mod 11 < 3: 13 of 48),
# allocates 1200 MiB, the rest 150 MiB, and each holds it 0.5 s.
#
#   runner, first night: no history; each cluster is capped at 1400 MiB
#     (--mem-limit) and reserves that cap, which only h1's budget takes.
#     The hosts' budgets are given in --hosts, as their limits: a test host
#     runs in a network namespace whose /sys is its own, without the cgroup
#     mounts, so its worker cannot read its cgroup's limit (a real host's
#     can, and --mem-budget auto takes it)
#   runner, second night: the same command as another job; the peaks of the
#     first tell the large clusters from the small ones
#   GNU parallel --sshlogin: spreads the tasks over the hosts as they free,
#     knowing nothing of memory; and the same with --retries 3. Its -j is
#     per host: -j 2 over the 3 hosts is P = 6, as runner has. Both are
#     given the small hosts first, as a list may come: GNU parallel fills
#     the first host with a free slot, runner the one where a cluster fits
#
# Whole-process wall times from /usr/bin/time, and the clusters that did
# not end well (runner: its log; parallel: its exit code, the tasks that
# failed). Each run in a fresh folder of the build tree, which every test
# host sees.
#
# usage: bench/ssh-fit.sh RUNNER CHILD HOSTS_DIR [N]
set -uo pipefail
usage="usage: bench/ssh-fit.sh RUNNER CHILD HOSTS_DIR [N]"
runner=$(realpath "${1:?$usage}")
child=$(realpath "${2:?$usage}")
hosts_dir=$(realpath -m "${3:?$usage}")
n=${4:-48}
here=$(cd "$(dirname "$0")/.." && pwd)
hosts="$here/tests/ssh/hosts.sh"

own=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
base="/sys/fs/cgroup/memory${own%/}/runner-bench-fit-$$"
if [ -z "$own" ] || ! mkdir "$base" 2>/dev/null; then
  echo "ssh-fit.sh: needs a cgroup v1 memory controller it can write below its own cgroup" >&2
  exit 3
fi
scratch=$(dirname "$hosts_dir")
work=$(mktemp -d -p "$scratch" bench-fit-XXXXXX)

finish() {
  "$hosts" stop "$hosts_dir" >/dev/null 2>&1
  local cg
  for cg in "$base"/h*; do
    [ -d "$cg" ] || continue
    for _ in $(seq 100); do rmdir "$cg" 2>/dev/null && break; sleep 0.05; done
  done
  rmdir "$base" 2>/dev/null
  rm -rf "$work"
}
trap finish EXIT
trap "exit 130" INT
trap "exit 143" TERM

"$hosts" start "$hosts_dir" 3 >/dev/null || exit 1
for h in h1 h2 h3; do
  mkdir "$base/$h"
  if [ "$h" = h1 ]; then limit=3G; else limit=768M; fi
  echo "$limit" > "$base/$h/memory.limit_in_bytes"
  for pid in $("$hosts" pids "$hosts_dir" "$h"); do echo "$pid" > "$base/$h/cgroup.procs"; done
done

# Cluster i (runner gives "i/N", parallel "i").
cat > "$work/work.sh" <<EOF
#!/bin/sh
i=\${1%%/*}
if [ \$(((i * 7 + 3) % 11)) -lt 3 ]; then mib=1200; else mib=150; fi
exec "$child" --alloc-mib "\$mib" --hold-ms 500
EOF
chmod +x "$work/work.sh"

run_runner() {
  local job=$1
  /usr/bin/time -f "runner $job %e s" "$runner" "$n" 6 --on ssh \
    --hosts "2/h2 768M,2/h3 768M,2/h1 3G" --ssh "$hosts_dir/ssh" --db "$work/r.db" \
    --mem-limit 1400M --job "$job" -q -- ./work.sh 2>&1 | tail -1
  echo "  not done: $(sqlite3 "$work/r.db" "SELECT count(*) FROM attempt a JOIN job j ON j.id = \
a.job_id WHERE j.name = '$job' AND a.state <> 'done'") attempt(s); large clusters by host: \
$(sqlite3 "$work/r.db" "SELECT group_concat(host || ' ' || c, ', ') FROM (SELECT host, count(*) c \
FROM attempt a JOIN job j ON j.id = a.job_id WHERE j.name = '$job' AND (a.cluster * 7 + 3) % 11 < 3 \
GROUP BY host)")"
}

run_parallel() {
  local retries=$1
  /usr/bin/time -f "parallel --retries $retries %e s" bash -c \
    "seq $n | parallel --will-cite -j 2 --retries $retries --ssh $hosts_dir/ssh \
       -S h2,h3,h1 --joblog $work/joblog.$retries 'cd $work && ./work.sh {}' >/dev/null 2>&1;
     echo \"  failed tasks: \$?\"" 2>&1 | tail -2
  # Where the large tasks ran, and how they ended (exit value, signal).
  awk -F'\t' 'NR > 1 { split($9, w, " "); if ((w[5] * 7 + 3) % 11 < 3) n[$2 " " $7 "/" $8]++ }
    END { printf "  large tasks by host and exit/signal:"; for (k in n) printf " %s %d;", k, n[k]; print "" }' \
    "$work/joblog.$retries"
}

cd "$work" || exit 1
if [ "${FIT_ONLY:-}" != parallel ]; then
  run_runner first-night
  run_runner second-night
fi
run_parallel 0
run_parallel 3
