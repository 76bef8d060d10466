#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build the CUDA backend into build-gpu and run the tests
# labelled "gpu" (tests/gpu), then print each kernel's measured error against its tolerance.
# Exit status: ctest's, or 77 when the tests skipped because no device was visible.
# Usage: tests/gpu/run.sh   (env: CUDA_ARCHS, default "80;90"; JOBS, default nproc)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$repo/build-gpu
command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "nvidia-smi not found"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCOHORT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-80;90}" >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target test_cuda_ops
rc=0
(cd "$build" && ctest -L gpu --output-on-failure) || rc=$?
# The test prints one table row per check ("| op | case | max err | tol |"); ctest keeps it.
log=$build/Testing/Temporary/LastTest.log
if [ -f "$log" ]; then
  echo
  grep -E '^(\| |[0-9]+ CUDA device|no CUDA device|cuda ops:|FAIL)' "$log" || true
  if [ $rc = 0 ] && grep -q '^no CUDA device: skipped' "$log"; then
    echo "tests/gpu/run.sh: no CUDA device visible, nothing was tested" >&2
    rc=77
  fi
fi
exit $rc
