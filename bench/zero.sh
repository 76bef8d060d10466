#!/usr/bin/env bash
# Data-parallel strategies of `cohort train` (parallel.strategy=ddp|zero1|zero2|zero3) on one GPT:
# step time, exposed communication, bytes sent and memory per rank, at 2 and 4 ranks.
#
#   bench/zero.sh BUILD_DIR [--rounds R] [--ranks "2 4"] [--steps S] [--wide]
#
# BUILD_DIR holds a build of cohort (BUILD_DIR/cohort; a Release build for numbers worth keeping).
# Data is made on first use, as bench/gpt_ddp.sh makes it: BUILD_DIR/benchdata/shakespeare-bench.h5
# = `cohort data text examples/shakespeare/input.txt.gz ... --val-fraction 0.01` (bytes, vocab 256).
# Workload: configs/gpt-tiny.yaml (AdamW, clip 1.0, cosine schedule) made larger so that
# communication matters: 4 layers, 8 heads, width 256, context 128 (3.26M parameters, 12.4 MiB
# fp32), global batch 16 (2048 tokens per step), train.micro_batch_size = the per-rank batch (no
# accumulation), warmup 2, S steps (default 24) logged every 2, no checkpoints, evaluation only
# after the last step (outside the timed intervals). --wide: a model whose state outweighs its
# activations, to show memory per rank: 4 layers, 12 heads, width 768, context 64, batch 8
# (28.6M parameters, 109 MiB fp32; 16 bytes per parameter of model state under ddp).
# Order: for each round, for each N, the four strategies one after another, the order rotated by
# one from round to round, so that a slow phase of the machine does not always hit one strategy.
# Every rank runs under `/usr/bin/time -f %M` (peak RSS in KiB, one file per rank).
# Step time: per log interval, batch * context / tokens_per_s from run.dir/metrics.jsonl, the first
# interval (warm-up) dropped; the median over the remaining intervals of all rounds. Also
# step_seconds_min (the fastest single step) from run.dir/memory.json, which rank 0 writes with the
# strategy's accounted memory per rank (params, grads, optimizer state, communication buffers'
# peak), the payload sent per step and the time blocked on communication per step.
# Per-run files: BUILD_DIR/benchruns-zero/n<N>-<strategy>-r<round>{.log,.rss.<rank>,/}
set -euo pipefail

. "$(dirname "$0")/common/bench.sh"
ROUNDS=1
RANKS="2 4"
STEPS=24
WIDE=0
bench_args "rounds ranks steps wide!" "$@"
[ "$STEPS" -ge 6 ] || { echo "zero.sh: --steps must be >= 6 (3 log intervals)" >&2; exit 2; }

TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "zero.sh: $TIME (GNU time) not found" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bench_setup zero.sh "benchruns-zero$([ "$WIDE" = 1 ] && echo -wide)"
bench_tokens

CFG=$SRC/configs/gpt-tiny.yaml
BATCH=16 CONTEXT=128 HEADS=8 WIDTH=256
if [ "$WIDE" = 1 ]; then BATCH=8 CONTEXT=64 HEADS=12 WIDTH=768; fi
STRATEGIES=(ddp zero1 zero2 zero3)
OVERRIDES=(data.path="$TOKENS" model.n_layer=4 model.n_head="$HEADS" model.n_embd="$WIDTH"
           model.context="$CONTEXT" train.batch_size="$BATCH" train.steps="$STEPS" train.log_every=2
           train.eval_every=0 optim.warmup_steps=2 run.checkpoint.every=0)

T0=$(date +%s)
echo "# zero.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# $(mpirun --version | head -1); build $BUILD ($(bench_build_type))"
echo "# load average at start: $(bench_load)"

run_one() { # n strategy round
  local n=$1 s=$2 r=$3
  local base=$RUNS/n$n-$s-r$r micro=$(((BATCH + n - 1) / n)) t
  local log=$base.log dir=$base
  rm -rf "$dir" "$base".rss.*
  # shellcheck disable=SC2016  # $0 and $@ are for the inner sh
  local cmd=("${MPIRUN[@]}" -n "$n" sh -c "$TIME"' -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$@"'
             "$base.rss" "$COHORT" train "$CFG" "${OVERRIDES[@]}" train.micro_batch_size="$micro"
             parallel.strategy="$s" run.dir="$dir" --verbose)
  echo "+ ${cmd[*]}" > "$log"
  echo "# load $(bench_load)" >> "$log"
  t=$(date +%s.%N)
  "${cmd[@]}" >> "$log" 2>&1 || { cat "$log"; echo "zero.sh: $s N=$n round $r failed" >&2; exit 1; }
  t=$(echo "$(date +%s.%N) - $t" | bc)
  echo "# wall $t s" >> "$log"
  printf '## N=%s %-5s round %s: %5.1f s wall (load at start %s); ' "$n" "$s" "$r" "$t" \
    "$(sed -n 's/^# load \([0-9.]*\).*/\1/p' "$log")"
  grep -o 'memory per rank.*' "$log" | head -1 || echo
}

for r in $(seq 1 "$ROUNDS"); do
  for n in $RANKS; do
    for i in 0 1 2 3; do
      run_one "$n" "${STRATEGIES[$(((i + r - 1) % 4))]}" "$r"
    done
  done
done

# --- table -----------------------------------------------------------------------------------
PYTHONPATH="$SRC/bench" "$PY" - "$RUNS" "$ROUNDS" "$RANKS" "$BATCH" "$CONTEXT" <<'EOF'
import json, os, sys
from bench_report import median as med
runs, rounds, ranks = sys.argv[1], int(sys.argv[2]), [int(n) for n in sys.argv[3].split()]
B, T = int(sys.argv[4]), int(sys.argv[5])
strategies = ["ddp", "zero1", "zero2", "zero3"]
MiB = 1048576.0

def run(n, s, r):
    base = f"{runs}/n{n}-{s}-r{r}"
    rows = [json.loads(l) for l in open(f"{base}/metrics.jsonl") if l.strip()]
    steps = [B * T / row["tokens_per_s"] for row in rows[1:]]   # seconds per step, per interval
    mem = json.load(open(f"{base}/memory.json"))
    rss = []
    for k in range(n):
        lines = [l.strip() for l in open(f"{base}.rss.{k}") if l.strip()]
        rss.append(int(lines[-1]) / 1024.0)                     # KiB -> MiB
    wall = float("nan")
    for l in open(f"{base}.log"):
        if l.startswith("# wall "):
            wall = float(l.split()[2])
    return dict(steps=steps, mem=mem, rss=rss, wall=wall, loss=rows[-1]["loss"])

res = {(n, s): [run(n, s, r) for r in range(1, rounds + 1)
                if os.path.exists(f"{runs}/n{n}-{s}-r{r}/memory.json")]
       for n in ranks for s in strategies}

print()
print("step s = median over all rounds of the per-interval seconds per step (batch * context /")
print("tokens_per_s, first interval dropped); min = the fastest single step (memory.json, best round);")
print("/ ddp = median step time over ddp's at the same N; exposed = time blocked on communication per")
print("step (memory.json, median over rounds); sent = collective payload per rank per step; p+g+o =")
print("accounted params + grads + optimizer state per rank; comm = peak of the strategy's communication")
print("buffers (resident pages of the transient views); RSS = peak resident set of each rank process")
print("(/usr/bin/time %M; median over rounds of the max and of the min over ranks).")
print()
print("| N | strategy | step s (median) | step s (min) | / ddp | exposed ms/step | MiB sent/step "
      "| p+g+o MiB | comm peak MiB | peak RSS max / min MiB | last loss |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
goal = {}
for n in ranks:
    base = med([x for rr in res[(n, "ddp")] for x in rr["steps"]])
    for s in strategies:
        rs = res[(n, s)]
        if not rs:
            continue
        st = med([x for rr in rs for x in rr["steps"]])
        m = rs[0]["mem"]
        ratio = st / base
        if s == "zero3":
            goal[n] = ratio
        print(f"| {n} | {s} | {st:.3f} | {min(rr['mem']['step_seconds_min'] for rr in rs):.3f} "
              f"| {ratio:.2f} | {1e3 * med([rr['mem']['exposed_seconds_per_step'] for rr in rs]):.1f} "
              f"| {m['bytes_per_step'] / MiB:.1f} "
              f"| {(m['params'] + m['grads'] + m['optim']) / MiB:.1f} | {m['comm'] / MiB:.1f} "
              f"| {med([max(rr['rss']) for rr in rs]):.0f} / {med([min(rr['rss']) for rr in rs]):.0f} "
              f"| {rs[-1]['loss']:.3f} |")

print()
print("Per round (median step s of the run's intervals, exposed ms/step, wall s of the whole mpirun):")
print("| N | strategy | " + " | ".join(f"round {r}" for r in range(1, rounds + 1)) + " |")
print("|---:|---|" + "---|" * rounds)
for n in ranks:
    for s in strategies:
        cells = [f"{med(rr['steps']):.3f} s, {1e3 * rr['mem']['exposed_seconds_per_step']:.0f} ms, "
                 f"{rr['wall']:.0f} s" for rr in res[(n, s)]]
        if cells:
            print(f"| {n} | {s} | " + " | ".join(cells) + " |")
print()
for n, g in goal.items():
    print(f"goal zero3 step time <= 1.25 x ddp at N={n}: {g:.2f} x ({'met' if g <= 1.25 else 'NOT met'})")
EOF
echo "# load average at end: $(bench_load); total $(($(date +%s) - T0)) s"
