#!/usr/bin/env bash
# Thread layout of GPT training on a fixed set of cores: R ranks x P/R threads each (BLAS and
# kernel threads), for every R that divides P, plus each layout with one kernel thread per rank
# (COHORT_KERNEL_THREADS=1: the non-GEMM ops serial, as before the kernel thread pool).
#
#   bench/threads.sh BUILD_DIR [--cores P] [--ranks "1 2 ..."] [--rounds R] [--only tiny|gemm]
#                     [--steps S] [--no-serial]
#
# --cores P: the first P cores this process may run on (default: all of them); the runs are
# confined to them with taskset, and cohort's binding splits them between the ranks (a rank
# gets a contiguous block in hwloc's order, so at R = sockets or NUMA domains each rank holds
# one). --ranks: the R to try (default: every divisor of P). --no-serial: skip the
# COHORT_KERNEL_THREADS=1 runs. --steps: overrides the workload's step count (a short smoke run).
# Workloads: those of bench/gpt_ddp.sh (tiny: width 128, context 64, batch 32; gemm: width 512,
# context 128, batch 16), global batch fixed, so every layout does the same work per step.
# tokens/s: the median (and best) over the log intervals after the first, from metrics.jsonl.
# Runs alternate the layouts' order between rounds. Logs: BUILD_DIR/benchruns-threads/.
set -euo pipefail

. "$(dirname "$0")/common/bench.sh"
USAGE_LINES=2,17
CORES=""
RANKS=""
ROUNDS=1
ONLY=""
STEPS=""
NO_SERIAL=""
bench_args "cores ranks rounds only steps no-serial!" "$@"
case "$ONLY" in ""|tiny|gemm) ;; *) usage ;; esac

bench_setup threads.sh benchruns-threads
bench_tokens

# The cores: the first P of this process's affinity list.
ALL=$("$PY" -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')
NALL=$(echo "$ALL" | tr ',' '\n' | wc -l)
CORES=${CORES:-$NALL}
[ "$CORES" -ge 1 ] && [ "$CORES" -le "$NALL" ] || { echo "threads.sh: --cores 1..$NALL" >&2; exit 2; }
CPUS=$(echo "$ALL" | tr ',' '\n' | head -n "$CORES" | paste -sd,)
if [ -z "$RANKS" ]; then
  for r in $(seq 1 "$CORES"); do [ $((CORES % r)) -eq 0 ] && RANKS="$RANKS $r"; done
fi

CFG=$SRC/configs/gpt-tiny.yaml
COMMON="data.path=$TOKENS train.eval_every=1000000 run.checkpoint.every=0"
WORKLOADS=(
  "tiny|$COMMON train.steps=100 train.log_every=10"
  "gemm|$COMMON model.n_layer=4 model.n_head=8 model.n_embd=512 model.context=128 train.batch_size=16 train.steps=24 train.log_every=2 optim.warmup_steps=5"
)
# A short run: S steps in 4 intervals (the later override wins).
[ -z "$STEPS" ] || WORKLOADS=("${WORKLOADS[@]/%/ train.steps=$STEPS train.log_every=$(( (STEPS + 3) / 4 )) optim.warmup_steps=$(( STEPS / 4 ))}")

echo "# threads.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# cores $CPUS ($CORES); ranks: $RANKS; build $BUILD ($(bench_build_type))"
echo "# load average at start: $(bench_load)"

run_layout() { # name ranks kernel(pool|serial) round overrides...
  local name=$1 n=$2 kind=$3 r=$4; shift 4
  local tag=$name-n$n-$kind-r$r env=()
  local log=$RUNS/$tag.log dir=$RUNS/$tag
  [ "$kind" = serial ] && env=(-x COHORT_KERNEL_THREADS=1)
  echo "## $name: $n rank(s) x $((CORES / n)) core(s), kernel threads: $kind, round $r (load $(bench_load))"
  rm -rf "$dir"
  echo "+ taskset -c $CPUS ${MPIRUN[*]} -n $n ${env[*]} $COHORT train $CFG $* run.dir=$dir --verbose" > "$log"
  echo "# load $(bench_load)" >> "$log"
  taskset -c "$CPUS" "${MPIRUN[@]}" -n "$n" "${env[@]}" "$COHORT" train "$CFG" "$@" "run.dir=$dir" \
    --verbose >> "$log" 2>&1 || { cat "$log"; echo "threads.sh: run failed" >&2; exit 1; }
  cp "$dir/metrics.jsonl" "$RUNS/$tag.metrics.jsonl"
  grep -E 'kernel thread|done: ' "$log" | grep -v ' r[1-9][0-9]*\]' || true
}

for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name ov <<< "$w"
  [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
  for r in $(seq 1 "$ROUNDS"); do
    order=$RANKS
    [ $((r % 2)) -eq 0 ] && order=$(echo $RANKS | tr ' ' '\n' | tac | paste -sd' ')
    for n in $order; do
      # shellcheck disable=SC2086
      run_layout "$name" "$n" pool "$r" $ov
      # one rank per core: the pool has one thread either way
      # shellcheck disable=SC2086
      [ -n "$NO_SERIAL" ] || [ "$n" -eq "$CORES" ] || run_layout "$name" "$n" serial "$r" $ov
    done
  done
done

PYTHONPATH="$SRC/bench" "$PY" - "$RUNS" "$ROUNDS" "$RANKS" "$CORES" "$ONLY" <<'EOF'
import json, sys
from bench_report import log_load as load, median as med
runs, rounds, ranks, cores, only = (sys.argv[1], int(sys.argv[2]), sys.argv[3].split(),
                                    int(sys.argv[4]), sys.argv[5])
names = ("tiny", "gemm")

def rates(path):
    """(median, best tok/s, last loss) over the intervals after the first of metrics.jsonl."""
    try:
        rows = [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        return None
    iv = [r["tokens_per_s"] for r in rows]
    steady = iv[1:] if len(iv) > 1 else iv
    return (med(steady), max(steady), rows[-1]["loss"]) if steady else None

print(f"\ntokens/s on {cores} cores: median (best) over the log intervals after the first; "
      "kernel threads = the pool's size per rank (1: the non-GEMM ops serial).")
for name in names:
    if only and only != name:
        continue
    print(f"\n{name}")
    print("| ranks x threads | kernel threads | round | tok/s median | tok/s best | vs 1 rank (median) "
          "| loss | load at start |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in range(1, rounds + 1):
        ref = rates(f"{runs}/{name}-n1-pool-r{r}.metrics.jsonl")
        for n in ranks:
            for kind in ("pool", "serial"):
                base = f"{runs}/{name}-n{n}-{kind}-r{r}"
                got = rates(base + ".metrics.jsonl")
                if not got:
                    continue
                kt = 1 if kind == "serial" else cores // int(n)
                rel = f"{got[0] / ref[0]:.2f}" if ref else "-"
                print(f"| {n} x {cores // int(n)} | {kt} | {r} | {got[0]:.0f} | {got[1]:.0f} | {rel} "
                      f"| {got[2]:.3f} | {load(base + '.log')} |")
EOF
echo "# load average at end: $(bench_load)"
