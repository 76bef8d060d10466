#!/usr/bin/env bash
# GPT-2 124M training on the CPU, against the machine's own GEMM rate: tokens/s of `cohort train`
# (fp32, and bf16 when asked), of the PyTorch peer (bench/torch_ddp_gpt.py, 1 rank), and the
# sgemm rate of the step's own 15 GEMM shapes, all at the same thread count in one invocation.
#
#   bench/gpt124m.sh BUILD_DIR [--precisions "fp32 bf16"] [--steps N] [--batch B] [--seq T]
#                    [--log-every K] [--no-torch] [--layers L] [--heads NH] [--width C] [--vocab V]
#
# Defaults: fp32, 8 steps logged every 2, batch 4, context 256; the model is GPT-2 124M's shape
# (12 layers, 12 heads, width 768, vocabulary 50304 = GPT-2's 50257 padded as llm.c does, tied LM
# head) from configs/gpt2-124m.yaml with device=cpu; --layers/--heads/--width/--vocab shrink it
# (the ctest bench_gpt124m_tiny runs it that way so that the script does not rot).
# Threads: one rank, bound by cohort to every core this process may use (`taskset -c 0-3
# bench/gpt124m.sh ...` picks fewer); torch and the sgemm program get the same count.
# Data: BUILD_DIR/benchdata/shakespeare-124m.h5 (bench_tokens_smallval) = `cohort data text` of the Shakespeare example
# with --val-fraction 0.001 (byte tokens; the model's vocabulary stays V, so every step runs the
# full LM head; 4 validation windows, so that cohort's evaluation after the last step is short).
# Printed:
#   - sgemm: `bench/sgemm --shapes` (run before and after the training runs, best of both) at
#     the step's GEMMs with rows R = B*T: for c_attn (C -> 3C),
#     attn.c_proj (C -> C), mlp.c_fc (C -> 4C), mlp.c_proj (4C -> C) x L layers and the LM head
#     (C -> V), the forward y = x W, dx = dy W^T and dW += x^T dy, as kernels/cpu/linear.c calls
#     ch_sgemm; each shape's best GFLOP/s and their FLOP-weighted rate = total FLOPs / total time
#     (the time one step's GEMMs would take at those rates);
#   - tokens/s of each run: median over the log intervals after the first (cohort from
#     run.dir/metrics.jsonl, torch from its summary line);
#   - FLOPs/token = 6 N + 6 L T C (N = parameter count, llm.c's count: the causal half of
#     attention skipped), achieved GFLOP/s = tokens/s x FLOPs/token, MFU = achieved / the
#     FLOP-weighted sgemm rate (bf16: still against the fp32 sgemm rate), and cohort/torch.
# A bf16 run that fails (precision=bf16 needs a CPU bf16 path) prints "bf16: unsupported/failed"
# and the rest goes on; a failed fp32, torch or sgemm run is a failure (exit 1). Logs: BUILD_DIR/benchruns-gpt124m/ (other shapes: benchruns-gpt124m-L...).
set -euo pipefail

. "$(dirname "$0")/common/bench.sh"
USAGE_LINES=2,7
PRECISIONS=fp32
STEPS=8
BATCH=4
SEQ=256
LOG_EVERY=2
LAYERS=12
HEADS=12
WIDTH=768
VOCAB=50304
NO_TORCH=""
bench_args "precisions steps batch seq log-every layers heads width vocab no-torch!" "$@"
# Logs of other shapes go elsewhere, so that a smoke test does not overwrite the real runs' logs.
RUNS_NAME=benchruns-gpt124m
[ "$LAYERS $HEADS $WIDTH $VOCAB $SEQ $BATCH" = "12 12 768 50304 256 4" ] \
  || RUNS_NAME=benchruns-gpt124m-L$LAYERS-NH$HEADS-C$WIDTH-V$VOCAB-T$SEQ-B$BATCH
bench_setup gpt124m.sh "$RUNS_NAME"
SGEMM=$BUILD/bench/sgemm
[ -x "$SGEMM" ] || { echo "gpt124m.sh: $SGEMM not found (build $BUILD first)" >&2; exit 1; }
NCORES=$(nproc)

bench_tokens_smallval
CFG=$SRC/configs/gpt2-124m.yaml
OV=(device=cpu "data.path=$TOKENS" "model.n_layer=$LAYERS" "model.n_head=$HEADS"
    "model.n_embd=$WIDTH" "model.context=$SEQ" "model.vocab_size=$VOCAB" "train.batch_size=$BATCH"
    "train.steps=$STEPS" "train.log_every=$LOG_EVERY" optim.warmup_steps=1 train.eval_every=0
    run.checkpoint.every=0)

echo "# gpt124m.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# $("$PY" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo 'no torch');" \
     "build $BUILD ($(bench_build_type)); $NCORES threads (cores this process may use)"
echo "# GPT L=$LAYERS NH=$HEADS C=$WIDTH T=$SEQ V=$VOCAB, batch $BATCH ($((BATCH * SEQ)) tokens/step)," \
     "$STEPS steps logged every $LOG_EVERY"
echo "# load average at start: $(bench_load)"

# --- the step's GEMMs ----------------------------------------------------------------------------
# "count shape" per line; shape = M x N x K : transposes, + = beta 1 (kernels/cpu/linear.c).
R=$((BATCH * SEQ))
gemm_shapes() {
  local io in out
  for io in "$WIDTH $((3 * WIDTH))" "$WIDTH $WIDTH" "$WIDTH $((4 * WIDTH))" "$((4 * WIDTH)) $WIDTH"; do
    read -r in out <<< "$io"
    echo "$LAYERS ${R}x${out}x${in}:nn+"   # y = x W + b   (Conv1D weight [in, out])
    echo "$LAYERS ${R}x${in}x${out}:nt"    # dx = dy W^T
    echo "$LAYERS ${in}x${out}x${R}:tn+"   # dW += x^T dy
  done
  echo "1 ${R}x${VOCAB}x${WIDTH}:nt"       # logits = x wte^T (tied head, weight [V, C])
  echo "1 ${R}x${WIDTH}x${VOCAB}:nn"       # dx = dlogits wte
  echo "1 ${VOCAB}x${WIDTH}x${R}:tn+"      # dwte += dlogits^T x
}
SHAPES=$(gemm_shapes | awk '{print $2}' | paste -sd,)
run_sgemm() { # PASS: the step's shapes at NCORES threads -> $RUNS/sgemm-PASS.log
  local log=$RUNS/sgemm-$1.log
  echo "## sgemm at the step's shapes, $NCORES threads, pass $1 (load $(bench_load))"
  { echo "# load $(bench_load)"; "$SGEMM" --shapes "$SHAPES" --threads "$NCORES" --reps 3 --min-time 0.3; } \
    > "$log" 2>&1 || { cat "$log"; echo "gpt124m.sh: sgemm failed" >&2; exit 1; }
}
rm -f "$RUNS"/sgemm-*.log
run_sgemm 1
CORENAME=$(sed -n 's/^corename: //p' "$RUNS/sgemm-1.log")
echo "corename: $CORENAME"

# --- training runs -------------------------------------------------------------------------------
for p in $PRECISIONS; do
  log=$RUNS/cohort-$p.log dir=$RUNS/cohort-$p
  rm -rf "$dir" "$RUNS/cohort-$p.metrics.jsonl"
  echo "## cohort $p (load $(bench_load))"
  echo "+ ${MPIRUN[*]} -n 1 $COHORT train $CFG ${OV[*]} precision=$p run.dir=$dir --verbose" > "$log"
  echo "# load $(bench_load)" >> "$log"
  if "${MPIRUN[@]}" -n 1 "$COHORT" train "$CFG" "${OV[@]}" "precision=$p" "run.dir=$dir" --verbose \
       >> "$log" 2>&1; then
    cp "$dir/metrics.jsonl" "$RUNS/cohort-$p.metrics.jsonl"
    grep -E 'OpenBLAS kernels|parameters in|tok/s' "$log" | sed 's/^/  /' || true
  elif [ "$p" = fp32 ]; then
    cat "$log"; echo "gpt124m.sh: cohort fp32 run failed" >&2; exit 1
  else
    echo "$p: unsupported/failed ($(grep -m1 'cohort train:' "$log" || tail -1 "$log"))"
  fi
done

if [ -z "$NO_TORCH" ] && "$PY" -c 'import torch, h5py' 2>/dev/null; then
  CORETYPE=${OPENBLAS_CORETYPE:-$CORENAME}
  echo "## torch (tuned: OMP_WAIT_POLICY=PASSIVE) fp32 (load $(bench_load)), OPENBLAS_CORETYPE=$CORETYPE"
  bench_torch_ddp tuned "$RUNS/torch.log" 1 torch_ddp_gpt.py --config "$CFG" --data "$TOKENS" "${OV[@]}"
  grep -E 'tok/s' "$RUNS/torch.log" | sed 's/^/  /' || true
else
  rm -f "$RUNS/torch.log"
  echo "## torch: skipped (--no-torch, or $PY lacks torch/h5py)"
fi

run_sgemm 2

# --- report --------------------------------------------------------------------------------------
gemm_shapes > "$RUNS/shapes.txt"
PYTHONPATH="$SRC/bench" "$PY" - "$RUNS" "$PRECISIONS" "$LAYERS" "$WIDTH" "$SEQ" "$VOCAB" "$BATCH" <<'EOF'
import json, sys
from bench_report import median, summary
runs, precs = sys.argv[1], sys.argv[2].split()
L, C, T, V, B = (int(x) for x in sys.argv[3:8])

rate = {}
for p in (1, 2):
    for line in open(f"{runs}/sgemm-{p}.log"):
        f = line.split()
        if f and f[0] == "RESULT":
            rate[f[4]] = max(rate.get(f[4], 0.0), float(f[7]))
print("\nsgemm GFLOP/s at the step's GEMM shapes (best call of both passes, before and after the "
      "training runs; count = calls per step):")
print("| shape (M x N x K : op, + = beta 1) | count | GFLOP per step | GFLOP/s |")
print("|---|---:|---:|---:|")
flops = secs = 0.0
for line in open(f"{runs}/shapes.txt"):
    n, shape = line.split()
    m, nn, k = (int(x) for x in shape.split(":")[0].split("x"))
    fl = int(n) * 2.0 * m * nn * k
    r = rate.get(shape)
    print(f"| {shape} | {n} | {fl / 1e9:.2f} | {r:.1f} |" if r else f"| {shape} | {n} | {fl / 1e9:.2f} | - |")
    if r:
        flops += fl
        secs += fl / (r * 1e9)
sg = flops / secs / 1e9 if secs else float("nan")
print(f"FLOP-weighted sgemm rate: {sg:.1f} GFLOP/s ({flops / 1e9:.1f} GFLOP of GEMMs per step "
      f"would take {secs * 1e3:.0f} ms)")

N = V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
fpt = 6 * N + 6 * L * T * C
for p in precs:  # cross-check with the count cohort prints
    try:
        for line in open(f"{runs}/cohort-{p}.log"):
            if "model gpt: " in line and " parameters" in line:
                got = int(line.split("model gpt: ")[1].split()[0])
                if got != N:
                    print(f"WARNING: cohort {p} reports {got} parameters, the formula {N}")
    except OSError:
        pass
print(f"\nN = {N} parameters (V*C + T*C + L*(12 C^2 + 13 C) + 2 C); FLOPs/token = 6 N + 6 L T C = "
      f"{fpt / 1e6:.1f} MFLOP")

def cohort(path):
    try:
        rows = [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        return None
    rates = [r["tokens_per_s"] for r in rows]
    return median(rates[1:] if len(rates) > 1 else rates) if rates else None

res = [(f"cohort {p}", cohort(f"{runs}/cohort-{p}.metrics.jsonl")) for p in precs]
t = summary(f"{runs}/torch.log")
res.append(("torch fp32", t["tok_s"] if t else None))
tt = res[-1][1]
print("\ntokens/s: median over the log intervals after the first; MFU = achieved / FLOP-weighted "
      "sgemm rate")
print("| run | tok/s | ms/step | achieved GFLOP/s | MFU | / torch |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in res:
    if r is None:
        print(f"| {name} | unsupported/failed/skipped | | | | |")
        continue
    ach = r * fpt / 1e9
    ratio = f"{r / tt:.2f}" if tt else "-"
    print(f"| {name} | {r:.0f} | {1e3 * B * T / r:.0f} | {ach:.1f} | {ach / sg:.1%} | {ratio} |")
summ = " ".join(f"{n.replace(' ', '_')}={r:.1f}" for n, r in res if r)
print(f"summary: sgemm_gflops={sg:.1f} params={N} flops_per_token={fpt} {summ}")
EOF
echo "# load average at end: $(bench_load)"
