#!/usr/bin/env bash
# Allreduce bandwidth: cohort's comm layer vs raw MPI_Allreduce, same run, same buffers.
#
#   bench/allreduce.sh [BUILD_DIR] [-- extra args for bench/allreduce]   (default BUILD_DIR: build)
#   RANKS="2 4" bench/allreduce.sh build -- --max 64M --stat best
#
# Runs bench/allreduce under the MPI launcher the build found (MPIEXEC_EXECUTABLE in
# CMakeCache.txt, else mpirun) for each rank count in RANKS (default "2 4"). A rank count above
# the number of cores is run oversubscribed and marked so: its numbers measure time-sharing of
# cores as much as communication. Exits nonzero if a run fails.
set -u
. "$(dirname "$0")/common/bench.sh"
build=${1:-build}
shift $(( $# > 0 ? 1 : 0 ))
[ "${1:-}" = "--" ] && shift
bin=$build/bench/allreduce
[ -x "$bin" ] || { echo "allreduce.sh: $bin not found; build first (cmake --build $build)" >&2; exit 2; }
RANKS=${RANKS:-2 4}

bench_launcher allreduce.sh "$build"
cores=$(nproc)

echo "# allreduce.sh on $(bench_machine), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# launcher: $mpiexec ${flags[*]}"
fail=0
for n in $RANKS; do
  note=""
  [ "$n" -gt "$cores" ] && note=" -- OVERSUBSCRIBED ($n ranks on $cores cores)"
  echo
  echo "## $n ranks$note"
  echo "\$ $mpiexec ${flags[*]} -n $n $bin $*"
  if ! "$mpiexec" "${flags[@]}" -n "$n" "$bin" "$@"; then
    echo "allreduce.sh: FAILED at $n ranks" >&2
    fail=1
  fi
done
exit "$fail"
