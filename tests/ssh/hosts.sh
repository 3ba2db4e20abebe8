#!/bin/bash
# Test hosts for runner --on ssh: N machines on this one, each a network
# namespace with an address and an OpenSSH sshd of its own.
#
#   hosts.sh start DIR [N]     starts hosts h1..hN (3 by default); writes DIR/env
#                              and returns once every host answers over ssh
#   hosts.sh stop DIR          kills every process on the hosts and in the lab
#                              (whatever ssh sessions left behind too), deletes
#                              the namespaces and their links, removes DIR
#   hosts.sh cut DIR hK        takes hK off the network: connections to it hang
#                              as if the machine had dropped off
#   hosts.sh mend DIR hK       puts it back; returns once its sshd answers
#   hosts.sh run DIR hK CMD..  runs CMD on hK (its network, mount and UTS
#                              namespaces, in /): e.g. to read its /tmp
#   hosts.sh pids DIR hK       prints the pids of the processes on hK
#
# The network: a "lab" namespace holds a bridge (10.213.0.254/24); each host
# hK is a namespace joined to it by a veth pair, at 10.213.0.K. No address or
# link is ever made in the machine's own namespace, so only the lab reaches
# the hosts: the head stays where it is and ssh's from the lab through the
# wrapper DIR/ssh (runner --ssh DIR/ssh ...), which reads DIR/ssh_config:
# Host h1..hN, root, a key of DIR's own, known_hosts checked, BatchMode,
# ConnectTimeout 5, ServerAliveInterval 2 and ServerAliveCountMax 3, bound
# to the lab's address (that config used anywhere else fails at once).
# Nothing in the namespaces has a route out of them.
#
# Each host's sshd -D runs in a mount namespace of its own, where /tmp,
# /var/tmp, /dev/shm and /run are fresh tmpfs: the head's temporary folders
# are not there, while / (with /usr and /work: the same runner binary at the
# same path) is. Its hostname is hK. root's ~/.bashrc, which bash reads
# for each command ssh runs, is empty there.
#
# In DIR: env (RUNNER_TEST_SSH=DIR/ssh, RUNNER_TEST_HOSTS=h1,..,hN,
# RUNNER_TEST_HOSTS_DIR, RUNNER_TEST_HOSTS_SH: this script), ssh, ssh_config,
# known_hosts, id_ed25519 and authorized_keys; in DIR/hK, the host's
# sshd_config, ssh_host_ed25519_key, sshd.pid, sshd.log (sshd -E),
# namespace.log and ssh.err (start's last try). DIR cannot be in /tmp,
# /var/tmp, /dev/shm or /run, which the hosts have their own of.
#
# The namespaces are runner-test-<hash of DIR>-lab and -h1..-hN: the hosts of
# two build folders never meet. Needs root, ip (iproute2), sshd
# (openssh-server), ssh (openssh-client) and unshare and nsenter (util-linux).
set -euo pipefail

usage() {
  echo "usage: hosts.sh start DIR [N] | stop DIR | cut|mend|pids DIR hK | run DIR hK CMD..." >&2
  exit 2
}
cmd=${1:-}
[ -n "${2:-}" ] || usage
# Absolute and without symbolic links, whether DIR exists or not: the same
# DIR always gives the same namespaces.
dir=$(realpath -m -- "$2")
prefix=runner-test-$(printf '%s' "$dir" | sha256sum | cut -c1-8)
lab=$prefix-lab
net=10.213.0

# The namespaces of DIR's hosts and lab that exist.
namespaces() {
  ip netns list 2>/dev/null | awk -v p="$prefix-" 'index($1, p) == 1 {print $1}'
}

stop() {
  local names pids killed=() rc=0
  names=$(namespaces)
  # Everything in the namespaces: the sshd, its sessions, whatever they left
  # running (setsid or not), the lab's ssh clients. Asked again until none
  # is left, for what a dying session may still have started.
  local deadline=$((SECONDS + 20))
  while [ -n "$names" ]; do
    pids=$(for ns in $names; do ip netns pids "$ns" 2>/dev/null || true; done)
    [ -n "$pids" ] || break
    if ((SECONDS >= deadline)); then
      echo "hosts.sh: these processes on the test hosts would not end:" >&2
      # shellcheck disable=SC2086
      ps -o pid=,stat=,args= -p "$(echo $pids | tr ' ' ,)" >&2 || true
      rc=1
      break
    fi
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    # shellcheck disable=SC2206
    killed+=($pids)
    sleep 0.05
  done
  # Gone for good once reaped: orphans are by the machine's init, which may
  # take a second or two (until then ps shows them <defunct>).
  local pid
  deadline=$((SECONDS + 10))
  for pid in "${killed[@]}"; do
    while [ -e "/proc/$pid" ] && ((SECONDS < deadline)); do sleep 0.05; done
  done
  # The links go with their namespace; deleted first all the same, so that
  # none outlives a namespace something else still holds.
  local ns
  for ns in $names; do
    if [ "$ns" = "$lab" ]; then
      ip -n "$ns" link del br0 2>/dev/null || true
    else
      ip -n "$ns" link del eth0 2>/dev/null || true
    fi
    ip netns delete "$ns" || rc=1
  done
  # /run/netns, if start made it and no namespace is left in it.
  if [ -f "$dir/run-netns.made" ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
    umount /run/netns 2>/dev/null || true
    rmdir /run/netns 2>/dev/null || true
  fi
  rm -rf "$dir"
  return "$rc"
}

# The pid of hK's sshd, to enter its namespaces.
host_pid() {
  local pid
  pid=$(cat "$dir/$host/sshd.pid" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "hosts.sh: the sshd of $host in $dir is not running" >&2
    exit 1
  fi
  echo "$pid"
}

# Polls until "ssh hK true" succeeds for each host given, for at most
# $1 seconds; prints the failures of the last try.
wait_for_ssh() {
  local deadline=$((SECONDS + $1)) pending k still
  shift
  pending=("$@")
  while :; do
    still=()
    for k in "${pending[@]}"; do
      if [ -n "${sshd_pid[k]:-}" ] && ! kill -0 "${sshd_pid[k]}" 2>/dev/null; then
        echo "hosts.sh: the sshd of h$k ended:" >&2
        return 1
      fi
      "$dir/ssh" -o ConnectTimeout=2 "h$k" true </dev/null >"$dir/h$k/ssh.err" 2>&1 || still+=("$k")
    done
    ((${#still[@]})) || return 0
    pending=("${still[@]}")
    if ((SECONDS >= deadline)); then
      for k in "${pending[@]}"; do
        echo "hosts.sh: h$k does not answer over ssh: $(cat "$dir/h$k/ssh.err")" >&2
      done
      return 1
    fi
    sleep 0.1
  done
}

start() {
  local n=${1:-3}
  if ! [[ $n =~ ^[1-9][0-9]*$ ]] || ((n > 253)); then
    echo "hosts.sh: N is 1 to 253" >&2
    exit 2
  fi
  # The hosts read their keys and configs in DIR, and have their own /tmp,
  # /var/tmp, /dev/shm and /run.
  case "$dir/" in
    /tmp/* | /var/tmp/* | /dev/shm/* | /run/* | /var/run/*)
      echo "hosts.sh: DIR cannot be in /tmp, /var/tmp, /dev/shm or /run, which the hosts have their own of" >&2
      exit 2
      ;;
  esac
  local tool
  for tool in ip sshd ssh ssh-keygen unshare nsenter setsid; do
    command -v "$tool" >/dev/null || { echo "hosts.sh: $tool is not installed" >&2; exit 3; }
  done
  # sshd re-executes itself, and wants its absolute path for that.
  local sshd
  sshd=$(command -v sshd)
  stop # what an earlier start for DIR may have left
  trap 'rc=$?; if ((rc)); then stop || true; fi' EXIT
  mkdir -p "$dir"
  chmod 700 "$dir"
  [ -d /run/netns ] || : >"$dir/run-netns.made"

  # Keys: the client's, which every host authorizes, and one per host,
  # which known_hosts lists under the host's name and address.
  ssh-keygen -q -t ed25519 -N '' -C runner-test-client -f "$dir/id_ed25519"
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  : >"$dir/known_hosts"
  local k
  for k in $(seq "$n"); do
    mkdir "$dir/h$k"
    ssh-keygen -q -t ed25519 -N '' -C "h$k" -f "$dir/h$k/ssh_host_ed25519_key"
    echo "h$k,$net.$k $(cut -d' ' -f1,2 "$dir/h$k/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts"
    # StrictModes no: the key files' folders up to / are the build folder's,
    # whatever their modes. No PAM, no password: the key is the way in.
    cat >"$dir/h$k/sshd_config" <<CONF
# Test host h$k of $dir (tests/ssh/hosts.sh).
ListenAddress $net.$k
HostKey "$dir/h$k/ssh_host_ed25519_key"
PidFile "$dir/h$k/sshd.pid"
AuthorizedKeysFile "$dir/authorized_keys"
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitUserRC no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxStartups 100
MaxSessions 100
LogLevel VERBOSE
CONF
  done

  cat >"$dir/ssh_config" <<CONF
# The test hosts of $dir (tests/ssh/hosts.sh), reached from their lab
# through $dir/ssh.
$(for k in $(seq "$n"); do printf 'Host h%s\n  HostName %s\n' "$k" "$net.$k"; done)
Host *
  # From the lab's address: ssh run anywhere but in the lab fails at once,
  # rather than send the hosts' addresses out of the machine.
  BindAddress $net.254
  User root
  IdentityFile "$dir/id_ed25519"
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile "$dir/known_hosts"
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  CheckHostIP no
  BatchMode yes
  ConnectTimeout 5
  ServerAliveInterval 2
  ServerAliveCountMax 3
  ControlMaster no
  ControlPath none
  LogLevel ERROR
CONF
  cat >"$dir/ssh" <<SSH
#!/bin/bash
# ssh to the test hosts of $dir, from their lab's network namespace.
exec ip netns exec $(printf %q "$lab") ssh -F $(printf %q "$dir/ssh_config") "\$@"
SSH
  chmod 755 "$dir/ssh"
  cat >"$dir/env" <<ENV
export RUNNER_TEST_SSH=$(printf %q "$dir/ssh")
export RUNNER_TEST_HOSTS=$(seq -s, -f 'h%g' "$n")
export RUNNER_TEST_HOSTS_DIR=$(printf %q "$dir")
export RUNNER_TEST_HOSTS_SH=$(printf %q "$(realpath -- "$0")")
ENV

  # The lab: a bridge with an address of its own, for the head's ssh.
  ip netns add "$lab"
  ip -n "$lab" link set lo up
  ip -n "$lab" link add br0 type bridge
  ip -n "$lab" addr add "$net.254/24" dev br0
  ip -n "$lab" link set br0 up
  declare -ga sshd_pid=()
  local h mac
  for k in $(seq "$n"); do
    h=$prefix-h$k
    ip netns add "$h"
    ip -n "$h" link set lo up
    # Both ends are made in the lab and the host, never in the machine's
    # own namespace.
    ip -n "$lab" link add "v$k" type veth peer name eth0 netns "$h"
    ip -n "$lab" link set "v$k" master br0 up
    ip -n "$h" addr add "$net.$k/24" dev eth0
    ip -n "$h" link set eth0 up
    # The lab knows each host's hardware address for good: a host cut off
    # is sent packets that go nowhere, and connections to it hang (as across
    # a router) instead of failing at once when ARP gets no answer.
    mac=$(ip -n "$h" -br link show eth0 | awk '{print $3}')
    ip -n "$lab" neigh replace "$net.$k" lladdr "$mac" dev br0 nud permanent
    # The host's sshd, in a mount (and UTS) namespace of its own. Its copy
    # of /run/netns is let go first: it would keep every namespace there
    # (other build folders' too) alive after they are deleted.
    # shellcheck disable=SC2016
    setsid ip netns exec "$h" unshare --mount --uts --propagation private bash -c '
      set -e
      if mountpoint -q /run/netns; then umount -l /run/netns; fi
      for d in /tmp /var/tmp /dev/shm; do mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d"; done
      # sshd wants /run/sshd (its privilege separation folder), made here
      # rather than on the machine.
      mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
      mkdir -m 755 /run/sshd
      mkdir -m 1777 /run/lock
      # bash reads ~/.bashrc for each command run over ssh: the machine'"'"'s
      # may take its time (pyenv init, say), a host'"'"'s is empty.
      if [ -f ~root/.bashrc ]; then mount --bind /dev/null ~root/.bashrc; fi
      hostname "$1"
      exec "$2" -D -f "$3" -E "$4"' host "h$k" "$sshd" "$dir/h$k/sshd_config" "$dir/h$k/sshd.log" \
      </dev/null >"$dir/h$k/namespace.log" 2>&1 &
    sshd_pid[k]=$!
    disown # stop kills it; bash is not to tell
  done

  # Ready when every host answers: asked until 40 s have passed, which
  # leaves ctest's 60 s room to print the logs and stop what started.
  if ! wait_for_ssh 40 $(seq "$n"); then
    for k in $(seq "$n"); do
      echo "--- h$k:" >&2
      tail -n 20 "$dir/h$k/namespace.log" "$dir/h$k/sshd.log" >&2 2>/dev/null || true
    done
    exit 1
  fi
  trap - EXIT
}

host_arg() {
  host=${1:-}
  [[ $host =~ ^h[1-9][0-9]*$ ]] || usage
  namespaces | grep -xF "$prefix-$host" >/dev/null || {
    echo "hosts.sh: there is no $host in $dir" >&2
    exit 1
  }
}

case "$cmd" in
  start) [ $# -le 3 ] || usage; start "${3:-}" ;;
  stop) [ $# = 2 ] || usage; stop ;;
  cut)
    [ $# = 3 ] || usage
    host_arg "$3"
    ip -n "$prefix-$host" link set eth0 down
    ;;
  mend)
    [ $# = 3 ] || usage
    host_arg "$3"
    ip -n "$prefix-$host" link set eth0 up
    wait_for_ssh 20 "${host#h}"
    ;;
  run)
    [ $# -ge 4 ] || usage
    host_arg "$3"
    pid=$(host_pid)
    shift 3
    exec nsenter -t "$pid" -n -m -u -- "$@"
    ;;
  pids)
    [ $# = 3 ] || usage
    host_arg "$3"
    ip netns pids "$prefix-$host"
    ;;
  *) usage ;;
esac
