#!/bin/bash
# Dispatch over SSH: N clusters of /bin/true over the 3 test hosts
# (tests/ssh/hosts.sh), P = 12 (4 a host), as runner --on ssh (one ssh
# connection per host for the whole run) and as GNU parallel --sshlogin
# (one ssh connection per task, what users do without runner). Whole-process
# wall times from /usr/bin/time; each run in a fresh folder of the build
# tree (which every test host sees), removed inside the timed command.
#
# usage: bench/ssh.sh RUNNER HOSTS_DIR [N] [ROUNDS]
set -uo pipefail
runner=$(realpath "${1:?usage: bench/ssh.sh RUNNER HOSTS_DIR [N] [ROUNDS]}")
hosts_dir=$(realpath -m "${2:?usage: bench/ssh.sh RUNNER HOSTS_DIR [N] [ROUNDS]}")
n=${3:-10000}
rounds=${4:-3}
here=$(cd "$(dirname "$0")/.." && pwd)

"$here/tests/ssh/hosts.sh" start "$hosts_dir" 3 >/dev/null || exit 1
trap '"$here/tests/ssh/hosts.sh" stop "$hosts_dir"' EXIT
scratch=$(dirname "$hosts_dir")

one() {
  local d
  d=$(mktemp -d -p "$scratch" bench-ssh-XXXXXX) && cd "$d" || exit 1
  case "$1" in
    runner-ssh)
      "$runner" "$n" 12 --on ssh --hosts 4/h1,4/h2,4/h3 --ssh "$hosts_dir/ssh" --db "$d/r.db" -q \
        -- /bin/true ;;
    parallel-ssh)
      seq "$n" | parallel --will-cite -j 4 --ssh "$hosts_dir/ssh" -S h1,h2,h3 /bin/true ;;
  esac
  local rc=$?
  cd / && rm -rf "$d"
  return $rc
}

for _ in $(seq "$rounds"); do
  for mode in runner-ssh parallel-ssh; do
    /usr/bin/time -f "$mode $n %e s" bash -c \
      "$(declare -f one); runner=$runner hosts_dir=$hosts_dir n=$n scratch=$scratch one $mode" 2>&1 |
      tail -1
  done
done
