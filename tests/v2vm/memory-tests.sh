#!/bin/sh
# Runs inside the cgroup v2 guest (vm.sh run): runner's memory tests from each
# place users run runner from, then one line "N passed, N failed".
#
#   root       root, in the root cgroup
#   delegated  root, in a cgroup of its own (a unit with Delegate=yes, a scope,
#              a container's namespace root) that also holds the tests
#   user       an ordinary user (uid 1000), in a cgroup of the subtree systemd
#              delegates to each user: user@1000.service and all below it
#              belong to the user, with memory offered
#   none       the same user in a cgroup of root's (a login session's scope):
#              runner falls back to rlimit, and doctor names the fix
#
# usage: memory-tests.sh BUILD_DIR OUT_DIR [GTEST_FILTER]
set -u
build=$(cd "${1:?usage: memory-tests.sh BUILD_DIR OUT_DIR}" && pwd)
out=${2:?usage: memory-tests.sh BUILD_DIR OUT_DIR}
filter=${3:-Memory.*:MemoryV2.*}
cg=/sys/fs/cgroup
user=1000
passed=0
failed=0

# As systemd sets it up: memory for the children of each slice on the way.
echo +memory > $cg/cgroup.subtree_control
mkdir -p $cg/system.slice/runner-tests.service
echo +memory > $cg/system.slice/cgroup.subtree_control
users=$cg/user.slice/user-$user.slice
mkdir -p $users/session-1.scope $users/user@$user.service/app.slice/runner-tests.scope
echo +memory > $cg/user.slice/cgroup.subtree_control
echo +memory > $users/cgroup.subtree_control
echo +memory > $users/user@$user.service/cgroup.subtree_control
echo +memory > $users/user@$user.service/app.slice/cgroup.subtree_control
# The user's manager owns its subtree: the folder and the files that
# delegate it, and everything below that it made.
chown $user $users/user@$user.service $users/user@$user.service/cgroup.procs \
  $users/user@$user.service/cgroup.subtree_control $users/user@$user.service/cgroup.threads
chown -R $user $users/user@$user.service/app.slice

# Counts one placement's results from gtest's own summary lines, and fails
# it if a runner cgroup is left anywhere (the placements' own cgroups
# aside), or its cgroup is not as it was before (its shape, what it
# enables for its children, and no process left in it).
count() {
  name=$1 log=$2 before=$3 after=$4
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log")
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log")
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log")
  left=$(find $cg -mindepth 1 -type d -name 'runner-*' |
    grep -v -E '/runner-tests\.(service|scope)$' || true)
  if [ -n "$left" ]; then
    echo "$name: cgroups left behind: $left"
    f=$((${f:-0} + 1))
  fi
  if [ "$before" != "$after" ]; then
    echo "$name: its cgroup is not as it was: before [$before], after [$after]"
    f=$((${f:-0} + 1))
  fi
  if [ -z "$p$f" ]; then
    echo "$name: the tests did not finish"
    f=1
  fi
  echo "$name: ${p:-0} passed, ${f:-0} failed, ${s:-0} skipped"
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
}

# Runs the tests in cgroup $2 (relative to the root), as root or the user.
placement() {
  name=$1 cgroup=$2 as=$3 tests=$4
  log=$out/$name.log
  echo "== $name: in $cg$cgroup as $as"
  start=$(date +%s)
  before=$(shape "$cg$cgroup")
  drop=
  [ "$as" = root ] || drop="setpriv --reuid=$user --regid=$user --clear-groups"
  # The shell that starts the tests moves into the cgroup first, as a
  # unit's or a session's first process is.
  (cd /tmp && exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg$cgroup" \
    $drop env RUNNER_TEST_PLACEMENT=$name RUNNER_TEST_REQUIRE_CGROUP=1 HOME=/tmp TMPDIR=/tmp \
    "$build/tests/e2e_tests" --gtest_filter="$tests") > "$log" 2>&1
  grep -E '^\[  (FAILED|SKIPPED) ' "$log" | sort -u
  sed -n "s/^figures: /$name: /p" "$log"
  count "$name" "$log" "$before" "$(shape "$cg$cgroup")"
  echo "$name: $(($(date +%s) - start)) s"
}

# A cgroup as the placement's test sees it: its children, what it enables
# for them, and (but the root's, where this script runs) how many processes
# it holds.
shape() {
  procs=-
  [ "$1" = "$cg/" ] || procs=$(wc -l < "$1/cgroup.procs")
  echo "$(cd "$1" && find . -mindepth 1 -maxdepth 1 -type d | sort | tr '\n' ' ')|" \
    "$(cat "$1/cgroup.subtree_control")|$procs"
}

placement root / root "$filter"
placement delegated /system.slice/runner-tests.service root "$filter"
placement user /user.slice/user-$user.slice/user@$user.service/app.slice/runner-tests.scope \
  $user "$filter"
placement none /user.slice/user-$user.slice/session-1.scope $user \
  'Memory.RlimitCapsAndNamesALikelyOom:Memory.DoctorExplainsTheMachine:MemoryV2.Doctor*:MemoryV2.WithNoCgroupToHave*'

echo "cgroup v2 memory tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
