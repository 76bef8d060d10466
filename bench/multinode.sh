#!/usr/bin/env bash
# Data parallelism across hosts on shaped links: `cohort train` on 1..N namespace hosts
# (tests/cluster/cluster.sh: network namespaces, a bridge, Open MPI over TCP, tbf on every host
# link) at each link rate; step time, exposed communication against the pure wire time, scaling
# efficiency from one host; then cohort's allreduce against raw MPI_Allreduce across the hosts.
#
#   bench/multinode.sh BUILD_DIR [--hosts "2 3"] [--rates "10gbit 1gbit"] [--strategies "ddp zero3"]
#                      [--only tiny|wide] [--steps S] [--rounds R] [--no-allreduce]
#
# Runs as root (namespaces). BUILD_DIR holds a Release build of cohort (BUILD_DIR/cohort,
# BUILD_DIR/bench/allreduce). Its own cluster: COHORT_CLUSTER_NAME=cohortb on 10.233.0.0/24,
# taken down on exit. One rank per host, one core per host (hosts share the machine's cores when
# there are more hosts than cores: then compute, not the link, is oversubscribed; say so).
# Workloads (configs/gpt-tiny.yaml, AdamW, no checkpoints, evaluation only after the last step):
#   tiny  the config's shape: 4 layers, width 128, context 64, batch 32 (0.8 M parameters);
#   wide  4 layers, 8 heads, width 256, context 128, batch 16 (3.3 M parameters, 12.4 MiB fp32).
# Figures per run, from run.dir/memory.json (rank 0) and metrics.jsonl:
#   step      median seconds per step over the log intervals after the first;
#   sent      collective payload per rank per step (ring collectives: every rank sends the same);
#   wire      sent / link rate: the time the link needs for it, nothing hidden;
#   exposed   time blocked on communication per step (ddp: waiting for buckets after backward;
#             zero3: waiting for gathers and reduce-scatters);
#   exp/wire  the issue's goal: <= 15% whenever wire < backward's compute time;
#   bwd       backward's compute time per step, estimated as 2/3 of the one-host step time
#             divided by the host count (forward:backward ~ 1:2 in FLOPs);
#   eff       scaling efficiency from one host: T1 / (N * TN) at a fixed global batch.
# Per-run logs: BUILD_DIR/benchruns-multinode/<workload>-<rate>-n<N>-<strategy>-r<R>{.log,/}
set -euo pipefail
USAGE_LINES=2,26
. "$(dirname "$0")/common/bench.sh"
HOSTS="2 3"
RATES="10gbit 1gbit"
STRATEGIES="ddp zero3"
ONLY=""
STEPS=20
ROUNDS=1
NO_ALLREDUCE=0
bench_args "hosts rates strategies only steps rounds no-allreduce!" "$@"
case "$ONLY" in ""|tiny|wide) ;; *) usage ;; esac
[ "$(id -u)" = 0 ] || { echo "multinode.sh: needs root (network namespaces)" >&2; exit 2; }
bench_setup multinode.sh benchruns-multinode
bench_tokens

export COHORT_CLUSTER_NAME=cohortb COHORT_CLUSTER_NET=10.233.0
export COHORT_CLUSTER_DIR=/var/tmp/cohortb-cluster
CL=$SRC/tests/cluster/cluster.sh
MAXH=1
for n in $HOSTS; do ((n > MAXH)) && MAXH=$n; done
trap '"$CL" down >/dev/null 2>&1 || true' EXIT
"$CL" up "$MAXH" 1 >/dev/null

CFG=$SRC/configs/gpt-tiny.yaml
COMMON=(data.path="$TOKENS" train.steps="$STEPS" train.log_every=2 train.eval_every=0
        optim.warmup_steps=2 run.checkpoint.every=0)
declare -A SHAPE=(
  [tiny]="train.batch_size=32"
  [wide]="model.n_head=8 model.n_embd=256 model.context=128 train.batch_size=16")
WORKLOADS=(tiny wide)
[ -n "$ONLY" ] && WORKLOADS=("$ONLY")

echo "# multinode.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# $(mpirun --version | head -1); build $BUILD ($(bench_build_type)); $MAXH hosts x 1 core"
echo "# load average at start: $(bench_load)"

run_one() { # workload rate n strategy round
  local w=$1 rate=$2 n=$3 s=$4 r=$5
  local base=$RUNS/$w-$rate-n$n-$s-r$r
  rm -rf "$base"
  # shellcheck disable=SC2206  # the shape is a list of overrides
  local cmd=("$CL" mpirun --bind-to none --host "$("$CL" hosts 1 "$n")" -n "$n" "$COHORT" train
             "$CFG" "${COMMON[@]}" ${SHAPE[$w]} parallel.strategy="$s" run.dir="$base" --verbose)
  echo "+ ${cmd[*]}" > "$base.log"
  "${cmd[@]}" >> "$base.log" 2>&1 || { tail -30 "$base.log"; echo "multinode.sh: $w $rate N=$n $s failed" >&2; exit 1; }
  printf '## %-4s %-7s N=%s %-5s round %s: ' "$w" "$rate" "$n" "$s" "$r"
  grep -o '[0-9.]* MiB sent per step.*' "$base.log" | head -1 || echo
}

for r in $(seq 1 "$ROUNDS"); do
  for w in "${WORKLOADS[@]}"; do
    "$CL" shape off >/dev/null
    for s in $STRATEGIES; do run_one "$w" none 1 "$s" "$r"; done
    for rate in $RATES; do
      "$CL" shape "$rate" >/dev/null
      for n in $HOSTS; do
        for s in $STRATEGIES; do run_one "$w" "$rate" "$n" "$s" "$r"; done
      done
    done
  done
done
"$CL" shape off >/dev/null

# --- cohort's allreduce against raw MPI_Allreduce across the hosts (bench/allreduce) ------------
if [ "$NO_ALLREDUCE" != 1 ]; then
  for rate in $RATES; do
    "$CL" shape "$rate" >/dev/null
    for n in $HOSTS; do
      echo
      echo "## allreduce across $n hosts x 1 rank at $rate (busbw GB/s; coh/raw = cohort / MPI_Allreduce)"
      "$CL" mpirun --bind-to none --host "$("$CL" hosts 1 "$n")" -n "$n" "$BUILD/bench/allreduce" \
        --min 64K --max 64M --step 4 --target-bytes 256M --max-iters 20 \
        > "$RUNS/allreduce-$rate-n$n.log" 2>&1 || { tail -20 "$RUNS/allreduce-$rate-n$n.log"; exit 1; }
      grep -v '^#' "$RUNS/allreduce-$rate-n$n.log" | grep '|' || cat "$RUNS/allreduce-$rate-n$n.log"
    done
  done
  "$CL" shape off >/dev/null
fi

PYTHONPATH="$SRC/bench" "$PY" - "$RUNS" "$ROUNDS" "$HOSTS" "$RATES" "$STRATEGIES" "${WORKLOADS[*]}" <<'PYEOF'
import json, os, re, sys
from bench_report import median as med
runs, rounds = sys.argv[1], int(sys.argv[2])
hosts, rates, strategies, workloads = (a.split() for a in sys.argv[3:7])
shape = {"tiny": (32, 64), "wide": (16, 128)}

def bits(rate):
    m = re.fullmatch(r"([0-9.]+)([kmg]?)bit", rate)
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]

def run(w, rate, n, s):
    out = []
    for r in range(1, rounds + 1):
        base = f"{runs}/{w}-{rate}-n{n}-{s}-r{r}"
        rows = [json.loads(l) for l in open(f"{base}/metrics.jsonl") if l.strip()]
        B, T = shape[w]
        steps = [B * T / row["tokens_per_s"] for row in rows[1:]]
        out.append((med(steps), json.load(open(f"{base}/memory.json"))))
    return med([o[0] for o in out]), out[0][1], med([o[1]["exposed_seconds_per_step"] for o in out])

print()
print("| model | link | hosts | strategy | step ms | MB sent/rank/step | wire ms | exposed ms "
      "| exposed / wire | bwd ms (est.) | wire < bwd | eff |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|")
for w in workloads:
    for s in strategies:
        t1, _, _ = run(w, "none", 1, s)
        print(f"| {w} | - | 1 | {s} | {1e3 * t1:.1f} | 0 | 0 | - | - | - | - | 1.00 |")
        for rate in rates:
            for n in map(int, hosts):
                tn, mem, exp = run(w, rate, n, s)
                sent = mem["bytes_per_step"]
                wire = sent * 8 / bits(rate)
                bwd = 2.0 / 3.0 * t1 / n
                print(f"| {w} | {rate} | {n} | {s} | {1e3 * tn:.1f} | {sent / 1e6:.2f} "
                      f"| {1e3 * wire:.1f} | {1e3 * exp:.1f} | {100 * exp / wire:.0f}% "
                      f"| {1e3 * bwd:.1f} | {'yes' if wire < bwd else 'no'} | {t1 / (n * tn):.2f} |")
PYEOF
