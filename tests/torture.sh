#!/bin/sh
# The crash test at length, under load: each kind of cut (runner killed, its
# worker killed, both, runner stopped then killed) many times, while two
# busy loops keep the machine's CPUs taken, as a loaded CI machine is.
# Prints each kind's figures; fails if any cut lost or redid what it must not.
#   tests/torture.sh BUILD_DIR [CUTS]
set -u
build=$(cd "${1:?usage: torture.sh BUILD_DIR [CUTS]}" && pwd)
cuts=${2:-400}
load=""
for _ in 1 2; do
  nice -n 10 sh -c 'while :; do :; done' &
  load="$load $!"
done
trap 'kill $load 2>/dev/null' EXIT INT TERM
start=$(date +%s)
RUNNER_TORTURE_CUTS=$cuts "$build/tests/e2e_tests" --gtest_filter='Crash.*' > "$build/torture.log" 2>&1
code=$?
grep -E '^cuts of|FAILED|Failure' "$build/torture.log"
echo "torture: $cuts cuts of each kind under load, $(($(date +%s) - start)) s, exit $code"
exit $code
