#!/usr/bin/env bash
# GPT generation speed: `cohort generate` (KV cache, greedy) against a PyTorch KV-cache loop on the
# same weights (bench/torch_generate.py), one thread each, measured in the same invocation.
#
#   bench/gpt_generate.sh BUILD_DIR [--ckpt CKPT] [--only tiny|wide] [--rounds R]
#                         [--prompt TEXT] [--max-tokens N]
#
# Without --ckpt it trains (once; reused later) a checkpoint per shape with `mpirun -n 2 cohort
# train configs/gpt-tiny.yaml`, data BUILD_DIR/benchdata/shakespeare-bench.h5 (as gpt_ddp.sh):
#   tiny  gpt-tiny (4 layers, 4 heads, width 128) with model.context=256 so that 200 new tokens
#         fit, batch 8, 400 steps (1-3 min)          -> BUILD_DIR/benchruns-gen/tiny/checkpoints
#   wide  the shape of gpt_ddp.sh's "gemm" workload (4 layers, 8 heads, width 512; 12.9M
#         parameters) with context 256, batch 4, 40 steps (barely trained; decoding one token is
#         matrix-vector work on 51 MB of weights)  -> BUILD_DIR/benchruns-gen/wide/checkpoints
# --ckpt CKPT times that checkpoint alone (label "ckpt"). Default prompt "ROMEO:", 200 tokens,
# temperature 0 (greedy), 3 rounds; each round runs cohort and torch once each in fresh processes,
# alternating which goes first, both pinned with taskset to the last core with one BLAS/OpenMP
# thread and the OPENBLAS_CORETYPE cohort picks. tokens/s = (new tokens - 1) / (time after the
# prompt's forward pass), the definition `cohort generate` prints; the table shows every round
# and the median. Greedy agreement: how many of the new tokens are identical before the first
# difference (torch_generate.py --compare cohort's stdout).
# Logs: BUILD_DIR/benchruns-gen/<label>-r<round>-{cohort.out,cohort.err,torch.err}
set -euo pipefail

USAGE_LINES=2,9
. "$(dirname "$0")/common/bench.sh"
CKPT=""
ONLY=""
ROUNDS=3
PROMPT="ROMEO:"
MAX_TOKENS=200
bench_args "ckpt only rounds prompt max-tokens" "$@"
case "$ONLY" in ""|tiny|wide) ;; *) usage ;; esac

bench_setup gpt_generate.sh benchruns-gen
bench_tokens
CORE=$(( $(nproc) - 1 ))

echo "# gpt_generate.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# $("$PY" -c 'import torch; print("torch", torch.__version__)'); build $BUILD ($(bench_build_type)); pinned to core $CORE, 1 thread"
echo "# load average at start: $(bench_load)"

# --- checkpoints -----------------------------------------------------------------------------
CFG=$SRC/configs/gpt-tiny.yaml
TRAIN_COMMON="data.path=$TOKENS train.eval_every=1000000"
declare -A SHAPE=(
  [tiny]="model.context=256 train.batch_size=8 train.steps=400 train.log_every=50 optim.warmup_steps=20 run.checkpoint.every=400"
  [wide]="model.n_layer=4 model.n_head=8 model.n_embd=512 model.context=256 train.batch_size=4 train.steps=40 train.log_every=10 optim.warmup_steps=5 run.checkpoint.every=40"
)
LABELS=()
declare -A CK
if [ -n "$CKPT" ]; then
  LABELS=(ckpt)
  CK[ckpt]=$CKPT
else
  for s in tiny wide; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$s" ] && continue
    dir=$RUNS/$s
    if [ ! -f "$dir/checkpoints/latest" ]; then
      echo "## training the $s checkpoint (load $(bench_load))"
      rm -rf "$dir"
      # shellcheck disable=SC2086
      "${MPIRUN[@]}" -n 2 "$COHORT" train "$CFG" \
        $TRAIN_COMMON ${SHAPE[$s]} "run.dir=$dir" > "$RUNS/$s-train.log" 2>&1 \
        || { cat "$RUNS/$s-train.log"; echo "gpt_generate.sh: training failed" >&2; exit 1; }
      grep -E 'model gpt|done: ' "$RUNS/$s-train.log"
    fi
    LABELS+=("$s")
    CK[$s]=$dir/checkpoints
  done
fi

CORETYPE=${OPENBLAS_CORETYPE:-}
if [ -z "$CORETYPE" ]; then
  CORETYPE=$("${MPIRUN[@]}" -n 1 "$COHORT" train "$CFG" data.path="$TOKENS" train.steps=1 \
    optim.warmup_steps=0 train.batch_size=2 run.checkpoint.every=0 "run.dir=$RUNS/probe" \
    --verbose 2>&1 | sed -n 's/.*OpenBLAS kernels \([A-Za-z0-9_]*\).*/\1/p' | head -1)
fi
echo "# OpenBLAS kernels: ${CORETYPE:-unknown} (cohort's choice; given to torch as OPENBLAS_CORETYPE)"
[ -n "$CORETYPE" ] && export OPENBLAS_CORETYPE=$CORETYPE
# one thread each (cohort generate keeps OpenBLAS's own thread count, torch reads these too)
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

run_cohort() { # label round
  local b=$RUNS/$1-r$2
  echo "+ taskset -c $CORE $COHORT generate ${CK[$1]} --prompt '$PROMPT' --max-tokens $MAX_TOKENS --temperature 0" > "$b-cohort.err"
  echo "# load $(bench_load)" >> "$b-cohort.err"
  taskset -c "$CORE" "$COHORT" generate "${CK[$1]}" --prompt "$PROMPT" --max-tokens "$MAX_TOKENS" \
    --temperature 0 > "$b-cohort.out" 2>> "$b-cohort.err" \
    || { cat "$b-cohort.err"; echo "gpt_generate.sh: cohort generate failed" >&2; exit 1; }
  echo "cohort: $(grep 'new tokens in' "$b-cohort.err")"
}

run_torch() { # label round
  local b=$RUNS/$1-r$2
  echo "+ taskset -c $CORE $PY $SRC/bench/torch_generate.py ${CK[$1]} --prompt '$PROMPT' --max-tokens $MAX_TOKENS --compare $b-cohort.out" > "$b-torch.err"
  echo "# load $(bench_load)" >> "$b-torch.err"
  taskset -c "$CORE" "$PY" "$SRC/bench/torch_generate.py" "${CK[$1]}" --prompt "$PROMPT" \
    --max-tokens "$MAX_TOKENS" --compare "$b-cohort.out" > "$b-torch.out" 2>> "$b-torch.err" \
    || { cat "$b-torch.err"; echo "gpt_generate.sh: torch_generate.py failed" >&2; exit 1; }
  echo "torch:  $(grep 'new tokens in' "$b-torch.err")"
  grep 'agree with' "$b-torch.err" | sed 's/^/        /' || true
}

for label in "${LABELS[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    echo "## $label round $r (load $(bench_load))"
    if [ $((r % 2)) -eq 1 ]; then
      run_cohort "$label" "$r"
      run_torch "$label" "$r"
    else
      # torch compares against cohort's output: a torch-first round compares with the
      # previous round's cohort output (same checkpoint, same prompt: the same greedy text)
      cp "$RUNS/$label-r$((r - 1))-cohort.out" "$RUNS/$label-r$r-cohort.out"
      run_torch "$label" "$r"
      run_cohort "$label" "$r"
      cmp -s "$RUNS/$label-r$((r - 1))-cohort.out" "$RUNS/$label-r$r-cohort.out" \
        || echo "   (cohort's greedy text differs between rounds $((r - 1)) and $r)"
    fi
  done
done

echo
echo "## greedy text (cohort, last round of each)"
for label in "${LABELS[@]}"; do
  echo "### $label"
  head -c 400 "$RUNS/$label-r$ROUNDS-cohort.out"; echo
done

PYTHONPATH="$SRC/bench" "$PY" - "$RUNS" "$ROUNDS" "${LABELS[@]}" <<'EOF'
import re, sys
from bench_report import log_load as load, median as med, summary_text
runs, rounds, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
pat = re.compile(r"(\d+) prompt tokens in ([\d.]+) s, (\d+) new tokens in ([\d.]+) s \(([\d.]+) tokens/s")

def parse(path):
    for l in open(path):
        m = pat.search(l)
        if m:
            return dict(prompt=int(m[1]), prefill=float(m[2]), new=int(m[3]), dec=float(m[4]),
                        tps=float(m[5]))
    return None

def torch_summary(path):
    kv = summary_text(path)
    return kv and dict(prompt=int(kv["prompt"]), prefill=float(kv["prefill_s"]), new=int(kv["new"]),
                       dec=float(kv["decode_s"]), tps=float(kv["tok_s"]))

def agree(path):
    kv = summary_text(path) or {}
    return f"{kv.get('agree', '?')} / {kv.get('torch_new', '?')}"

print()
print("tokens/s = (new tokens - 1) / decode time after the prompt (1 thread each); prefill = the")
print("prompt's forward pass and the first token (cohort prints it in whole ms); agree = new tokens identical before the first")
print("difference / new tokens.")
print("| model | round | new tokens | cohort tok/s | torch tok/s | cohort/torch | prefill ms cohort / torch | agree | load (1 min) cohort / torch |")
print("|---|---|---:|---:|---:|---:|---|---|---|")
for lb in labels:
    ratios, cs, ts = [], [], []
    for r in range(1, rounds + 1):
        b = f"{runs}/{lb}-r{r}"
        c, t = parse(b + "-cohort.err"), torch_summary(b + "-torch.err")
        if not c or not t:
            continue
        cs.append(c["tps"]); ts.append(t["tps"]); ratios.append(c["tps"] / t["tps"])
        print(f"| {lb} | {r} | {c['new']} | {c['tps']:.0f} | {t['tps']:.0f} | {c['tps'] / t['tps']:.2f} | "
              f"{1e3 * c['prefill']:.2f} / {1e3 * t['prefill']:.2f} | {agree(b + '-torch.err')} | "
              f"{load(b + '-cohort.err')} / {load(b + '-torch.err')} |")
    if cs:
        print(f"| {lb} | median | | {med(cs):.0f} | {med(ts):.0f} | {med(ratios):.2f} | | | |")
EOF
echo "# load average at end: $(bench_load)"
