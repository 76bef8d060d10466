#!/usr/bin/env bash
# A NaN in the training data (the fault drill: every weight NaN, exit 0, checkpoints that pass
# their checksums) on 2 ranks under ddp, zero2 and zero3: each step whose loss or gradient norm
# is not finite is skipped with a warning naming it; train.max_nonfinite_steps of them in a row
# stop the run with exit 1 naming the step; with a few NaN rows the run finishes with finite
# weights; every checkpoint written holds finite numbers only, metrics.jsonl stays valid JSON;
# and an update to Inf (a learning rate beyond float) is refused at the checkpoint.
# Usage: cli_train_nonfinite.sh COHORT SOURCE_DIR PYTHON MPIEXEC [MPIEXEC_FLAGS...]
# Exits 77 (skipped) when PYTHON has no h5py (it writes the NaN into the dataset).
set -uo pipefail
cohort=$1 src=$2 py=$3 mpiexec=$4
shift 4
flags=("$@")
"$py" -c "import h5py, numpy" 2>/dev/null || { echo "no h5py: skipped"; exit 77; }
dir=$(mktemp -d /tmp/cohort-nonfinite-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$src/tests/data/lib.sh" # fail

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$dir/digits.h5" --val-fraction 0.2 \
  --seed 0 >/dev/null || fail "data csv"
# many.h5: NaN in every third training row; one.h5: in one row only.
"$py" - "$dir" <<'PY' || fail "writing NaN rows"
import shutil, sys, h5py, numpy as np
d = sys.argv[1]
for name, rows in (("many", slice(0, None, 3)), ("one", slice(7, 8))):
    shutil.copy(f"{d}/digits.h5", f"{d}/{name}.h5")
    with h5py.File(f"{d}/{name}.h5", "r+") as f:
        x = f["train/x"][...]
        x[rows, 5] = np.nan
        f["train/x"][...] = x
PY

# train CODE NAME ARGS...: 2-rank `cohort train` into run dir NAME; checks the exit code.
train() {
  code=$1 name=$2
  shift 2
  timeout 120 "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
    run.dir="$dir/$name" train.log_every=5 "$@" >"$dir/$name.txt" 2>&1
  got=$?
  cat "$dir/$name.txt"
  [ "$got" -eq "$code" ] || fail "$name: exit $got, expected $code"
}
has() { grep -Eq -- "$2" "$dir/$1.txt" || fail "$1: output lacks '$2'"; }

# Every checkpoint of run NAME holds finite numbers only; metrics.jsonl is strict JSON.
check_files() {
  "$py" - "$dir/$1" <<'PY' || fail "$1: files"
import glob, json, sys, h5py, numpy as np
run = sys.argv[1]
files = sorted(glob.glob(f"{run}/checkpoints/step-*.h5"))
def finite(name, obj):
    if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
        assert np.isfinite(obj[...]).all(), f"{name} is not finite"
for p in files:
    with h5py.File(p, "r") as f:
        f.visititems(finite)
def strict(token):
    raise ValueError(f"not JSON: {token}")
for line in open(f"{run}/metrics.jsonl"):
    json.loads(line, parse_constant=strict)
print(f"{run}: {len(files)} checkpoints, all finite; metrics.jsonl is JSON")
PY
}

for s in ddp zero3; do
  train 1 "many-$s" data.path="$dir/many.h5" parallel.strategy=$s train.steps=30 \
    run.checkpoint.every=2
  has "many-$s" "step 1: the (loss|gradient norm) is (not finite|NaN); the update is skipped \(1 in a row"
  has "many-$s" "step 5: .*5 steps in a row with a loss or gradient norm that is not finite \(train\.max_nonfinite_steps = 5\); stopping with the parameters of step 0"
  check_files "many-$s"
done
train 1 many-limit data.path="$dir/many.h5" parallel.strategy=zero2 train.steps=30 \
  train.max_nonfinite_steps=2
has many-limit "step 2: .*2 steps in a row .*train\.max_nonfinite_steps = 2"

for s in ddp zero2 zero3; do
  train 0 "one-$s" data.path="$dir/one.h5" parallel.strategy=$s train.steps=60 \
    train.eval_every=0 run.checkpoint.every=20
  has "one-$s" "update is skipped"
  has "one-$s" "step 60/60 .*val_acc"
  check_files "one-$s"
  [ -e "$dir/one-$s/checkpoints/step-00000060.h5" ] || fail "one-$s: no final checkpoint"
done

train 1 inf data.path="$dir/digits.h5" train.steps=5 optim.lr=1e39 optim.min_lr=0 \
  optim.warmup_steps=0 run.checkpoint.every=1
has inf "step 1: refusing to write a checkpoint: parameter layers\.0\.weight holds a value that is not finite"
[ -z "$(ls "$dir/inf/checkpoints" 2>/dev/null)" ] || fail "inf: a checkpoint was written"
echo "cli_train_nonfinite: ok"
