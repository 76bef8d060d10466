#!/usr/bin/env bash
# The CPU backend's non-GEMM ops at 1 and K kernel threads (bench/cpu_ops.c), and a GEMM before
# and after the kernel thread pool exists: one process per kernel thread count
# (COHORT_KERNEL_THREADS), alternating, R rounds; the table takes the median over rounds of
# each run's median and the best over all repetitions.
#
#   bench/cpu_ops.sh BUILD_DIR [--threads K] [--rounds R] [--shape B,T,C,V] [--reps N]
#
# K: BLAS and kernel threads of the K-thread runs (default: all cores); the 1-thread runs keep K
# BLAS threads, so their GEMM lines are the GEMM without a pool thread alive.
set -euo pipefail

. "$(dirname "$0")/common/bench.sh"
USAGE_LINES=2,10
THREADS=""
ROUNDS=3
SHAPE=8,256,768,4096
REPS=20
bench_args "threads rounds shape reps" "$@"
BIN=$BUILD/bench/cpu_ops
[ -x "$BIN" ] || { echo "cpu_ops.sh: $BIN not found (build $BUILD first)" >&2; exit 1; }
THREADS=${THREADS:-$(nproc)}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

echo "# cpu_ops.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# shape $SHAPE, $REPS reps, $ROUNDS rounds, 1 vs $THREADS kernel threads ($THREADS BLAS threads)"
echo "# load average at start: $(bench_load)"
for r in $(seq 1 "$ROUNDS"); do
  order="1 $THREADS"
  [ $((r % 2)) -eq 0 ] && order="$THREADS 1"
  for k in $order; do
    COHORT_KERNEL_THREADS=$k "$BIN" --threads "$THREADS" --shape "$SHAPE" --reps "$REPS" \
      | grep '^RESULT' >> "$OUT"
  done
done
echo "# load average at end: $(bench_load)"

/usr/bin/python3 - "$OUT" "$THREADS" <<'EOF'
import statistics, sys
rows, k = {}, sys.argv[2]
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(f[2], {"n": f[3]}).setdefault(f[1], []).append((float(f[4]), float(f[5])))
print(f"\n| op | elements | 1 thread us (median / best) | {k} threads us (median / best) "
      "| speed-up median | speed-up best |")
print("|---|---:|---:|---:|---:|---:|")
for op, d in rows.items():
    if "1" not in d or k not in d:
        continue
    a, b = d["1"], d[k]
    am, ab = statistics.median(x[0] for x in a), min(x[1] for x in a)
    bm, bb = statistics.median(x[0] for x in b), min(x[1] for x in b)
    print(f"| {op} | {d['n']} | {am:.0f} / {ab:.0f} | {bm:.0f} / {bb:.0f} | {am / bm:.2f} | {ab / bb:.2f} |")
EOF
