#!/usr/bin/env bash
# Checkpoint write/read throughput: cohort (bench/ckpt) against dd on the same disk, same run.
#
#   bench/ckpt.sh [BUILD_DIR] [-- extra args for bench/ckpt]      (default BUILD_DIR: build)
#   RANKS="1 2 4" ROUNDS=3 DIR=/work/ckpt-bench bench/ckpt.sh build-bench
#   CONFIGS='default=;romio=--mca io romio321' bench/ckpt.sh build-bench
#
# For each of ROUNDS rounds and each rank count in RANKS (default "1 2 4"), runs
#   cohort  bench/ckpt --reps 1 under the build's MPI launcher: ch_ckpt_save (with fsync),
#           ch_ckpt_read after dropping the page cache, ch_ckpt_write alone (no fsync);
#   dd      dd if=/dev/zero of=DIR/dd.bin bs=4M count=BYTES iflag=count_bytes conv=fsync, then
#           the same cache drop, then dd if=DIR/dd.bin of=/dev/null bs=4M,
# with the same byte count (the checkpoint's payload) in the same directory, alternating which
# goes first from round to round. Each cell is the median over rounds; ratios are cohort / dd
# (1.0 = as fast as dd). CONFIGS runs cohort under several launcher settings ("label=args;..."),
# each against the same dd measurements of its round and rank count.
# The page cache is dropped before every read with `sync; echo 3 > /proc/sys/vm/drop_caches`
# when that works (root), else per file with posix_fadvise(DONTNEED) (fsync'ed file: every
# page clean) -- the same method for both; DROP=none reads from the cache.
# Environment: RANKS, ROUNDS (3), DIR (default ${TMPDIR:-/tmp}/cohort-ckpt-bench), BYTES (1G),
# DROP (auto|sysctl|fadvise|none), CONFIGS, MPI_ARGS (extra launcher args for every config),
# WARM (1: write and delete a scratch file of the same size right before every timed write,
# cohort's and dd's alike, so both get recently freed memory for the page cache; see
# warm_page_cache in bench/ckpt.c; 0: off).
# Exits nonzero only if a run fails (crash, wrong data read back), never because of speed.
set -u
. "$(dirname "$0")/common/bench.sh"
build=${1:-build}
shift $(( $# > 0 ? 1 : 0 ))
[ "${1:-}" = "--" ] && shift
bin=$build/bench/ckpt
[ -x "$bin" ] || { echo "ckpt.sh: $bin not found; build first (cmake --build $build)" >&2; exit 2; }
RANKS=${RANKS:-1 2 4}
ROUNDS=${ROUNDS:-3}
BYTES=${BYTES:-1G}
DIR=${DIR:-${TMPDIR:-/tmp}/cohort-ckpt-bench}
DROP=${DROP:-auto}
CONFIGS=${CONFIGS:-default=}
MPI_ARGS=${MPI_ARGS:-}
WARM=${WARM:-1}

bench_launcher ckpt.sh "$build"
[ "$openmpi" = 1 ] && flags+=(--bind-to none)
read -r -a extra <<<"$MPI_ARGS"
mkdir -p "$DIR" || exit 2
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"; rm -f "$DIR/dd.bin"' EXIT

# The cache-drop method, decided once and used for cohort and dd alike.
drop_method=$DROP
if [ "$DROP" = auto ] || [ "$DROP" = sysctl ]; then
  if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then drop_method=sysctl
  elif [ "$DROP" = sysctl ]; then echo "ckpt.sh: cannot write /proc/sys/vm/drop_caches" >&2; exit 2
  else drop_method=fadvise; fi
fi
drop_cache() { # file
  case $drop_method in
    sysctl) sync; echo 3 >/proc/sys/vm/drop_caches ;;
    fadvise) dd if="$1" iflag=nocache count=0 status=none ;; # POSIX_FADV_DONTNEED, whole file
  esac
}
resident() { # percentage of the file in the page cache
  command -v fincore >/dev/null || { echo "?"; return; }
  fincore -b -n -o RES,SIZE "$1" 2>/dev/null | awk '{ printf "%.0f", $2 ? 100 * $1 / $2 : 0 }'
}
now() { date +%s.%N; }

payload= # bytes of the checkpoint's tensors, from the first cohort run; dd writes as many
echo "# ckpt.sh on $(bench_machine), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# dir $DIR on $(df -P "$DIR" | awk 'NR == 2 {print $1 " (" $6 ", " $2 / 1048576 " GiB)"}')," \
     "$(findmnt -n -o FSTYPE --target "$DIR" 2>/dev/null); page cache before reads: dropped by $drop_method"
echo "# launcher: $mpiexec ${flags[*]} ${extra[*]}" \
     "($("$mpiexec" --version 2>&1 | grep -m1 -iE 'version|openrte' | tr -s ' \t' ' ' | sed 's/^ //'))"
echo "# HDF5 (Debian packages):" \
     "$(dpkg-query -W -f='${Package} ${Version}  ' libhdf5-openmpi-103-1 libhdf5-mpich-103-1 2>/dev/null)"
echo "# load average at start: $(bench_load)"
for n in $RANKS; do [ "$n" -gt "$cores" ] && echo "# $n ranks: OVERSUBSCRIBED ($n ranks on $cores cores)"; done
IFS=';' read -r -a configs <<<"$CONFIGS"
fail=0

run_cohort() { # round n label args...
  local r=$1 n=$2 label=$3; shift 3
  local log
  echo "\$ $mpiexec ${flags[*]} ${extra[*]} $* -n $n $bin --dir $DIR/cohort --bytes $BYTES --reps 1 --drop $drop_method ${wargs[*]} ${cargs[*]}"
  if ! log=$("$mpiexec" "${flags[@]}" "${extra[@]}" "$@" -n "$n" "$bin" --dir "$DIR/cohort" \
             --bytes "$BYTES" --reps 1 --drop "$drop_method" "${wargs[@]}" "${cargs[@]}" 2>&1); then
    echo "ckpt.sh: FAILED: cohort $label at $n ranks" >&2
    printf '%s\n' "$log" >&2
    fail=1
    return
  fi
  printf '%s\n' "$log" | grep -E '^(rep|#)' | sed 's/^/    /'
  printf '%s\n' "$log" | sed -n "s/^RESULT /$label /p" >>"$work/cohort"
  payload=$(printf '%s\n' "$log" | sed -n 's/^RESULT .*bytes=\([0-9]*\).*/\1/p')
}

run_dd() { # n
  local n=$1 f=$DIR/dd.bin t0 t1 t2 t3 res
  [ -n "$payload" ] || return
  rm -f "$f"; sync
  if [ "$WARM" = 1 ]; then # as bench/ckpt does before its writes (see warm_page_cache there)
    dd if=/dev/zero of="$DIR/warm.tmp" bs=4M count="$payload" iflag=count_bytes status=none
    rm -f "$DIR/warm.tmp"
  fi
  t0=$(now)
  dd if=/dev/zero of="$f" bs=4M count="$payload" iflag=count_bytes conv=fsync status=none || { fail=1; return; }
  t1=$(now)
  drop_cache "$f"
  res=$(resident "$f")
  t2=$(now)
  dd if="$f" of=/dev/null bs=4M status=none || { fail=1; return; }
  t3=$(now)
  rm -f "$f"; sync
  awk -v n="$n" -v b="$payload" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v res="$res" \
    'BEGIN { w = t1 - t0; r = t3 - t2
             printf "    dd: write+fsync %.3f s = %.3f GB/s | read %.3f s = %.3f GB/s (resident before read %s%%)\n", w, b / w / 1e9, r, b / r / 1e9, res
             printf "dd ranks=%d bytes=%d write_s=%.6f read_s=%.6f\n", n, b, w, r > "/dev/stderr" }' 2>>"$work/dd"
}

cargs=("$@")
wargs=()
[ "$WARM" = 1 ] || wargs=(--no-warm)
for ((r = 1; r <= ROUNDS; r++)); do
  for n in $RANKS; do
    echo
    echo "## round $r, $n ranks"
    if (( r % 2 == 0 )); then run_dd "$n"; fi
    for c in "${configs[@]}"; do
      label=${c%%=*}; args=${c#*=}
      read -r -a a <<<"$args"
      run_cohort "$r" "$n" "$label" "${a[@]}"
    done
    if (( r % 2 == 1 )); then run_dd "$n"; fi
  done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

echo
echo "## Checkpoint I/O: median of $ROUNDS rounds, GB/s = 10^9 B/s; ratio = cohort / dd" \
     "(load average at end: $(bench_load))"
echo
echo "| config | ranks | bytes | cohort save (fsync) | dd write (fsync) | ratio | cohort read | dd read | ratio | cohort write, no fsync |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in "${configs[@]}"; do
  label=${c%%=*}
  for n in $RANKS; do
    rows=$(awk -v l="$label" -v n="ranks=$n" '$1 == l && $2 == n' "$work/cohort" 2>/dev/null)
    ddrows=$(awk -v n="ranks=$n" '$2 == n' "$work/dd" 2>/dev/null)
    [ -n "$rows" ] && [ -n "$ddrows" ] || continue
    b=$(printf '%s\n' "$rows" | head -1 | field bytes)
    cs=$(printf '%s\n' "$rows" | field save_s | median)
    cr=$(printf '%s\n' "$rows" | field read_s | median)
    cw=$(printf '%s\n' "$rows" | field write_s | median)
    dw=$(printf '%s\n' "$ddrows" | field write_s | median)
    dr=$(printf '%s\n' "$ddrows" | field read_s | median)
    awk -v l="$label" -v n="$n" -v b="$b" -v cs="$cs" -v cr="$cr" -v cw="$cw" -v dw="$dw" -v dr="$dr" \
      'BEGIN { g = b / 1e9; printf "| %s | %d%s | %d | %.3f | %.3f | %.2f | %.3f | %.3f | %.2f | %.3f |\n",
               l, n, (n > '"$cores"' ? " (oversub.)" : ""), b, g / cs, g / dw, dw / cs, g / cr, g / dr, dr / cr, g / cw }'
  done
done
exit "$fail"
