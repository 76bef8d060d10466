#!/usr/bin/env bash
# The GPU verification, from a clean checkout on a machine with an NVIDIA GPU, in minutes:
#   1. build   build-gpu, COHORT_CUDA=ON, for this GPU's own architecture
#   2. tests   ctest -L gpu: the tests CI runs under the emulation, on the device
#   3. gemm    bench/cuda/gemm_rate: cuBLASLt bf16 TFLOP/s (4096^3, GPT-2 124M's GEMMs)
#   4. nccl    bench/cuda/nccl_busbw (2+ GPUs): raw ncclAllReduce vs cohort's device group
#   5. gpt2    `cohort train configs/gpt2-124m.yaml device=cuda precision=bf16` on one GPU,
#              30 steps on a synthetic token file: tokens/s and MFU
# then ONE table of everything. Each phase says what it took; a phase that cannot run says why
# and the rest go on.
#
#   tests/gpu/run.sh        env: CUDA_ARCHS (default: the GPU's compute capability, else
#                           "80;90"), JOBS (default nproc), BUILD_DIR (default build-gpu),
#                           PEAK_TFLOPS (the GPU's dense bf16 peak when the script does not
#                           know its model), GPT_TIMEOUT (seconds, default 180)
# Exit status: 77 when no GPU is visible (checked first: nothing is built); else 0 when the
# tests passed and every benchmark that applies ran, 1 otherwise.
#
# MFU = tokens/s x FLOPs/token / peak, FLOPs/token = 6 N + 6 L T C (llm.c's count: 6 N for the
# forward and backward of every parameter's multiply-add, 6 L T C for attention's QK^T and PV
# with the causal half skipped), N = the parameter count cohort prints (GPT-2 124M with the
# 50304 vocabulary, tied embeddings: 124,475,904). Against two peaks: the GPU's datasheet dense
# bf16 rate and the cuBLASLt bf16 GEMM rate measured in step 3 (the 4096^3 bf16-output GEMM:
# what this GPU achieves in practice). Anchor: llm.c reaches about 50% MFU (datasheet) on this
# model on an H100/A100.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$repo/build-gpu}
work=$build/bench-gpu
T_ALL=$SECONDS
ROWS=() # the final table: "| what | result |"
FAILED=0

phase_begin() { PHASE=$1; T0=$SECONDS; echo; echo "=== run.sh: $1 ==="; }
phase_end() { echo "=== run.sh: $PHASE took $((SECONDS - T0)) s ($1) ==="; ROWS+=("| phase: $PHASE | $1, $((SECONDS - T0)) s |"); }
row() { ROWS+=("| $1 | $2 |"); }

# ---- 0. a device? ---------------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "run.sh: no CUDA device (nvidia-smi finds no GPU): nothing built, nothing run"
  exit 77
fi
mapfile -t GPUS < <(nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader)
NGPU=${#GPUS[@]}
GPU_NAME=$(echo "${GPUS[0]}" | cut -d, -f1 | sed 's/^ *//; s/ *$//')
CAP=$(echo "${GPUS[0]}" | cut -d, -f2 | tr -d ' .')
ARCHS=${CUDA_ARCHS:-${CAP:-80;90}}
[[ $ARCHS =~ ^[0-9]+(\;[0-9]+)*$ ]] || ARCHS="80;90"
row "device" "$NGPU x ${GPUS[0]}; driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
# Datasheet dense bf16 TFLOP/s (no sparsity); PEAK_TFLOPS overrides.
case "$GPU_NAME" in
  *H100*PCIe*) PEAK=756 ;;
  *H100*|*H200*) PEAK=989 ;;
  *B200*) PEAK=2250 ;;
  *A100*) PEAK=312 ;;
  *L40S*) PEAK=362 ;;
  *A10G*|*A10*) PEAK=125 ;;
  *) PEAK="" ;;
esac
PEAK=${PEAK_TFLOPS:-$PEAK}

# ---- 1. build -------------------------------------------------------------------------------
phase_begin build
if cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCOHORT_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" >"$build.configure.log" 2>&1 &&
   cmake --build "$build" -j "${JOBS:-$(nproc)}" >"$build.build.log" 2>&1; then
  phase_end "ok, sm_$ARCHS"
else
  tail -30 "$build.configure.log" "$build.build.log" 2>/dev/null
  phase_end "FAILED (logs: $build.configure.log, $build.build.log)"
  echo "run.sh: the build failed; nothing else can run"
  printf '%s\n' "" "| what | result |" "|---|---|" "${ROWS[@]}"
  exit 1
fi
mkdir -p "$work"
# The build's MPI launcher and its flags (Open MPI: --oversubscribe, as root --allow-run-as-root).
# shellcheck disable=SC1091
. "$repo/bench/common/bench.sh"
bench_launcher run.sh "$build" # sets mpiexec, flags
# shellcheck disable=SC2154
MPIRUN=("$mpiexec" "${flags[@]}")

# ---- 2. tests -------------------------------------------------------------------------------
phase_begin tests
(cd "$build" && ctest -L gpu --output-on-failure) | tee "$work/ctest.log"
rc=${PIPESTATUS[0]}
summary=$(grep -E 'tests passed|tests failed' "$work/ctest.log" | tail -1)
skipped=$(grep -cE '\(Skipped\)' "$work/ctest.log")
[ "$rc" = 0 ] || FAILED=1
phase_end "${summary:-no summary}; $skipped skipped"
grep -E '\((Failed|Timeout|SEGFAULT|Exception)' "$work/ctest.log" | sed 's/^/  /'
# The kernel test prints one row per check: "| op | case | max err | tol |".
grep -hE '^\| ' "$build/Testing/Temporary/LastTest.log" 2>/dev/null > "$work/errors.md" || true

# ---- 3. gemm rate ---------------------------------------------------------------------------
phase_begin gemm
GEMM_PEAK=""
if "$build/bench/cuda/gemm_rate" | tee "$work/gemm.log"; then
  while read -r _ m n k bf f32; do
    row "cuBLASLt bf16 GEMM ${m}x${n}x${k}" "$bf TFLOP/s (bf16 out), $f32 TFLOP/s (fp32 out)"
  done < <(grep '^gemm ' "$work/gemm.log")
  GEMM_PEAK=$(awk '$1 == "gemm" && $2 == 4096 && $3 == 4096 && $4 == 4096 {print $5}' "$work/gemm.log")
  phase_end ok
else
  FAILED=1
  phase_end FAILED
fi

# ---- 4. NCCL bus bandwidth ------------------------------------------------------------------
phase_begin nccl
if [ "$NGPU" -lt 2 ]; then
  phase_end "skipped: 1 GPU (needs 2+)"
else
  if "${MPIRUN[@]}" -n "$NGPU" "$build/bench/cuda/nccl_busbw" | tee "$work/nccl.log"; then
    while read -r _ bytes raw ours; do
      row "allreduce busbw $((bytes >> 20)) MiB, $NGPU GPUs" "raw NCCL $raw GB/s, cohort $ours GB/s"
    done < <(grep '^busbw ' "$work/nccl.log")
    phase_end ok
  else
    FAILED=1
    phase_end FAILED
  fi
fi

# ---- 5. GPT-2 124M training -----------------------------------------------------------------
phase_begin gpt2
tokens=$work/synthetic-tokens.h5
run=$work/gpt2-run
rm -rf "$run"
# ~4 MB of random base64 text: byte tokens, vocabulary 256 (the model's stays 50304).
if [ ! -f "$tokens" ]; then
  head -c 3000000 /dev/urandom | base64 > "$work/synthetic.txt"
  "$build/cohort" data text "$work/synthetic.txt" "$tokens" --val-fraction 0.01 > "$work/data.log" 2>&1 \
    || { cat "$work/data.log"; rm -f "$tokens"; }
fi
if [ ! -f "$tokens" ]; then
  FAILED=1
  phase_end "FAILED: cohort data text (log: $work/data.log)"
elif ! "$build/cohort" train "$repo/configs/gpt2-124m.yaml" --print-config 2>/dev/null | grep -q '^device:'; then
  phase_end "skipped: this cohort has no device key yet"
else
  timeout "${GPT_TIMEOUT:-180}" "${MPIRUN[@]}" -n 1 "$build/cohort" train "$repo/configs/gpt2-124m.yaml" \
    device=cuda precision=bf16 data.path="$tokens" run.dir="$run" train.steps=30 \
    train.log_every=5 > "$work/gpt2.log" 2>&1
  rc=$?
  tail -12 "$work/gpt2.log"
  if [ "$rc" != 0 ] || [ ! -s "$run/metrics.jsonl" ]; then
    FAILED=1
    why=$(grep -m1 -iE 'error' "$work/gpt2.log" | cut -c1-160)
    [ "$rc" = 124 ] && why="timed out after ${GPT_TIMEOUT:-180} s"
    phase_end "FAILED (exit $rc): ${why:-see $work/gpt2.log}"
  else
    # tokens/s: median over the logged intervals after the first (warm-up); N from the log.
    read -r TOKS NPARAM < <(/usr/bin/env python3 - "$run/metrics.jsonl" "$work/gpt2.log" <<'EOF'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip() and '"tokens_per_s"' in l]
rates = [r["tokens_per_s"] for r in rows[1:]] or [r["tokens_per_s"] for r in rows]
m = re.search(r"(\d+) parameters", open(sys.argv[2]).read())
print(f"{statistics.median(rates):.0f}", m.group(1) if m else 124475904)
EOF
)
    if [ -z "${TOKS:-}" ]; then
      FAILED=1
      phase_end "FAILED: no tokens/s in $run/metrics.jsonl"
      TOKS=0
    fi
    FPT=$((6 * NPARAM + 6 * 12 * 1024 * 768))
    mfu() { awk -v t="$TOKS" -v f="$FPT" -v p="$1" 'BEGIN { printf "%.1f%%", 100 * t * f / (p * 1e12) }'; }
    row "GPT-2 124M bf16 training, 1 GPU, B*T = 8192" "$TOKS tokens/s (median of the 5-step intervals after the first)"
    row "FLOPs/token = 6N + 6LTC" "N = $NPARAM, L = 12, T = 1024, C = 768: $FPT"
    row "achieved" "$(awk -v t="$TOKS" -v f="$FPT" 'BEGIN { printf "%.1f", t * f / 1e12 }') TFLOP/s"
    if [ -n "$PEAK" ]; then row "MFU vs datasheet bf16 peak ($PEAK TFLOP/s)" "$(mfu "$PEAK") (llm.c: ~50% on H100/A100)"
    else row "MFU vs datasheet peak" "unknown GPU model: set PEAK_TFLOPS"; fi
    [ -n "$GEMM_PEAK" ] && row "MFU vs measured cuBLASLt 4096^3 ($GEMM_PEAK TFLOP/s)" "$(mfu "$GEMM_PEAK")"
    phase_end ok
  fi
fi

# ---- the table ------------------------------------------------------------------------------
echo
echo "tests/gpu/run.sh on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'): $((SECONDS - T_ALL)) s in all"
printf '%s\n' "| what | result |" "|---|---|" "${ROWS[@]}"
if [ -s "$work/errors.md" ]; then
  echo
  echo "Kernel errors against the CPU (from the tests):"
  cat "$work/errors.md"
fi
exit $FAILED
