# shellcheck shell=bash disable=SC2034  # the variables set here are the drivers'
# Sourced by the bench/*.sh drivers (not run): what they all do the same way.
#
#   . "$(dirname "$0")/common/bench.sh"
#
# Drivers of `cohort` runs from a build directory (gpt_ddp.sh, mlp_ddp.sh, gpt_generate.sh,
# zero.sh, serve.sh):
#   bench_args "OPT... FLAG!..." "$@"
#                               BUILD from the first argument (the build directory, required),
#                               then --opt VALUE sets OPT (upper case, '-' -> '_'), --flag sets
#                               FLAG=1; anything else prints the usage
# then:
#   bench_setup NAME RUNS_DIR   SRC, PY, COHORT (checked), MPIRUN, DATA, RUNS (both created)
#   bench_tokens                TOKENS: the Shakespeare token file they share, made on first use
#   bench_tokens_smallval       TOKENS: the same text with a 0.1% validation split (4 windows of
#                               256), for runs whose final evaluation should be short
#                               (gpt124m.sh, profile_gpt.sh)
#   bench_torch_ddp VARIANT LOG N PEER ARGS...
#                               a torch DDP peer (bench/PEER) on N ranks, tuned or default
#   bench_round R ARGS...       one round of run_cohort ARGS, run_torch tuned|default ARGS (the
#                               driver's functions), the order reversed in even rounds
# Drivers of a bench/ program under the build's own MPI launcher (allreduce.sh, ckpt.sh):
#   bench_launcher NAME BUILD   mpiexec and flags (Open MPI: --oversubscribe, as root
#                               --allow-run-as-root); openmpi=1 when it is Open MPI
# And for all of them:
#   usage                       prints lines USAGE_LINES (default 2,8) of the driver, exits 2
#   bench_machine               "host: CPU model, N cores, M GiB" for the header lines
#   bench_build_type            the build's CMAKE_BUILD_TYPE
#   bench_load                  the load average (1, 5, 15 min)
#   free_port                   a free TCP port on 127.0.0.1

usage() { sed -n "${USAGE_LINES:-2,8}p" "$0" | sed 's/^# \{0,1\}//'; exit 2; }

bench_machine() {
  echo "$(hostname): $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
       "$(free -g | awk '/^Mem:/ {print $2}') GiB"
}

bench_build_type() { sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null; }

bench_load() { cut -d' ' -f1-3 /proc/loadavg; }

free_port() {
  "${PY:-/usr/bin/python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bench_args() { # "OPT... FLAG!..." BUILD_DIR ARGS...
  local spec=" $1 " name var
  shift
  [ $# -ge 1 ] || usage
  BUILD=$(cd "$1" && pwd) || exit 2
  shift
  while [ $# -gt 0 ]; do
    name=${1#--}
    [ "$name" != "$1" ] || usage
    var=$(echo "$name" | tr 'a-z-' 'A-Z_')
    if [[ $spec == *" $name! "* ]]; then
      printf -v "$var" 1
      shift
    elif [[ $spec == *" $name "* ]] && [ $# -ge 2 ]; then
      printf -v "$var" '%s' "$2"
      shift 2
    else
      usage
    fi
  done
}

bench_setup() { # NAME RUNS_DIR
  SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  # Debian's python3 with python3-torch; a `python3` earlier on the PATH may be another build.
  PY=/usr/bin/python3
  COHORT=$BUILD/cohort
  [ -x "$COHORT" ] || { echo "$1: $COHORT not found (build $BUILD first)" >&2; exit 1; }
  # --oversubscribe: more ranks than cores; --bind-to none: cohort binds its ranks itself (and
  # the torch peers bind themselves before torch loads).
  MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
  # Open MPI 4.1.4's OMPIO read data sieving can return wrong rows (open-mpi/ompi#10546; cohort
  # warns without this); off for every run, torch's included (it does no MPI-IO).
  export OMPI_MCA_fbtl_posix_read_datasieving=0
  DATA=$BUILD/benchdata
  RUNS=$BUILD/$2
  mkdir -p "$DATA" "$RUNS"
}

bench_tokens() {
  # 1% validation: cohort always evaluates the whole val split after the last step; that is
  # outside the timed intervals but would add seconds to minutes of wall time per run at 10%.
  TOKENS=$DATA/shakespeare-bench.h5
  if [ ! -f "$TOKENS" ]; then
    "$COHORT" data text "$SRC/examples/shakespeare/input.txt.gz" "$TOKENS" --val-fraction 0.01
  fi
}

bench_tokens_smallval() {
  TOKENS=$DATA/shakespeare-124m.h5
  if [ ! -f "$TOKENS" ]; then
    "$COHORT" data text "$SRC/examples/shakespeare/input.txt.gz" "$TOKENS" --val-fraction 0.001 >/dev/null
  fi
}

bench_torch_ddp() { # VARIANT(tuned|default) LOG N PEER ARGS...
  local variant=$1 log=$2 n=$3 peer=$4 port try env=()
  shift 4
  # torch gets the OpenBLAS kernel family cohort uses (CORETYPE), so that the two compare alike.
  [ -n "${CORETYPE:-}" ] && env+=(-x OPENBLAS_CORETYPE="$CORETYPE")
  # tuned: idle OpenMP workers sleep instead of spinning. With 2+ threads per rank torch runs
  # two thread pools (OpenMP for its own ops, OpenBLAS's pthreads for sgemm); spinning OpenMP
  # workers then steal the cores the sgemm threads need (measured: ~2.5x slower MLP steps at
  # N=1). default: torch as installed.
  [ "$variant" = tuned ] && env+=(-x OMP_WAIT_POLICY=PASSIVE)
  # The free port can be taken by another process before torch binds it (a shared machine):
  # retry with a fresh one.
  for try in 1 2 3; do
    port=$(free_port)
    echo "+ ${MPIRUN[*]} -n $n -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT=$port ${env[*]} $PY $SRC/bench/$peer $*" > "$log"
    echo "# load $(bench_load)" >> "$log"
    if "${MPIRUN[@]}" -n "$n" -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT="$port" "${env[@]}" "$PY" \
         "$SRC/bench/$peer" "$@" >> "$log" 2>&1; then
      return 0
    fi
    if [ "$try" = 3 ] || ! grep -q "Address already in use" "$log"; then
      cat "$log"; echo "$(basename "$0"): torch run failed" >&2; exit 1
    fi
    echo "   (port $port was taken; retrying)"
  done
}

bench_round() { # ROUND ARGS...
  # Alternating which side goes first keeps a slow phase of the machine off one side.
  local r=$1
  shift
  if [ $((r % 2)) -eq 1 ]; then
    run_cohort "$@"; run_torch tuned "$@"; run_torch default "$@"
  else
    run_torch default "$@"; run_torch tuned "$@"; run_cohort "$@"
  fi
}

bench_launcher() { # NAME BUILD
  mpiexec=$(sed -n 's/^MPIEXEC_EXECUTABLE:FILEPATH=//p' "$2/CMakeCache.txt" 2>/dev/null)
  [ -n "$mpiexec" ] && [ -x "$mpiexec" ] || mpiexec=$(command -v mpirun)
  [ -n "$mpiexec" ] || { echo "$1: no mpiexec/mpirun found" >&2; exit 2; }
  flags=()
  openmpi=0
  if "$mpiexec" --version 2>&1 | grep -qiE 'open ?mpi|openrte|open-mpi'; then
    openmpi=1
    flags=(--oversubscribe)
    [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
  fi
  return 0
}
