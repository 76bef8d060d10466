#!/usr/bin/env bash
# ch_runtime_fatal on one rank must end the whole job: rank 1 of 3 fails while the others
# block in a barrier. Asserts a non-zero exit that is not a timeout, an end within 20 s, and a
# message on stderr that names rank 1 and the cause (on the same line, so that the launcher's
# own "MPI_ABORT was invoked on rank 1" cannot satisfy the check).
# Usage: test_fatal.sh <fatal_rank program> <mpiexec> <numproc flag> [mpiexec flags...]
set -u
prog=$1 mpiexec=$2 npflag=$3
shift 3
if [ ! -x "$prog" ] || ! command -v "$mpiexec" >/dev/null 2>&1; then
  echo "SKIP: need $prog and $mpiexec"
  exit 77
fi
err=$(mktemp) out=$(mktemp)
trap 'rm -f "$err" "$out"' EXIT
start=$(date +%s%N)
timeout 60 "$mpiexec" "$npflag" 3 "$@" "$prog" >"$out" 2>"$err"
status=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "exit status $status after ${elapsed_ms} ms"
echo "--- stdout"; cat "$out"
echo "--- stderr"; cat "$err"
echo "---"
fail=0
if [ "$status" -eq 0 ]; then echo "FAIL: the job exited 0 after a fatal error"; fail=1; fi
if [ "$status" -eq 124 ]; then echo "FAIL: the job hung (killed by timeout 60)"; fail=1; fi
if [ "$elapsed_ms" -ge 20000 ]; then echo "FAIL: took ${elapsed_ms} ms (limit 20 s)"; fail=1; fi
if ! grep -Eq 'rank 1([^0-9]|$).*disk on fire' "$err"; then
  echo "FAIL: stderr has no line naming rank 1 and 'disk on fire'"; fail=1
fi
if ! grep -q 'write of shard 7 failed' "$err"; then
  echo "FAIL: the fatal message lacks the current error ('write of shard 7 failed')"; fail=1
fi
if grep -q 'left the barrier' "$err"; then
  echo "FAIL: a rank completed the barrier without rank 1"; fail=1
fi
[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
