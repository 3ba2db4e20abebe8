#!/bin/sh
# Run after the test suite: fails, naming them, if any process the tests
# started is still alive (a cluster, a worker, a runner, the test Slurm, a
# test host's sshd), a network namespace of the test hosts or a node claim
# of the test Slurm's workers is left.
# usage: no_leftovers.sh BUILD_DIR
build=$(cd "${1:?usage: no_leftovers.sh BUILD_DIR}" && pwd)
rc=0
# shellcheck disable=SC2009 # every command line, read once for both checks
procs=$(ps -eo pid=,args= | grep -v -e grep -e no_leftovers)
# A test host's sshd (tests/ssh/hosts.sh) reads DIR/hK/sshd_config, wherever
# DIR is.
left=$({
  echo "$procs" | grep -F -e "$build/" -e 'runner worker' -e 'runner-test-'
  echo "$procs" | grep -E 'sshd.* -f [^ ]*/h[0-9]+/sshd_config'
} | sort -u)
if [ -n "$left" ]; then
  echo "the tests left these processes running:" >&2
  echo "$left" >&2
  rc=1
fi
netns=$(ip netns list 2>/dev/null | awk '$1 ~ /^runner-test-/ {print $1}')
if [ -n "$netns" ]; then
  echo "the tests left these network namespaces:" >&2
  echo "$netns" >&2
  rc=1
fi
# A worker's claim on a node of the test Slurm that no one holds any more.
for claim in /tmp/runner-claim-"$(id -u)"-*; do
  [ -f "$claim" ] || continue
  if flock -n -s "$claim" true; then
    echo "the tests left this node claim: $claim" >&2
    rc=1
  fi
done
[ "$rc" = 0 ] && echo "no process, namespace or claim of the tests is left"
exit "$rc"
