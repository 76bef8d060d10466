#!/usr/bin/env bash
# GPT training throughput: `cohort train` (model.type=gpt) against PyTorch DDP
# (bench/torch_ddp_gpt.py, gloo), both at 1 and 2 ranks, measured in the same invocation.
#
#   bench/gpt_ddp.sh BUILD_DIR [--rounds R] [--ranks "1 2"] [--only tiny|gemm] [--baseline BUILD2]
#                     [--cohort-only]
#
# --baseline BUILD2: a second build of cohort (e.g. the commit before a change) runs in every slot
# too, next to BUILD_DIR's (BUILD first in odd rounds, BUILD2 first in even ones), and a table
# compares the two: a refactoring's cost measured in one invocation. --cohort-only skips the torch
# peers (with --baseline: the A/B table alone).
# BUILD_DIR holds a build of cohort (BUILD_DIR/cohort; a Release build for numbers worth keeping).
# Data is made on first use: BUILD_DIR/benchdata/shakespeare-bench.h5 = `cohort data text
# examples/shakespeare/input.txt.gz ... --val-fraction 0.01` (byte tokenizer, vocab 256).
# Two workloads, both from configs/gpt-tiny.yaml (AdamW, clip 1.0, cosine schedule with warmup):
#   tiny  the config's shape: 4 layers, 4 heads, width 128, context 64, batch 32 (2048 tokens per
#         step), 100 steps logged every 10;
#   gemm  4 layers, 8 heads, width 512, context 128, batch 16 (2048 tokens per step), 24 steps
#         logged every 2 (warmup 5; ~1 s per step on 2 cores): ~96% of the FLOPs are in the dense projections (see the FLOP
#         table the script prints).
# tokens/s: the median over the log intervals after the first (warm-up) one, for cohort taken from
# run.dir/metrics.jsonl (`tokens_per_s`: interval throughput, evaluation excluded), for torch from
# its own intervals, computed the same way; the time-weighted mean and the best of the same
# intervals too.
# Order: for each round, for each N, cohort and torch alternate (cohort first in odd rounds, torch
# first in even ones). Both run under `mpirun --bind-to none`: cohort binds each rank to its own
# cores with hwloc, torch_ddp_gpt.py does the same with sched_setaffinity before torch loads; each
# uses cores-per-rank BLAS/OpenMP threads. OPENBLAS_CORETYPE: torch gets the kernel family cohort
# reports using (unless the caller set OPENBLAS_CORETYPE, which then applies to both). torch runs
# twice per slot: "tuned" (OMP_WAIT_POLICY=PASSIVE, the fair peer) and "default" (as installed).
# cohort: no checkpoints (run.checkpoint.every=0), no evaluation but the final one (which cohort
# always runs after the last step, outside the timed intervals).
# Per-run logs: BUILD_DIR/benchruns-gpt/<workload>-n<N>-r<round>-{cohort,baseline,torch-tuned,torch-default}.log
set -euo pipefail

. "$(dirname "$0")/common/bench.sh"
ROUNDS=1
RANKS="1 2"
ONLY=""
BASELINE=""
COHORT_ONLY=""
bench_args "rounds ranks only baseline cohort-only!" "$@"
if [ -n "$BASELINE" ]; then
  BASELINE=$(cd "$BASELINE" && pwd) && [ -x "$BASELINE/cohort" ] \
    || { echo "gpt_ddp.sh: no cohort in --baseline $BASELINE" >&2; exit 2; }
fi
case "$ONLY" in ""|tiny|gemm) ;; *) usage ;; esac

bench_setup gpt_ddp.sh benchruns-gpt
bench_tokens

# --- workloads -------------------------------------------------------------------------------
# name | overrides shared by cohort and torch (on top of configs/gpt-tiny.yaml)
CFG=$SRC/configs/gpt-tiny.yaml
COMMON="data.path=$TOKENS train.eval_every=1000000 run.checkpoint.every=0"
WORKLOADS=(
  "tiny|$COMMON train.steps=100 train.log_every=10"
  "gemm|$COMMON model.n_layer=4 model.n_head=8 model.n_embd=512 model.context=128 train.batch_size=16 train.steps=24 train.log_every=2 optim.warmup_steps=5"
)

CORETYPE=${OPENBLAS_CORETYPE:-}
echo "# gpt_ddp.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# $(mpirun --version | head -1); $("$PY" -c 'import torch; print("torch", torch.__version__)'); build $BUILD ($(bench_build_type))"
echo "# load average at start: $(bench_load)"

run_build() { # label binary name n round overrides...
  local label=$1 bin=$2 name=$3 n=$4 r=$5; shift 5
  local log=$RUNS/$name-n$n-r$r-$label.log dir=$RUNS/$name-n$n-r$r-$label
  echo "## $label $name N=$n round $r (load $(bench_load))"
  rm -rf "$dir"
  echo "+ ${MPIRUN[*]} -n $n $bin train $CFG $* run.dir=$dir --verbose" > "$log"
  echo "# load $(bench_load)" >> "$log"
  "${MPIRUN[@]}" -n "$n" "$bin" train "$CFG" "$@" "run.dir=$dir" --verbose >> "$log" 2>&1 \
    || { cat "$log"; echo "gpt_ddp.sh: $label run failed" >&2; exit 1; }
  cp "$dir/metrics.jsonl" "$RUNS/$name-n$n-r$r-$label.metrics.jsonl"
  grep -E 'OpenBLAS kernels|tok/s|done: ' "$log" | grep -v ' r1\]' || true
  if [ -z "$CORETYPE" ]; then
    CORETYPE=$(sed -n 's/.*OpenBLAS kernels \([A-Za-z0-9_]*\).*/\1/p' "$log" | head -1)
  fi
}

run_cohort() { # name n round overrides...: BUILD's cohort, and BUILD2's when --baseline is given
  if [ -z "$BASELINE" ]; then
    run_build cohort "$COHORT" "$@"
  elif [ $(($3 % 2)) -eq 1 ]; then
    run_build cohort "$COHORT" "$@"; run_build baseline "$BASELINE/cohort" "$@"
  else
    run_build baseline "$BASELINE/cohort" "$@"; run_build cohort "$COHORT" "$@"
  fi
}

run_torch() { # variant(tuned|default) name n round overrides...
  [ -z "$COHORT_ONLY" ] || return 0
  local variant=$1 name=$2 n=$3 r=$4; shift 4
  local log=$RUNS/$name-n$n-r$r-torch-$variant.log
  echo "## torch ($variant) $name N=$n round $r (load $(bench_load)), OPENBLAS_CORETYPE=${CORETYPE:-unset}"
  bench_torch_ddp "$variant" "$log" "$n" torch_ddp_gpt.py --config "$CFG" "$@"
  grep -E 'tok/s|^summary' "$log" || true
}

if [ -z "$CORETYPE" ]; then
  # What cohort's loader chooses, from a throwaway 1-step run; needed before a round that starts
  # with torch.
  CORETYPE=$("${MPIRUN[@]}" -n 1 "$COHORT" train "$CFG" data.path="$TOKENS" train.steps=1 \
    optim.warmup_steps=0 train.batch_size=2 run.checkpoint.every=0 "run.dir=$RUNS/probe" \
    --verbose 2>&1 | sed -n 's/.*OpenBLAS kernels \([A-Za-z0-9_]*\).*/\1/p' | head -1)
fi
echo "# OpenBLAS kernels: ${CORETYPE:-unknown} (cohort's choice; given to torch as OPENBLAS_CORETYPE)"

for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name ov <<< "$w"
  [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
  for r in $(seq 1 "$ROUNDS"); do
    for n in $RANKS; do
      # shellcheck disable=SC2086
      bench_round "$r" "$name" "$n" "$r" $ov
    done
  done
done

# --- table -----------------------------------------------------------------------------------
PYTHONPATH="$SRC/bench" "$PY" - "$RUNS" "$ROUNDS" "$RANKS" "$ONLY" "$BASELINE" <<'EOF'
import json, sys
from bench_report import log_load as load, median as med, summary as torch
runs, rounds, ranks, only, baseline = (sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4],
                                       sys.argv[5])
shapes = {"tiny": dict(L=4, NH=4, C=128, T=64, V=256, B=32),
          "gemm": dict(L=4, NH=8, C=512, T=128, V=256, B=16)}

def cohort(path, B, T):
    """Intervals after the first line of metrics.jsonl -> (median, mean, best tok/s, last loss)."""
    try:
        rows = [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        return None
    if not rows:
        return None
    iv, prev = [], 0
    for r in rows:
        tokens = (r["step"] - prev) * B * T
        iv.append((tokens, tokens / r["tokens_per_s"]))
        prev = r["step"]
    steady = iv[1:] if len(iv) > 1 else iv
    rates = [n / s for n, s in steady]
    return (med(rates), sum(n for n, _ in steady) / sum(s for _, s in steady), max(rates),
            rows[-1]["loss"])

print()
print("Training FLOPs per token (forward + backward = 3 x forward; attention = QK^T and PV at full T x T,")
print("i.e. without the causal saving). Elementwise values = outputs of LayerNorm x2, residual adds x2,")
print("GELU and softmax per token and layer in forward; the last column is the forward matmul FLOPs per")
print("such value (the larger, the more the GEMMs dominate):")
print("| workload | dense projections + head | attention matmuls | dense share of matmul FLOPs "
      "| elementwise values per token per layer (fwd) | matmul FLOPs per elementwise value |")
print("|---|---:|---:|---:|---:|---:|")
for name, s in shapes.items():
    if only and only != name:
        continue
    L, NH, C, T, V = s["L"], s["NH"], s["C"], s["T"], s["V"]
    dense = 6 * (12 * L * C * C + V * C)
    attn = 12 * L * T * C
    elem = 2 * C + 2 * C + 4 * C + NH * T  # 2 LayerNorms, 2 residual adds, GELU, softmax rows
    print(f"| {name} | {dense / 1e6:.2f} MFLOP | {attn / 1e6:.2f} MFLOP | {dense / (dense + attn):.1%} "
          f"| {elem} | {(24 * C * C + 4 * T * C) / elem:.0f} |")

print()
print("tokens/s: median over the log intervals after the first (warm-up); mean = tokens / time over")
print("the same intervals; best = the fastest of them (the least disturbed by other jobs on a shared")
print("machine). torch tuned = OMP_WAIT_POLICY=PASSIVE (the peer), default = as installed.")
print("ratio = cohort / torch tuned (/ torch default). loss = train loss of the last interval.")
for name in ("tiny", "gemm"):
    if only and only != name:
        continue
    B, T = shapes[name]["B"], shapes[name]["T"]
    print(f"\n{name}")
    print("| N | round | cohort tok/s | torch tuned | torch default | cohort/torch tuned (default) "
          "| mean tok/s cohort / tuned / default | best tok/s cohort / tuned / default (ratio) "
          "| loss cohort / torch tuned | load (1 min) at start cohort / tuned / default |")
    print("|---|---|---:|---:|---:|---|---|---|---|---|")
    for n in ranks:
        for r in range(1, rounds + 1):
            base = f"{runs}/{name}-n{n}-r{r}"
            c = cohort(f"{base}-cohort.metrics.jsonl", B, T)
            t, td = torch(f"{base}-torch-tuned.log"), torch(f"{base}-torch-default.log")
            if not c or not t or not td:
                continue
            print(f"| {n} | {r} | {c[0]:.0f} | {t['tok_s']:.0f} | {td['tok_s']:.0f} | "
                  f"{c[0] / t['tok_s']:.2f} ({c[0] / td['tok_s']:.2f}) | "
                  f"{c[1]:.0f} / {t['tok_s_mean']:.0f} / {td['tok_s_mean']:.0f} | "
                  f"{c[2]:.0f} / {t['tok_s_best']:.0f} / {td['tok_s_best']:.0f} ({c[2] / t['tok_s_best']:.2f}) | "
                  f"{c[3]:.3f} / {t['loss']:.3f} | "
                  f"{load(base + '-cohort.log')} / {load(base + '-torch-tuned.log')} / "
                  f"{load(base + '-torch-default.log')} |")
    if not baseline:
        continue
    print(f"\n{name}: this build vs --baseline {baseline} (same slots; ratio = this / baseline)")
    print("| N | round | tok/s this | tok/s baseline | ratio (median) | mean ratio | best ratio "
          "| loss this / baseline |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for n in ranks:
        for r in range(1, rounds + 1):
            base = f"{runs}/{name}-n{n}-r{r}"
            c, b = cohort(f"{base}-cohort.metrics.jsonl", B, T), cohort(f"{base}-baseline.metrics.jsonl", B, T)
            if c and b:
                print(f"| {n} | {r} | {c[0]:.0f} | {b[0]:.0f} | {c[0] / b[0]:.3f} | {c[1] / b[1]:.3f} "
                      f"| {c[2] / b[2]:.3f} | {c[3]:.4f} / {b[3]:.4f} |")
EOF
echo "# load average at end: $(bench_load)"
