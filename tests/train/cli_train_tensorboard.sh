#!/usr/bin/env bash
# run.tensorboard=true (src/train/tensorboard.c) read back by TensorBoard itself: tensorboard
# from PyPI in a venv (tests/serve/client_venv.sh; skips (77) when pip cannot install it), its
# EventAccumulator on the run directory (tensorboard_check.py): every scalar series equals
# metrics.jsonl's (the documented tags, the same steps, float32 precision), for
#   - an MLP on 2 ranks (train and val scalars), one event file;
#   - the same run resumed from its step-20 checkpoint: a second event file, whose SessionLog
#     START makes TensorBoard drop the first file's points past step 20 as metrics.jsonl drops
#     its lines;
#   - a third start there from scratch (run.resume=never, 30 steps): the earlier files' points
#     are all dropped;
#   - a tiny GPT on 1 rank (tokens/s);
# and no event file without the key.
# Usage: cli_train_tensorboard.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -uo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
dir=$(mktemp -d /tmp/cohort-train-tensorboard-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$src/tests/data/lib.sh" # fail
. "$src/tests/serve/client_venv.sh"
# tensorboard 2.18 runs on Python 3.9 .. 3.12; numpy pinned below 2 as Debian's is.
client_venv "${COHORT_VENV_DIR:-$dir}" "tensorboard==2.18.0" "numpy==1.26.4" ||
  { echo "SKIP: no tensorboard venv"; exit 77; }
py=$venv/bin/python
check() { "$py" "$src/tests/train/tensorboard_check.py" "$@" || fail "tensorboard_check.py $*"; }
train() {
  local n=$1 log=$2
  shift 2
  timeout 300 "$mpiexec" -n "$n" "${flags[@]}" "$cohort" train "$@" >"$dir/$log.txt" 2>&1 ||
    { cat "$dir/$log.txt"; fail "train $*"; }
}

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$dir/digits.h5" --val-fraction 0.2 \
  --seed 0 >/dev/null || fail "data csv"
mlp=("$src/configs/mlp-digits.yaml" data.path="$dir/digits.h5" run.dir="$dir/mlp" train.steps=40
     train.log_every=5 train.eval_every=10 run.checkpoint.every=20 run.tensorboard=true)
train 2 mlp "${mlp[@]}"
check "$dir/mlp" 1
# TensorBoard reads a directory's event files in name order: <unix seconds>.<host>.<pid>, so
# starts in the same second could sort by pid. Real restarts are seconds apart; these are not.
sleep 1
train 2 mlp-resumed "${mlp[@]}" run.resume="$dir/mlp/checkpoints/step-00000020.h5"
grep -q "resum" "$dir/mlp-resumed.txt" || { cat "$dir/mlp-resumed.txt"; fail "no resume"; }
check "$dir/mlp" 2
sleep 1
train 2 mlp-again "${mlp[@]}" train.steps=30 run.resume=never
check "$dir/mlp" 3

"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$dir/text.h5" >/dev/null || fail "data text"
train 1 gpt "$src/configs/gpt-tiny.yaml" data.path="$dir/text.h5" run.dir="$dir/gpt" \
  model.n_layer=1 model.n_embd=64 model.context=48 train.steps=10 train.batch_size=8 \
  train.log_every=5 train.eval_every=0 optim.warmup_steps=2 run.tensorboard=true
grep -q tokens_per_s "$dir/gpt/metrics.jsonl" || fail "no tokens_per_s in the GPT's metrics"
check "$dir/gpt" 1

train 1 off "${mlp[@]}" run.dir="$dir/off" train.steps=20 run.tensorboard=false
! ls "$dir/off"/events.out.tfevents.* >/dev/null 2>&1 || fail "an event file without run.tensorboard"
echo "cli_train_tensorboard: ok"
