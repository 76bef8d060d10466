# Shared setup of the checkpoint end-to-end tests (sourced).
# Usage in a test: source lib.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${COHORT_TEST_PYTHON:-/usr/bin/python3}
work=$(mktemp -d /tmp/cohort-ckpt-e2e-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --seed 0 >/dev/null

# train NRANKS RUN_DIR [overrides...]: digits MLP, constant LR so that a run cut short follows
# the same schedule as a long one; checkpoints every 20 steps.
train() {
  local n=$1 dir=$2
  shift 2
  "$mpiexec" -n "$n" "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
    data.path="$work/digits.h5" run.dir="$dir" optim.schedule=constant optim.warmup_steps=5 \
    train.log_every=10 train.eval_every=20 run.checkpoint.every=20 run.checkpoint.keep_last=10 "$@"
}
compare() { "$py" "$here/compare.py" "$@"; }
ckpt() { printf '%s/checkpoints/step-%08d.h5' "$1" "$2"; }

# rank_pid RUN_DIR RANK: pid of the cohort process of that rank in the run using RUN_DIR.
rank_pid() {
  local pid
  for pid in $(pgrep -f "cohort train .*run.dir=$1( |$)" || true); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
        grep -qE "^(OMPI_COMM_WORLD_RANK|PMI_RANK)=$2$"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# wait_step RUN_DIR STEP: waits (up to 60 s) until metrics.jsonl has logged STEP or beyond. Polled
# with the shell's own read, every 20 ms: a small run logs a step every few ms, and a poll that
# starts a program (python, a few hundred ms on a busy machine) let a drill's signal arrive
# after the run had already finished.
wait_step() {
  local i line last
  for ((i = 0; i < 3000; i++)); do
    last=
    if [[ -f $1/metrics.jsonl ]]; then
      while IFS= read -r line; do last=$line; done < "$1/metrics.jsonl"
    fi
    if [[ $last =~ ^\{\"step\":\ ([0-9]+) ]] && ((BASH_REMATCH[1] >= $2)); then
      return 0
    fi
    sleep 0.02
  done
  echo "timed out waiting for step $2 in $1" >&2
  return 1
}
