#!/usr/bin/env bash
# DDP MLP training throughput: cohort (bench/mlp_step, overlap on and off) against PyTorch DDP
# (bench/torch_ddp_mlp.py, gloo), both at 1 and 2 ranks, measured in the same invocation.
#
#   bench/mlp_ddp.sh BUILD_DIR [--rounds R] [--ranks "1 2"] [--only bench-mlp|digits]
#
# BUILD_DIR holds a build of cohort (BUILD_DIR/cohort, BUILD_DIR/bench/mlp_step; a Release build
# for numbers worth keeping). Data is generated on first use into BUILD_DIR/benchdata:
#   synthetic.h5  bench/make_synthetic.py (16384 x 784, 10 classes) + `cohort data csv`
#   digits.h5     `cohort data csv` of examples/digits/digits.csv.gz (or Debian sklearn's copy)
# Two workloads: configs/bench-mlp.yaml (784-1024-1024-1024-10, batch 256, 3 DDP buckets), and
# configs/mlp-digits.yaml with fewer steps and a constant learning rate (tiny: 27K parameters,
# batch 64; measures per-step overheads rather than GEMMs).
#
# Order: for each round, for each N, cohort and torch alternate (cohort first in odd rounds,
# torch first in even ones) so that a slow phase of the machine does not always hit one side.
# Both run under `mpirun --bind-to none`: cohort binds each rank to its own cores with hwloc,
# torch_ddp_mlp.py does the same with sched_setaffinity before torch loads; each uses
# cores-per-rank BLAS/OpenMP threads. OPENBLAS_CORETYPE: torch gets the kernel family cohort
# reports using (unless the caller set OPENBLAS_CORETYPE, which then applies to both). torch runs
# twice per slot: "tuned" (OMP_WAIT_POLICY=PASSIVE, the fair peer) and "default" (as installed).
# Per-run logs: BUILD_DIR/benchruns/<workload>-n<N>-r<round>-{cohort,torch-tuned,torch-default}.log
set -euo pipefail

. "$(dirname "$0")/common/bench.sh"
ROUNDS=1
RANKS="1 2"
ONLY=""
bench_args "rounds ranks only" "$@"

bench_setup mlp_ddp.sh benchruns
MLP_STEP=$BUILD/bench/mlp_step
[ -x "$MLP_STEP" ] || { echo "mlp_ddp.sh: $MLP_STEP not found (build $BUILD first)" >&2; exit 1; }

# --- data ------------------------------------------------------------------------------------
if [ ! -f "$DATA/synthetic.h5" ]; then
  "$PY" "$SRC/bench/make_synthetic.py" "$DATA/synthetic.csv" --rows 16384 --features 784 \
    --classes 10 --seed 0 --h5 "$DATA/synthetic.h5" --cohort "$COHORT"
  rm -f "$DATA/synthetic.csv"
fi
if [ ! -f "$DATA/digits.h5" ]; then
  DIGITS_CSV=$SRC/examples/digits/digits.csv.gz
  [ -f "$DIGITS_CSV" ] || DIGITS_CSV=/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz
  "$COHORT" data csv "$DIGITS_CSV" "$DATA/digits.h5" --val-fraction 0.2 --seed 0
fi

# --- workloads -------------------------------------------------------------------------------
# name | config | overrides shared by cohort and torch
WORKLOADS=(
  "bench-mlp|$SRC/configs/bench-mlp.yaml|data.path=$DATA/synthetic.h5"
  "digits|$SRC/configs/mlp-digits.yaml|data.path=$DATA/digits.h5 train.steps=200 train.log_every=20 train.eval_every=0 optim.schedule=constant optim.warmup_steps=0"
)

CORETYPE=${OPENBLAS_CORETYPE:-}
echo "# mlp_ddp.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# $(mpirun --version | head -1); $("$PY" -c 'import torch; print("torch", torch.__version__)'); build $BUILD"
echo "# load average at start: $(bench_load)"

run_cohort() { # name config n round overrides...
  local name=$1 config=$2 n=$3 r=$4; shift 4
  local log=$RUNS/$name-n$n-r$r-cohort.log
  echo "## cohort $name N=$n round $r (load $(bench_load))"
  echo "+ ${MPIRUN[*]} -n $n $MLP_STEP $config $* run.dir=$RUNS/$name-n$n-r$r" > "$log"
  "${MPIRUN[@]}" -n "$n" "$MLP_STEP" "$config" "$@" "run.dir=$RUNS/$name-n$n-r$r" >> "$log" 2>&1 \
    || { cat "$log"; echo "mlp_ddp.sh: cohort run failed" >&2; exit 1; }
  sed -n '2,$p' "$log"
  # The plain CLI as a user runs it: one fresh process per rank, one training run. Its whole-run
  # figure can differ from mlp_step's (which trains several times in one process; e.g. glibc's
  # heap-trim threshold adapts after the first run frees its large buffers).
  local clilog=$RUNS/$name-n$n-r$r-cli.log
  echo "+ ${MPIRUN[*]} -n $n $COHORT train $config $* run.dir=$RUNS/$name-n$n-r$r-cli" > "$clilog"
  "${MPIRUN[@]}" -n "$n" "$COHORT" train "$config" "$@" "run.dir=$RUNS/$name-n$n-r$r-cli" \
    >> "$clilog" 2>&1 || { cat "$clilog"; echo "mlp_ddp.sh: cohort train failed" >&2; exit 1; }
  grep ' done: ' "$clilog" | sed 's/^/cohort train: /'
  if [ -z "$CORETYPE" ]; then
    CORETYPE=$(sed -n 's/.*OpenBLAS \([A-Za-z0-9_]*\)$/\1/p' "$log" | head -1)
  fi
}

run_torch() { # variant(tuned|default) name config n round overrides...
  local variant=$1 name=$2 config=$3 n=$4 r=$5; shift 5
  local log=$RUNS/$name-n$n-r$r-torch-$variant.log
  echo "## torch ($variant) $name N=$n round $r (load $(bench_load)), OPENBLAS_CORETYPE=${CORETYPE:-unset}"
  bench_torch_ddp "$variant" "$log" "$n" torch_ddp_mlp.py --config "$config" --reps 2 --breakdown "$@"
  sed -n '3,$p' "$log"
}

if [ -z "$CORETYPE" ]; then
  # What cohort's loader would choose, read from a throwaway 1-rank run of the smallest workload;
  # needed before a round that starts with torch.
  IFS='|' read -r _ cfg ov <<< "${WORKLOADS[1]}"
  # shellcheck disable=SC2086
  CORETYPE=$("${MPIRUN[@]}" -n 1 "$MLP_STEP" "$cfg" $ov train.steps=2 train.log_every=1 \
    "run.dir=$RUNS/probe" --reps 1 --no-breakdown 2>/dev/null \
    | sed -n 's/.*OpenBLAS \([A-Za-z0-9_]*\)$/\1/p' | head -1)
fi

for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name cfg ov <<< "$w"
  [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
  for r in $(seq 1 "$ROUNDS"); do
    for n in $RANKS; do
      # shellcheck disable=SC2086
      bench_round "$r" "$name" "$cfg" "$n" "$r" $ov
    done
  done
done

# --- table -----------------------------------------------------------------------------------
PYTHONPATH="$SRC/bench" "$PY" - "$RUNS" "$ROUNDS" "$RANKS" "$ONLY" <<'EOF'
import glob, os, sys
from bench_report import summary
runs, rounds, ranks, only = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4]

def cli_sps(path):
    try:
        with open(path) as f:
            for l in f:
                if " done: " in l:
                    return float(l.split("(")[1].split()[0])
    except OSError:
        pass
    return float("nan")

print()
print("samples/s: median of log_every-step intervals (first interval of each run excluded), pooled")
print("over 2 runs per mode; torch tuned = OMP_WAIT_POLICY=PASSIVE, default = as installed;")
print("ratio = cohort (overlap on) / torch tuned (/ torch default); min step = fastest single step;")
print("exposed = DDP wait per step, overlap on / off; comm = the same buckets allreduced alone")
print("(blocking / non-blocking+wait as DDP does); hidden = (step_off - step_on) / comm (blocking);")
print("breakdown = median per-step fwd+bwd / clip+AdamW / batch read on each rank, no comm.")
print("whole run = all steps incl. the first ones (and cohort's final evaluation): mlp_step (overlap")
print("on) / the `cohort train` CLI in a fresh process / torch tuned.")
for name in ("bench-mlp", "digits"):
    if only and only != name:
        continue
    print(f"\n{name}")
    print("| N | round | cohort on | cohort off | torch tuned | torch default | cohort/torch "
          "| min step ms cohort / torch | exposed ms on / off | comm ms blk / nb | hidden "
          "| breakdown ms cohort | breakdown ms torch tuned | whole run mlp_step / CLI / torch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in ranks:
        for r in range(1, rounds + 1):
            c = summary(f"{runs}/{name}-n{n}-r{r}-cohort.log")
            t = summary(f"{runs}/{name}-n{n}-r{r}-torch-tuned.log")
            td = summary(f"{runs}/{name}-n{n}-r{r}-torch-default.log")
            if not c or not t or not td:
                continue
            one = int(n) == 1
            hid = "-" if one else f"{c['hidden']:.2f}"
            comm = "-" if one else f"{c['comm_ms']:.2f} / {c.get('comm_nb_ms', float('nan')):.2f}"
            exp = "-" if one else f"{c['exposed_on_ms']:.2f} / {c['exposed_off_ms']:.2f}"
            tb = (f"{t['fwdbwd_ms']:.1f} / {t['opt_ms']:.1f} / {t['read_ms']:.2f}"
                  if "fwdbwd_ms" in t else "-")
            print(f"| {n} | {r} | {c['sps_on']:.0f} | {c['sps_off']:.0f} | {t['sps']:.0f} | "
                  f"{td['sps']:.0f} | {c['sps_on'] / t['sps']:.2f} ({c['sps_on'] / td['sps']:.2f}) | "
                  f"{c['min_on_ms']:.2f} / {t['step_min_ms']:.2f} | "
                  f"{exp} | {comm} | {hid} | "
                  f"{c['fwdbwd_ms']:.1f} / {c['opt_ms']:.1f} / {c['read_ms']:.2f} | {tb} | "
                  f"{c['whole_sps_on']:.0f} / {cli_sps(f'{runs}/{name}-n{n}-r{r}-cli.log'):.0f} / "
                  f"{t['whole_sps']:.0f} |")
EOF
echo "# load average at end: $(bench_load)"
