#!/usr/bin/env bash
# A run.dir that is not shared between hosts: each host sees its own empty tmpfs at the same
# path (COHORT_CLUSTER_PRIVATE_DIR: the rsh agent starts each host's ranks in a private mount
# namespace), as a node-local /scratch would. The start-up check must stop the job quickly
# (within 60 s, far under the 300 s collective watchdog that used to fire at the first
# checkpoint) with a non-zero exit and a message that names a host other than rank 0's and the
# path; the same for run.checkpoint.dir alone.
# Usage: test_rundir.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
source "$(dirname "$0")/lib.sh"
cluster_up 3

# unshared NAME PRIVATE_DIR OVERRIDES...: runs the job, checks exit, time and message.
unshared() {
  local name=$1 priv=$2 path=$3 rc=0 t0 took
  shift 3
  mkdir -p "$priv"
  t0=$(date +%s)
  COHORT_CLUSTER_PRIVATE_DIR=$priv timeout 65 "$here/cluster.sh" mpirun --bind-to none 8>&- \
    --host "$(cl hosts 1 3)" -n 3 "$cohort" train "$src/configs/mlp-digits.yaml" \
    data.path="$(digits)" train.steps=100 run.checkpoint.every=50 "$@" >"$work/$name.txt" 2>&1 || rc=$?
  took=$(($(date +%s) - t0))
  echo "$name: exit $rc after ${took} s"
  grep -E "error|not shared" "$work/$name.txt" | head -n 3
  ((rc != 0 && rc != 124)) || { echo "FAIL: $name: exit $rc (124: timed out)"; exit 1; }
  ((took <= 60)) || { echo "FAIL: $name: took ${took} s"; exit 1; }
  grep -E "cohortt-h[23]" "$work/$name.txt" | grep -qF "$path" ||
    { echo "FAIL: $name: no message naming host cohortt-h2/h3 and $path"; cat "$work/$name.txt"; exit 1; }
}
unshared rundir "$work/node-local" "$work/node-local/run" run.dir="$work/node-local/run"
unshared ckptdir "$work/node-ck" "$work/node-ck/ck" run.dir="$work/shared-run" \
  run.checkpoint.dir="$work/node-ck/ck"
echo "PASS: a run.dir or checkpoint dir that hosts do not share stops the job at start, naming host and path"
