#!/bin/sh
# Run after the test suite: fails, naming them, if any process the tests
# started is still alive (a cluster, a worker, a runner, the test Slurm).
# usage: no_leftovers.sh BUILD_DIR
build=$(cd "${1:?usage: no_leftovers.sh BUILD_DIR}" && pwd)
left=$(ps -eo pid=,args= | grep -F -e "$build/" -e 'runner worker' -e 'runner-test-' | grep -v -e grep -e no_leftovers)
if [ -n "$left" ]; then
  echo "the tests left these processes running:" >&2
  echo "$left" >&2
  exit 1
fi
echo "no process of the tests is left"
