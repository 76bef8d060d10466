#!/usr/bin/env bash
# `cohort train` refuses values whose buffers cannot exist, on every rank, with exit 2 and a
# message naming the key (and its file:line) and the allowed range, before allocating anything:
# the fault drill's train.batch_size=2^62 (a heap overflow in ch_sampler_batch before: the
# value was cut to fit an int), the same in a YAML file, and keys each within range whose
# product (a 1024 x 2^20 x 2^20 MLP) is not.
# Usage: cli_train_limits.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -uo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
dir=$(mktemp -d /tmp/cohort-limits-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$src/tests/data/lib.sh" # fail, expect

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$dir/digits.h5" --val-fraction 0.2 \
  --seed 0 >/dev/null || fail "data csv"
base=("$src/configs/mlp-digits.yaml" data.path="$dir/digits.h5" run.dir="$dir/run")

# expect_train CODE PATTERN ARGS...: `mpiexec -n 2 cohort train ARGS`, as lib.sh's expect.
expect_train() {
  code=$1 pattern=$2
  shift 2
  timeout 60 "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$@" >"$dir/out.txt" 2>&1
  got=$?
  cat "$dir/out.txt"
  [ "$got" -eq "$code" ] || fail "cohort train $*: exit $got, expected $code"
  grep -Eq -- "$pattern" "$dir/out.txt" || fail "cohort train $*: output lacks '$pattern'"
}

expect_train 2 "train\.batch_size: must be <= 4194304, got 4611686018427387904 \(allowed: \[1, 4194304\]\)" \
  "${base[@]}" train.batch_size=4611686018427387904
printf 'data:\n  path: %s\ntrain:\n  batch_size: 4611686018427387904\n' "$dir/digits.h5" >"$dir/big.yaml"
expect_train 2 "big\.yaml:4: train\.batch_size: must be <= 4194304" "$dir/big.yaml" run.dir="$dir/run"
expect_train 2 "model\.hidden: 99999999999 is out of range \(allowed: \[1, 1048576\]\)" \
  "${base[@]}" model.hidden=99999999999
expect_train 2 "model\.depth x model\.hidden x model\.hidden \(hidden layers\): 1024 x 1048576 x 1048576" \
  "${base[@]}" model.depth=1024 model.hidden=1048576
[ ! -e "$dir/run/checkpoints" ] || fail "a refused run wrote checkpoints"
echo "cli_train_limits: ok"
