#!/usr/bin/env bash
# What `cohort train` says about its config and its end (issue 12, the smaller items): a
# config file that sets no key draws a warning naming it; a key of the other model family
# (model.hidden on a GPT) draws a warning naming the key, where it was set and the family,
# while a dumped config (every key, at its default) draws none; and the end-of-run line after
# a resume with nothing left to run says so instead of "final loss 0.0000, val_loss nan".
# Usage: cli_train_config.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -uo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
dir=$(mktemp -d /tmp/cohort-train-config-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$src/tests/data/lib.sh" # fail, expect

: >"$dir/empty.yaml"
expect 0 "cohort train: warning: .*empty\.yaml sets no key" train "$dir/empty.yaml" --print-config
expect 0 "cohort train: warning: override 'model\.hidden=64': model\.hidden has no effect: it is a key of model\.type mlp, and model\.type is gpt" \
  train "$src/configs/gpt-tiny.yaml" model.hidden=64 --print-config
printf 'model:\n  type: mlp\n  hidden: 64\n  n_layer: 8\n' >"$dir/mixed.yaml"
expect 0 "mixed\.yaml:4: model\.n_layer has no effect: it is a key of model\.type gpt, and model\.type is mlp" \
  train "$dir/mixed.yaml" --print-config
"$cohort" train "$src/configs/gpt-tiny.yaml" --print-config >"$dir/dump.yaml" 2>"$dir/err.txt" || fail "dump"
"$cohort" train "$dir/dump.yaml" --print-config >/dev/null 2>"$dir/err.txt" || fail "reload dump"
[ ! -s "$dir/err.txt" ] || { cat "$dir/err.txt"; fail "a dumped config drew warnings"; }

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$dir/digits.h5" --val-fraction 0.2 \
  --seed 0 >/dev/null || fail "data csv"
run=("$src/configs/mlp-digits.yaml" data.path="$dir/digits.h5" run.dir="$dir/run" train.steps=30
     optim.warmup_steps=0 run.checkpoint.every=30)
for resume in none auto; do
  timeout 120 "$mpiexec" -n 2 "${flags[@]}" "$cohort" train "${run[@]}" run.resume=$resume \
    >"$dir/$resume.txt" 2>&1 || { cat "$dir/$resume.txt"; fail "train, run.resume=$resume"; }
  cat "$dir/$resume.txt"
done
grep -Eq "done: 30 steps in .*final loss [0-9.]+, val_loss [0-9.]+, val_acc" "$dir/none.txt" || fail "summary"
grep -q "done: no step to run: the run is at step 30 and train.steps is 30" "$dir/auto.txt" ||
  fail "0-step summary"
! grep -Eq "final loss|val_loss nan" "$dir/auto.txt" || fail "0-step summary prints figures"
echo "cli_train_config: ok"
