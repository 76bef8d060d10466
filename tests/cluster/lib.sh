# shellcheck shell=bash
# Shared setup of the multinode tests (sourced). Brings up a namespace cluster of its own
# (name "cohortt", subnet 10.232.0.0/24, state in /var/tmp/cohortt-cluster: nothing shared with
# a cluster someone brought up by hand for a benchmark) and takes it down on any exit.
# Usage in a test: source lib.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
#   then: cluster_up N [CORES_PER_HOST]
# Exit 77 (skipped) where namespace hosts cannot be made (not root, no ip netns...) or cohort is
# not built with Open MPI.
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${COHORT_TEST_PYTHON:-/usr/bin/python3}
export COHORT_CLUSTER_NAME=cohortt COHORT_CLUSTER_NET=10.232.0
export COHORT_CLUSTER_DIR=/var/tmp/cohortt-cluster
# One multinode test at a time on this machine, whichever build tree runs it (ctest's RUN_SERIAL
# covers one tree only): they share the cluster's names. Nothing the cluster starts keeps the
# lock's fd (8>&- in cl), so a test killed outright leaves no holder behind.
exec 8>/var/tmp/cohortt-cluster.lock
flock -w 900 8 || { echo "FAIL: another multinode test holds /var/tmp/cohortt-cluster.lock"; exit 1; }
cl() { "$here/cluster.sh" "$@" 8>&-; }
# cluster.sh launches with Open MPI's mpirun and rsh agent; an MPICH build of cohort cannot join.
ldd "$cohort" | grep -q 'libmpi\.so\.40' || { echo "SKIP: cohort is not linked with Open MPI"; exit 77; }
# Work files live outside /tmp, where a cluster of real nodes would keep them (shared storage).
work=$(mktemp -d /var/tmp/cohort-multinode-XXXXXX)
cleanup() {
  local rc=$?
  trap - EXIT
  cl down >/dev/null 2>&1 || { echo "cluster down failed" >&2; rc=1; }
  if ((rc != 0 && rc != 77)) && [[ ${COHORT_TEST_KEEP:-0} != 1 ]]; then
    local f
    for f in "$work"/*.txt; do [[ -f $f ]] && { echo "==== tail of $f"; tail -n 15 "$f"; }; done
  fi
  [[ ${COHORT_TEST_KEEP:-0} == 1 ]] && echo "kept $work" || rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

cluster_up() {
  local rc=0
  cl up "$@" >"$work/cluster-up.txt" 2>&1 || rc=$?
  ((rc == 77)) && { cat "$work/cluster-up.txt"; exit 77; }
  ((rc == 0)) || { cat "$work/cluster-up.txt"; echo "FAIL: cluster up"; exit 1; }
  cat "$work/cluster-up.txt"
}

# Hosts on a 2-core machine share cores: the ranks are oversubscribed as in the single-node
# tests (--bind-to none: Open MPI would otherwise bind two ranks to one core and refuse).
# hmpirun RANKS_PER_HOST NHOSTS CMD...: CMD on NHOSTS hosts x RANKS_PER_HOST ranks.
hmpirun() {
  local r=$1 n=$2
  shift 2
  cl mpirun --bind-to none --host "$(cl hosts "$r" "$n")" -n $((r * n)) "$@"
}
# lmpirun NRANKS CMD...: the same on one host (the machine itself), as the other tests launch.
lmpirun() {
  local n=$1
  shift
  "$mpiexec" -n "$n" "${flags[@]}" "$@"
}

digits() { [[ -f $work/digits.h5 ]] || "$cohort" data csv "$src/examples/digits/digits.csv.gz" \
  "$work/digits.h5" --val-fraction 0.2 --seed 0 >/dev/null; echo "$work/digits.h5"; }
text() { [[ -f $work/text.h5 ]] || "$cohort" data text "$src/examples/shakespeare/input.txt.gz" \
  "$work/text.h5" --val-fraction 0.05 >/dev/null; echo "$work/text.h5"; }

# Tolerance of "equal to one host": the same number of ranks on one host sums gradients in
# the same order today (observed: bit-identical), but an allreduce that reduces inside a node
# first (several ranks per host) sums in another order: ~1e-7 relative per step, which AdamW
# keeps at ~1e-6 over these short runs (see tests/e2e/test_zero_ckpt.sh). 1e-4, floor 1e-3.
TOL=1e-4
same_run() { "$py" "$here/compare_runs.py" "$@"; } # RUN_A RUN_B STEP TOL

# wait_for SECONDS COMMAND...: poll every 0.1 s; false on timeout.
wait_for() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do "${@:2}" && return 0; sleep 0.1; done
  return 1
}
# rank_pids PATTERN: pids of cohort processes whose command line matches PATTERN, with ranks:
# prints "RANK PID" lines (Open MPI and Slurm rank variables).
rank_pids() {
  local pid r
  for pid in $(pgrep -f "$1" || true); do
    r=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
      sed -n 's/^\(OMPI_COMM_WORLD_RANK\|PMIX_RANK\|SLURM_PROCID\)=//p' | head -n1)
    [[ -n $r && $(cat "/proc/$pid/comm" 2>/dev/null) == cohort ]] && echo "$r $pid"
  done | sort -n
}
