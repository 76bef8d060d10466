#!/usr/bin/env bash
# Training on device=cuda against the CPU, end to end through `cohort train` on 2 ranks (the
# CUDA library is the emulated one in CI, COHORT_CUDA_EMULATE=1, or the real one on a GPU):
#   - 20 AdamW steps of a small GPT under DDP and under ZeRO-3 on cuda (NCCL groups) track CPU
#     DDP's losses step by step within 1e-4 (fp32 in both; the summation orders differ, and AdamW
#     turns the rounding noise of gradients that are zero in exact arithmetic, the key bias, into
#     steps of size lr, so runs drift apart slowly; the emulation measures ~5e-9, a GPU's GEMMs
#     reorder more);
#   - precision=bf16 stays within a band of 1e-2 of the fp32 loss at every step (GEMM operands
#     rounded to 8 significant bits, relative error up to 2^-8 = 3.9e-3 each) and still falls;
#   - a node with fewer GPUs than ranks, and a missing CUDA library, stop with a message;
#   - a cuda checkpoint resumes on CPU, and a CPU checkpoint on cuda: steps 11..20 track the
#     uninterrupted CPU run within 1e-4, and the files are ordinary checkpoints (h5py reads them).
# Usage: test_cuda_train.sh COHORT SOURCE_DIR CUDA_LIBRARY MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 lib=$3 mpiexec=$4
shift 4
flags=("$@")
export COHORT_CUDA_LIBRARY=$lib
case "$lib" in *_emu.so*) ;; *) nvidia-smi -L >/dev/null 2>&1 || { echo "no CUDA device: skipped"; exit 77; } ;; esac
# Ranks: 2 (the emulation has as many devices as asked); on a real node one per GPU, at most 2
# (cohort refuses more ranks than GPUs on a node), so a 1-GPU machine runs the 1-rank case.
ranks=2
case "$lib" in *_emu.so*) ;; *) [ "$(nvidia-smi -L | grep -c '^GPU')" -ge 2 ] || ranks=1 ;; esac
work=$(mktemp -d /tmp/cohort-cuda-train-XXXXXX)
trap 'rm -rf "$work"' EXIT
py=/usr/bin/python3

# 40 KB of Shakespeare: evaluation covers the whole validation split, which the emulation runs
# at a few thousand tokens per second.
(gzip -dc "$src/examples/shakespeare/input.txt.gz" || true) | head -c 40000 > "$work/small.txt"
"$cohort" data text "$work/small.txt" "$work/text.h5" --val-fraction 0.1 > /dev/null
train() { # NAME [overrides...]
  local name=$1
  shift
  "$mpiexec" -n "$ranks" "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
    data.path="$work/text.h5" run.dir="$work/$name" model.n_layer=2 model.n_head=2 \
    model.n_embd=32 model.context=16 train.steps=20 train.batch_size=8 train.log_every=1 \
    train.eval_every=20 optim.warmup_steps=5 run.checkpoint.every=10 "$@" > "$work/$name.txt" 2>&1 ||
    { echo "FAIL: train $name"; cat "$work/$name.txt"; exit 1; }
}
# compare A B TOL [STEP_FROM]: the losses of B's metrics track A's within TOL (relative).
compare() {
  "$py" - "$work/$1/metrics.jsonl" "$work/$2/metrics.jsonl" "$3" "${4:-1}" <<'PY'
import json, sys
a, b = ({r["step"]: r["loss"] for r in map(json.loads, open(p))} for p in sys.argv[1:3])
tol, first = float(sys.argv[3]), int(sys.argv[4])
steps = [s for s in sorted(b) if s >= first]
assert steps and all(s in a for s in steps), (sorted(a), sorted(b))
worst = max(abs(b[s] - a[s]) / a[s] for s in steps)
print(f"{sys.argv[2].split('/')[-2]}: steps {steps[0]}..{steps[-1]}, max relative loss "
      f"difference {worst:.2e} (tolerance {tol:g})")
assert worst <= tol, [(s, a[s], b[s]) for s in steps]
PY
}

train cpu device=cpu
# Errors: fewer GPUs than ranks on a node (the emulation's device count), and no CUDA library.
expect_fail() { # MESSAGE ENV... -- runs 2 ranks of a 1-step run with device=cuda under ENV
  local msg=$1
  shift
  if env "$@" "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
      data.path="$work/text.h5" run.dir="$work/fail" train.steps=1 optim.warmup_steps=0 \
      device=cuda > "$work/fail.txt" 2>&1; then
    echo "FAIL: expected an error ($msg)"; exit 1
  fi
  grep -q "$msg" "$work/fail.txt" || { echo "FAIL: no '$msg' in:"; cat "$work/fail.txt"; exit 1; }
  echo "error as expected: $(grep -m1 -o "$msg.*" "$work/fail.txt" | cut -c1-120)"
}
case "$lib" in *_emu.so*) expect_fail "this node has 1 GPU for 2 local ranks" COHORT_CUDA_EMU_DEVICES=1 ;; esac
expect_fail "cannot load the CUDA backend" COHORT_CUDA_LIBRARY=/nonexistent/libcohort_cuda.so
train cuda_ddp device=cuda
grep -q "on cuda" "$work/cuda_ddp.txt" || { echo "FAIL: the run did not say it ran on cuda"; exit 1; }
compare cpu cuda_ddp 1e-4
train cuda_zero3 device=cuda parallel.strategy=zero3
compare cpu cuda_zero3 1e-4
train cuda_bf16 device=cuda precision=bf16
grep -q "bf16" "$work/cuda_bf16.txt" || { echo "FAIL: bf16 not reported"; exit 1; }
compare cpu cuda_bf16 1e-2
"$py" - "$work/cuda_bf16/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[-1]["loss"] < rows[0]["loss"] - 0.5, "bf16 loss did not fall"
PY

# Across devices: the step-10 checkpoints continue on the other device.
train cuda_to_cpu device=cpu run.resume="$work/cuda_ddp/checkpoints/step-00000010.h5"
compare cpu cuda_to_cpu 1e-4 11
train cpu_to_cuda device=cuda parallel.strategy=zero3 \
  run.resume="$work/cpu/checkpoints/step-00000010.h5"
compare cpu cpu_to_cuda 1e-4 11
"$py" - "$work/cuda_zero3/checkpoints/step-00000020.h5" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    w = f["/model/h.0.attn.c_attn.weight"]
    assert w.shape == (32, 96) and w.dtype == "float32", (w.shape, w.dtype)
    print("cuda checkpoint read by h5py:", w.shape, w.dtype)
PY
echo "ok: cuda training tracks the CPU (ddp, zero3, bf16, resumes across devices)"
