#!/usr/bin/env bash
# sgemm throughput of cohort's ch_sgemm under each OpenBLAS kernel family, with peers.
#
#   bench/sgemm.sh [BUILD_DIR]          (default BUILD_DIR: build)
#   SIZES=256,512,1024,2048 THREADS=1,0 REPS=5 MIN_TIME=0.5 ROUNDS=2 bench/sgemm.sh build
#
# THREADS lists BLAS thread counts; 0 = all cores. Runs, one process each (OpenBLAS fixes its
# kernels when it loads, so every OPENBLAS_CORETYPE needs a fresh process):
#   cohort-default   OPENBLAS_CORETYPE unset: cohort detects the CPU and sets it (what users get)
#   openblas-auto    OPENBLAS_CORETYPE=auto: an unknown name, so OpenBLAS falls back to its own
#                    cpuid detection ("Core not found: auto") -- what a program without cohort gets
#   Prescott         what Debian's OpenBLAS 0.3.21 picks by itself on some AVX-512 Xeons (docs/architecture.md)
#   Haswell SkylakeX Cooperlake Zen Sandybridge   the other plausible families
#   blis             cblas_sgemm of libblis through ctypes (skipped when libblis is absent;
#                    BLIS_LIB=/path/libblis.so.4 picks the library)
#   torch.mm         PyTorch (Debian's, same OpenBLAS) with cohort's OPENBLAS_CORETYPE, the peer
# ROUNDS times (default 2), alternating the order, and prints, per thread count, the best
# GFLOP/s of each config at each n with the ratio to the best config at that n.
# Exits nonzero only if a run fails (crash, wrong result); missing optional peers are skipped.
set -u
. "$(dirname "$0")/common/bench.sh"
build=${1:-build}
bin=$build/bench/sgemm
[ -x "$bin" ] || { echo "sgemm.sh: $bin not found; build first (cmake --build $build)" >&2; exit 2; }
SIZES=${SIZES:-256,512,1024,2048}
THREADS=${THREADS:-1,0}
REPS=${REPS:-5}
MIN_TIME=${MIN_TIME:-0.5}
ROUNDS=${ROUNDS:-2}
PY=/usr/bin/python3
args=(--sizes "$SIZES" --threads "$THREADS" --reps "$REPS" --min-time "$MIN_TIME")

out=$(mktemp)
peer_py=$(mktemp --suffix=.py)
trap 'rm -f "$out" "$peer_py"' EXIT
fail=0

echo "# sgemm.sh on $(bench_machine), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# sizes $SIZES, threads $THREADS (0 = all cores), best of >= $REPS reps and >= $MIN_TIME s" \
     "per process, best of $ROUNDS rounds"

run_cohort() { # label, then env assignments
  local label=$1; shift
  local log
  if ! log=$(env "$@" "$bin" "${args[@]}" --label "$label" 2>&1); then
    echo "sgemm.sh: FAILED: $label ($*)" >&2
    echo "$log" >&2
    fail=1
  fi
  printf '%s\n' "$log" | grep '^RESULT' >>"$out"
  printf '  [%s] OPENBLAS_CORETYPE=%s (set by %s) -> OpenBLAS kernels %s\n' "$label" \
    "$(printf '%s\n' "$log" | sed -n 's/^# OPENBLAS_CORETYPE: //p')" \
    "$(printf '%s\n' "$log" | sed -n 's/^# set by: //p')" \
    "$(printf '%s\n' "$log" | sed -n 's/^corename: //p')"
}

# Peers through Python: torch.mm, or cblas_sgemm of a library via ctypes. Same sizes, threads
# and best-of rule; OpenBLAS threads are set with openblas_set_num_threads on the loaded library.
# Usage: peer.py torch|cblas:<lib> label, with SIZES THREADS REPS MIN_TIME in the environment.
cat >"$peer_py" <<'EOF'
import ctypes, os, statistics, sys, time
mode, label = sys.argv[1], sys.argv[2]
sizes = [int(s) for s in os.environ["SIZES"].split(",")]
threads = [int(t) for t in os.environ["THREADS"].split(",")]
reps, min_time = int(os.environ["REPS"]), float(os.environ["MIN_TIME"])
ncores = len(os.sched_getaffinity(0))

def bench(fn):
    fn(); fn()
    best, cpu, n, start = 1e30, [], 0, time.perf_counter()
    while n < reps or (time.perf_counter() - start < min_time and n < 1000):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        dt, dc = time.perf_counter() - t0, time.thread_time() - c0
        best = min(best, dt)
        cpu.append(dc)
        n += 1
    return best, statistics.median(cpu), n

if mode == "torch":
    import torch
    ob = ctypes.CDLL("libopenblas.so.0")  # the copy torch already loaded
    ob.openblas_get_corename.restype = ctypes.c_char_p
    core = ob.openblas_get_corename().decode()
    set_threads = lambda t: (ob.openblas_set_num_threads(t), torch.set_num_threads(t))
    def make(n):
        g = torch.Generator().manual_seed(n)
        a = torch.rand(n, n, generator=g) * 2 - 1
        b = torch.rand(n, n, generator=g) * 2 - 1
        c = torch.empty(n, n)
        ref = (a[:4].double() @ b.double())
        torch.mm(a, b, out=c)
        if not torch.allclose(c[:4].double(), ref, rtol=1e-4, atol=1e-3):
            sys.exit("torch.mm: wrong result at n=%d" % n)
        return lambda: torch.mm(a, b, out=c)
else:
    import numpy as np
    lib = ctypes.CDLL(mode.split(":", 1)[1])
    core = "blis"
    if not hasattr(lib, "cblas_sgemm"):
        print("skipped: %s has no cblas_sgemm" % mode.split(":", 1)[1])
        sys.exit(0)
    for sym in ("bli_thread_set_num_threads", "openblas_set_num_threads"):
        if hasattr(lib, sym):
            fn_threads = getattr(lib, sym)
            break
    else:
        fn_threads = None
    def set_threads(t):
        if fn_threads is not None:
            fn_threads(ctypes.c_long(t) if "bli_" in fn_threads.__name__ else t)
    f = ctypes.c_float
    P = ctypes.POINTER(ctypes.c_float)
    lib.cblas_sgemm.argtypes = [ctypes.c_int] * 6 + [f, P, ctypes.c_int, P, ctypes.c_int, f, P, ctypes.c_int]
    def make(n):
        rng = np.random.default_rng(n)
        a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
        c = np.empty((n, n), np.float32)
        pa, pb, pc = (x.ctypes.data_as(P) for x in (a, b, c))
        call = lambda: lib.cblas_sgemm(101, 111, 111, n, n, n, 1.0, pa, n, pb, n, 0.0, pc, n)
        call()
        ref = a[:4].astype(np.float64) @ b.astype(np.float64)
        if not np.allclose(c[:4], ref, rtol=1e-4, atol=1e-3):
            sys.exit("%s: wrong result at n=%d" % (label, n))
        return call

print("corename: %s" % core)
for t in threads:
    nt = t if t > 0 else ncores
    set_threads(nt)
    for n in sizes:
        best, med_cpu, r = bench(make(n))
        print("RESULT %-12s %-12s %7d %6d %5d %10.3f %9.1f %9.1f" % (label, core, nt, n, r,
              best * 1e3, 2.0 * n ** 3 / best * 1e-9, 2.0 * n ** 3 / med_cpu * 1e-9), flush=True)
EOF

run_peer() { # label, mode, then env assignments
  local label=$1 mode=$2; shift 2
  local log
  if ! log=$(env "$@" SIZES="$SIZES" THREADS="$THREADS" REPS="$REPS" MIN_TIME="$MIN_TIME" \
      "$PY" "$peer_py" "$mode" "$label" 2>&1); then
    echo "sgemm.sh: FAILED: $label" >&2
    echo "$log" >&2
    fail=1
  fi
  printf '%s\n' "$log" | grep '^RESULT' >>"$out"
  printf '%s\n' "$log" | grep -E '^(corename|skipped)' | sed "s/^/  [$label] /"
}

# What cohort chooses here (a tiny run): the torch.mm peer gets the same OPENBLAS_CORETYPE.
probe=$(env -u OPENBLAS_CORETYPE "$bin" --sizes 64 --threads 1 --reps 1 --min-time 0 2>&1) || {
  echo "sgemm.sh: FAILED: $bin does not run" >&2; echo "$probe" >&2; exit 1; }
choice=""
if printf '%s\n' "$probe" | grep -q '^# set by: cohort'; then
  choice=$(printf '%s\n' "$probe" | sed -n 's/^# OPENBLAS_CORETYPE: //p')
fi

# The configurations, one process each. Rounds alternate the order (forward, backward, ...) so
# that a busy spell on a shared machine does not always hit the same configurations; each cell
# of the tables is the best over rounds.
configs=(cohort-default openblas-auto Prescott Haswell SkylakeX Cooperlake Zen Sandybridge)
blis=${BLIS_LIB:-$(ldconfig -p 2>/dev/null | awk '/libblis\.so/ {print $NF; exit}')}
if [ -n "$blis" ] && "$PY" -c 'import numpy' 2>/dev/null; then
  configs+=(blis)
else
  echo "  [blis] skipped: libblis not installed (apt install libblis4-serial or libblis-serial-dev)"
fi
if "$PY" -c 'import torch' 2>/dev/null; then
  configs+=(torch.mm)
else
  echo "  [torch.mm] skipped: $PY has no torch (apt install python3-torch)"
fi

run_config() { # label
  case $1 in
    cohort-default) run_cohort "$1" -u OPENBLAS_CORETYPE ;;
    openblas-auto) run_cohort "$1" OPENBLAS_CORETYPE=auto ;;
    blis) run_peer "$1" "cblas:$blis" ;;
    torch.mm)
      if [ -n "$choice" ]; then run_peer "$1" torch OPENBLAS_CORETYPE="$choice"
      else run_peer "$1" torch -u OPENBLAS_CORETYPE; fi ;;
    *) run_cohort "$1" OPENBLAS_CORETYPE="$1" ;;
  esac
}

for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then order=("${configs[@]}")
  else order=(); for ((i = ${#configs[@]} - 1; i >= 0; i--)); do order+=("${configs[i]}"); done; fi
  echo "# round $round/$ROUNDS: ${order[*]}"
  for c in "${order[@]}"; do
    if ((round == 1)); then run_config "$c"; else run_config "$c" >/dev/null; fi
  done
done

# Tables: per thread count, rows = configs, cells = GFLOP/s (ratio to the best config at that n)
# from the best wall-clock rep; for 1 thread also from the median CPU time of the calling thread
# (sgemm.c says why).
table() { # field number of the GFLOP/s column, title suffix, thread filter (empty = all)
awk -v sizes="$SIZES" -v f="$1" -v what="$2" -v only="$3" '
  $1 == "RESULT" && (only == "" || $4 == only) {
    key = $2 SUBSEP $4 SUBSEP $5; if ($f > g[key]) g[key] = $f; core[$2] = $3
    if (!($2 in seen)) { seen[$2] = 1; order[++nl] = $2 }
    if (!($4 in tseen)) { tseen[$4] = 1; tord[++nt] = $4 }
    if ($f > best[$4 SUBSEP $5]) { best[$4 SUBSEP $5] = $f; who[$4 SUBSEP $5] = $2 }
  }
  END {
    ns = split(sizes, n, ",")
    for (ti = 1; ti <= nt; ti++) {
      t = tord[ti]
      printf "\n### %d thread%s: GFLOP/s %s (ratio to best at that n)\n\n", t, t == 1 ? "" : "s", what
      printf "| config | corename |"; for (i = 1; i <= ns; i++) printf " n=%s |", n[i]; printf "\n"
      printf "|---|---|"; for (i = 1; i <= ns; i++) printf "---:|"; printf "\n"
      for (li = 1; li <= nl; li++) {
        l = order[li]; printf "| %s | %s |", l, core[l]
        for (i = 1; i <= ns; i++) {
          k = l SUBSEP t SUBSEP n[i]
          if (k in g) printf " %.1f (%.2f) |", g[k], g[k] / best[t SUBSEP n[i]]
          else printf " - |"
        }
        printf "\n"
      }
      printf "| *best* | |"; for (i = 1; i <= ns; i++) printf " %s |", who[t SUBSEP n[i]]; printf "\n"
    }
  }' "$out"
}
table 8 "by wall-clock time" ""
table 9 "by median CPU time of the calling thread" 1

[ "$fail" -eq 0 ] || echo "sgemm.sh: some runs FAILED (see above)" >&2
exit "$fail"
