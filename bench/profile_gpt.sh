#!/usr/bin/env bash
# Where a GPT training step's time goes on the CPU, by function: `perf record -e cpu-clock` over a
# short `cohort train` run (1 rank, every core this process may use), then a table of time
# shares grouped by what the code does, and the top symbols.
#
#   bench/profile_gpt.sh BUILD_DIR [tiny|gemm|124m] [--steps N] [--callgraph]
#
# Workloads (configs/gpt-tiny.yaml's and bench/gpt_ddp.sh's shapes, and bench/gpt124m.sh's):
#   tiny  4 layers, 4 heads, width 128, context 64, batch 32, vocabulary 256; 40 steps (default)
#   gemm  4 layers, 8 heads, width 512, context 128, batch 16, vocabulary 256; 6 steps
#   124m  12 layers, 12 heads, width 768, context 256, batch 4, vocabulary 50304; 4 steps
# Data: BUILD_DIR/benchdata/shakespeare-124m.h5 (bench_tokens_smallval: byte tokens, 0.1% val).
# cpu-clock (a software event: this VM's PMU counts no `instructions`) samples at 4 kHz every
# thread of the run, mpirun's and OpenBLAS's included; the shares are of all samples, so they
# include start-up (parameter init, data open) and the evaluation after the last step -- small
# next to the steps at 124m, visible at tiny. --callgraph adds `--call-graph dwarf` (large
# perf.data; the table still counts self time) for `perf report -i` by hand.
# Groups, by symbol name and library (first match wins):
#   sgemm/OpenBLAS   libopenblas*, *gemm*, cpu_linear_*/cpu_matmul_* (their bias loops)
#   attention        *attention*, *softmax* (not xent)
#   layernorm        *layernorm*
#   gelu             *gelu*
#   xent             *xent*, *cross_entropy*
#   adamw            *adamw*, *optim*, grad norm / clipping
#   embedding        *embedding*
#   memcpy/memset    mem{cpy,set,move}, *bzero*
#   MPI              libmpi*, libopen-pal/rte, mca_*, ompi_/opal_/MPI_ symbols, orted/mpirun
#   init (rng)       ch_rng_*, ch_layout_init*, libm cos/sin/log (parameter init, Box-Muller: at 124m
#                    ~15% of a 2-step run's samples)
#   sched_yield      *sched_yield* (libc's and the kernel's: idle OpenBLAS threads spin on it)
#   kernel           [kernel.kallsyms] (page faults, scheduling, syscalls)
#   other            the rest
# Output: BUILD_DIR/benchruns-profile/<model>.{perf.data,log,report.txt}.
set -euo pipefail

. "$(dirname "$0")/common/bench.sh"
USAGE_LINES=2,6
MODEL=tiny
if [ $# -ge 2 ] && [ "${2#--}" = "$2" ]; then MODEL=$2; set -- "$1" "${@:3}"; fi
STEPS=""
CALLGRAPH=""
bench_args "steps callgraph!" "$@"
bench_setup profile_gpt.sh benchruns-profile
bench_tokens_smallval
command -v perf >/dev/null || { echo "profile_gpt.sh: perf not found (apt install linux-perf)" >&2; exit 1; }

CFG=$SRC/configs/gpt-tiny.yaml
case $MODEL in
  tiny) OV=(); STEPS=${STEPS:-40} ;;
  gemm) OV=(model.n_layer=4 model.n_head=8 model.n_embd=512 model.context=128 train.batch_size=16)
        STEPS=${STEPS:-6} ;;
  124m) CFG=$SRC/configs/gpt2-124m.yaml
        OV=(device=cpu precision=fp32 model.context=256 train.batch_size=4); STEPS=${STEPS:-4} ;;
  *) usage ;;
esac
OV+=("data.path=$TOKENS" "train.steps=$STEPS" "train.log_every=$STEPS" optim.warmup_steps=1
     train.eval_every=0 run.checkpoint.every=0)
OUT=$RUNS/$MODEL
rm -rf "$OUT.run"
pflags=(-e cpu-clock -F 4000)
[ -n "$CALLGRAPH" ] && pflags+=(--call-graph dwarf)

echo "# profile_gpt.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine); build $BUILD ($(bench_build_type))"
echo "# $MODEL: $(perf --version), $STEPS steps, $(nproc) cores; load average at start: $(bench_load)"
echo "+ perf record ${pflags[*]} -o $OUT.perf.data -- ${MPIRUN[*]} -n 1 $COHORT train $CFG ${OV[*]} run.dir=$OUT.run --verbose" > "$OUT.log"
perf record "${pflags[@]}" -o "$OUT.perf.data" -- "${MPIRUN[@]}" -n 1 "$COHORT" train "$CFG" "${OV[@]}" \
  "run.dir=$OUT.run" --verbose >> "$OUT.log" 2>&1 || { cat "$OUT.log"; echo "profile_gpt.sh: run failed" >&2; exit 1; }
grep -E 'parameters in|tok/s|done:' "$OUT.log" | sed 's/^/  /' || true
perf report -i "$OUT.perf.data" --no-children -n --sort comm,dso,sym --stdio --percent-limit 0 \
  2>/dev/null | grep -v '^#' | grep '%' > "$OUT.report.txt" || true
"$PY" - "$OUT.report.txt" <<'EOF'
import re, sys
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*[0-9.]+%\s+(\d+)\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
    if m:
        rows.append([int(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5).strip()])
nsamp = sum(r[0] for r in rows) or 1
for r in rows:
    r[0] = 100.0 * r[0] / nsamp
GROUPS = [
    ("sgemm/OpenBLAS", lambda c, d, s: "openblas" in d or "gemm" in s or re.match(r"cpu_(linear|matmul)_", s)),
    ("attention", lambda c, d, s: "attention" in s or ("softmax" in s and "xent" not in s)),
    ("layernorm", lambda c, d, s: "layernorm" in s),
    ("gelu", lambda c, d, s: "gelu" in s),
    ("xent", lambda c, d, s: "xent" in s or "cross_entropy" in s),
    ("adamw", lambda c, d, s: re.search(r"adamw|optim|grad_norm|clip", s)),
    ("embedding", lambda c, d, s: "embedding" in s),
    ("memcpy/memset", lambda c, d, s: re.search(r"mem(cpy|set|move)|bzero", s)),
    ("MPI", lambda c, d, s: re.search(r"libmpi|libopen-(pal|rte)|mca_|libpmix|libucp|libuct", d)
        or re.match(r"(ompi|opal|orte|pmix)_|MPI_|PMPI_", s) or c in ("mpirun", "orted")),
    ("init (rng)", lambda c, d, s: re.match(r"ch_rng_|ch_layout_init|__(cos|sin|ieee754_log)|log@|logf?$|cosf?$", s)),
    ("sched_yield", lambda c, d, s: "sched_yield" in s),
    ("kernel", lambda c, d, s: d == "[kernel.kallsyms]"),
]
tot = {g: 0.0 for g, _ in GROUPS}
tot["other"] = 0.0
for pct, comm, dso, kind, sym in rows:
    for g, f in GROUPS:
        if f(comm, dso.lower(), sym.lower()):
            tot[g] += pct
            break
    else:
        tot["other"] += pct
total = sum(r[0] for r in rows)
print(f"\ncpu-clock samples by group (% of all {nsamp} samples, {len(rows)} symbols):")
print("| group | % |")
print("|---|---:|")
for g, v in sorted(tot.items(), key=lambda kv: -kv[1]):
    print(f"| {g} | {v:.1f} |")
print(f"| total | {total:.1f} |")
print("\ntop symbols:")
print("| % | command | library | symbol |")
print("|---:|---|---|---|")
for pct, comm, dso, kind, sym in rows[:20]:
    print(f"| {pct:.2f} | {comm} | {dso} | {sym} |")
EOF
echo "# load average at end: $(bench_load)"
