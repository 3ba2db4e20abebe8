#!/bin/bash
# The test hosts that tests/ssh/hosts.sh started in DIR are what runner's
# ssh tests take them for: separate machines, each with an address and a
# /tmp of its own, the same / as the head, and a network that can be cut
# and mended.
#   tests/ssh/smoke.sh DIR
set -euo pipefail

dir=${1:?usage: smoke.sh DIR}
hosts_sh=$(dirname "$(realpath "$0")")/hosts.sh
# shellcheck source=/dev/null
. "$dir/env"
ssh=$RUNNER_TEST_SSH
IFS=, read -r -a hosts <<<"$RUNNER_TEST_HOSTS"
((${#hosts[@]} >= 2)) || { echo "smoke.sh: needs 2 hosts or more, not $RUNNER_TEST_HOSTS" >&2; exit 1; }

checks=0
fail() {
  echo "smoke.sh: FAILED: $*" >&2
  exit 1
}
ok() {
  checks=$((checks + 1))
  echo "ok: $*"
}

# Microseconds since the epoch.
now() { echo "${EPOCHREALTIME/./}"; }
# Seconds (one decimal) since $1.
since() {
  local us=$(($(now) - $1))
  echo "$((us / 1000000)).$((us / 100000 % 10))"
}

scratch=$(mktemp -d -t runner-test-ssh-smoke-XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# Each host answers, with its name and an address of its own, the one
# ssh_config gives it.
declare -A seen=()
for h in "${hosts[@]}"; do
  name=$("$ssh" "$h" hostname) || fail "ssh $h hostname failed"
  [ "$name" = "$h" ] || fail "$h calls itself $name"
  addrs=$("$ssh" "$h" ip -4 -o addr show scope global | awk '{print $4}') || fail "ssh $h ip -4 addr failed"
  [ "$(wc -l <<<"$addrs")" = 1 ] || fail "$h has not one address but: $addrs"
  addr=${addrs%/*}
  want=$("$ssh" -G "$h" | awk '$1 == "hostname" {print $2}')
  [ "$addr" = "$want" ] || fail "$h is at $addr, ssh_config says $want"
  [ -z "${seen[$addr]:-}" ] || fail "$h and ${seen[$addr]} share $addr"
  seen[$addr]=$h
done
ok "each of ${hosts[*]} answers over ssh with its name and an address of its own (${!seen[*]})"

# Its sshd is among the processes hosts.sh pids lists for it.
pid=$(cat "$dir/h1/sshd.pid")
"$hosts_sh" pids "$dir" h1 | grep -x "$pid" >/dev/null || fail "hosts.sh pids does not list h1's sshd ($pid)"
ok "hosts.sh pids lists h1's sshd"

# The head's temporary folders are not on the hosts; the rest of / is.
# (test's status 1 is "no such file"; ssh's own failures are 255.)
for tmp in /tmp /var/tmp /dev/shm; do
  f=$(mktemp -p "$tmp" runner-test-ssh-smoke-XXXXXX)
  rc=0
  "$ssh" h1 test -e "$f" || rc=$?
  rm -f "$f"
  [ "$rc" = 1 ] || fail "ssh h1 test -e $f (made on the head) gave $rc, not 1 (absent)"
done
"$ssh" h1 test -x "$hosts_sh" || fail "h1 does not see $hosts_sh"
"$ssh" h1 test -f "$dir/env" || fail "h1 does not see $dir/env"
ok "what the head makes in /tmp, /var/tmp and /dev/shm is not on h1; its source and build folders are"

# What is made in h1's /tmp is on h1 only.
mark=/tmp/runner-test-ssh-smoke-$$
"$hosts_sh" run "$dir" h1 sh -c "echo on-h1 > $mark"
[ "$("$ssh" h1 cat "$mark")" = on-h1 ] || fail "h1 does not show over ssh the $mark that hosts.sh run wrote"
rc=0
"$ssh" h2 test -e "$mark" || rc=$?
[ "$rc" = 1 ] || fail "ssh h2 test -e $mark (made on h1) gave $rc, not 1 (absent)"
[ ! -e "$mark" ] || fail "the head sees $mark, made on h1"
"$hosts_sh" run "$dir" h1 rm "$mark"
ok "a file hosts.sh run makes in h1's /tmp is on h1, over ssh, and not on h2 or the head"

# cut: h2 is gone as a machine that dropped off the network is. A session
# that was open hangs until ServerAlive gives up on it (2 s x 3), a new
# connection until ConnectTimeout (5 s); h1 is not affected. The head's ssh
# is bounded by timeout, should neither give up.
coproc session { exec timeout 60 "$ssh" h2 'echo up; exec sleep 45'; }
read -r -t 20 line <&"${session[0]}" || fail "no session on h2"
[ "$line" = up ] || fail "the session on h2 said $line"
# shellcheck disable=SC2154 # set by coproc
session_pid=$session_PID
"$hosts_sh" cut "$dir" h2
cut_at=$(now)
rc=0
timeout 60 "$ssh" h2 true 2>"$scratch/connect.err" || rc=$?
took=$(since "$cut_at")
[ "$rc" = 255 ] || fail "ssh h2 true gave $rc, not ssh's 255, once h2 was cut off: $(cat "$scratch/connect.err")"
grep -q 'timed out' "$scratch/connect.err" || fail "ssh h2 did not time out, it said: $(cat "$scratch/connect.err")"
((${took%.*} >= 4 && ${took%.*} < 15)) || fail "ssh h2 gave up after ${took}s, not about 5 (ConnectTimeout)"
ok "ssh h2 times out after ${took}s once h2 is cut off"
"$ssh" h1 true || fail "ssh h1 failed while h2 was cut off"
ok "h1 still answers while h2 is cut off"
rc=0
wait "$session_pid" || rc=$?
took=$(since "$cut_at")
[ "$rc" = 255 ] || fail "the session open on h2 ended with $rc, not ssh's 255, once h2 was cut off"
((${took%.*} < 15)) || fail "the session open on h2 ended after ${took}s, not within about 6 (ServerAlive)"
ok "the session open on h2 ends after ${took}s once h2 is cut off"
# What that session ran goes on, on h2, as it would on a real machine.
ps -o args= -p "$("$hosts_sh" pids "$dir" h2 | paste -sd,)" | grep -x 'sleep 45' >/dev/null ||
  fail "the session's sleep no longer runs on h2"
ok "what the session ran on h2 is still running there"

# mend: h2 answers again (hosts.sh mend returns once it does).
"$hosts_sh" mend "$dir" h2
[ "$("$ssh" h2 hostname)" = h2 ] || fail "ssh h2 failed after hosts.sh mend"
ok "h2 answers again once mended"

echo "smoke.sh: all $checks checks passed"
